"""Benchmark ``synthorg status --json`` against ``docker-compose ps``.

On a running postgres + nats stack of stand-in images (5 containers), it
measures the whole-process wall time of both commands, pair by pair in the
same run (status, then ps, repeated), and prints the medians and their ratio.
It then counts the Engine API requests of one status snapshot with the 5
containers and again after adding 15 labelled containers of the same
project (20 in all); the counts must be equal.

Needs a Docker engine (one is started under a temporary folder when none
answers), docker-compose, debootstrap for the first image build, and root.

    python benchmarks/bench_status.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.images.build import build_all  # noqa: E402
from tests.stack.engine import running_engine  # noqa: E402
from tests.stack.harness import (  # noqa: E402
    Install,
    command_environment,
    compose_down,
    docker,
    sweep_project_label,
)

PROJECT = "st-bench"
EXTRA_CONTAINERS = 15


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    completed = subprocess.run(argv, capture_output=True, env=env, cwd=cwd, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 5):
        raise RuntimeError(
            f"{argv[:4]} exited {completed.returncode}: {completed.stderr[-500:]!r}"
        )
    return elapsed


def _api_calls(data_dir: Path) -> int:
    from synthorg_tasks.status.collect import collect_snapshot

    return collect_snapshot(data_dir).api_calls


def _add_labelled_containers(image: str, count: int) -> None:
    for index in range(count):
        docker(
            "run",
            "-d",
            "--pull",
            "never",
            "--network",
            "none",
            "--name",
            f"{PROJECT}_extra{index}_1",
            "--label",
            f"com.docker.compose.project={PROJECT}",
            "--label",
            f"com.docker.compose.service=extra{index}",
            "--label",
            "com.docker.compose.oneoff=False",
            image,
            "sh",
            "-c",
            "while true; do sleep 3600; done",
        )


def _measure(install: Install, rounds: int) -> tuple[list[float], list[float]]:
    env = command_environment()
    env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    status = [
        sys.executable,
        "-m",
        "synthorg_tasks",
        "status",
        "--json",
        "--data-dir",
        str(install.data_dir),
    ]
    compose = [
        "docker-compose",
        "--project-name",
        install.project,
        "--file",
        str(install.data_dir / "compose.yml"),
        "--project-directory",
        str(install.data_dir),
        "ps",
    ]
    # Both run from the data dir's parent, as a user's shell would, and once
    # each before measuring, so the page cache holds both programs.
    cwd = install.data_dir.parent
    _timed(status, env, cwd)
    _timed(compose, env, cwd)
    status_times: list[float] = []
    compose_times: list[float] = []
    for _ in range(rounds):
        status_times.append(_timed(status, env, cwd))
        compose_times.append(_timed(compose, env, cwd))
    return status_times, compose_times


def _wait_until_ok(install: Install, budget: float = 120.0) -> None:
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if install.run("status", "--check").code == 0:
            return
        time.sleep(1)
    raise RuntimeError("the stack did not reach status OK")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="measured pairs")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="synthorg-bench-dockerd-"))
    with running_engine(folder) as host:
        os.environ["DOCKER_HOST"] = host
        images = build_all()
        sweep_project_label(PROJECT)
        install = Install(folder / "data", PROJECT, "postgres", "nats")
        try:
            if install.init().code != 0:
                raise RuntimeError("init failed")
            install.point_at_stand_in_images()
            started = install.run("start", "--no-pull")
            if started.code != 0:
                raise RuntimeError(f"start failed: {started.stderr[-1000:]}")
            _wait_until_ok(install)
            status_times, compose_times = _measure(install, args.rounds)
            calls_5 = _api_calls(install.data_dir)
            _add_labelled_containers(images.data_init, EXTRA_CONTAINERS)
            calls_20 = _api_calls(install.data_dir)
        finally:
            compose_down(install)
            sweep_project_label(PROJECT)
    status_median = statistics.median(status_times)
    compose_median = statistics.median(compose_times)
    print(f"rounds: {args.rounds} pairs")
    print(f"synthorg status --json median: {status_median * 1000:.0f} ms")
    print(f"docker-compose ps median:      {compose_median * 1000:.0f} ms")
    print(f"ratio status / ps:             {status_median / compose_median:.2f}")
    print(f"Engine API calls, 5 containers:  {calls_5}")
    print(f"Engine API calls, 20 containers: {calls_20}")
    return 0 if calls_5 == calls_20 else 1


if __name__ == "__main__":
    raise SystemExit(main())
