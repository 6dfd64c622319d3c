"""Start a private Docker engine for the stack tests when none answers.

The daemon gets its own data root, exec root, pid file and socket under one
folder, and no NAT route off the machine (``--iptables=false
--ip6tables=false --ip-forward=false``): containers reach each other on
their project network and the host through ports published on 127.0.0.1.
It has no default bridge (``--bridge=none``), so it never creates or
deletes the host's ``docker0`` that other daemons may use. It is stopped by
its pid, never by name.

From nox or pytest::

    with running_engine(folder) as docker_host:
        ...

From a shell (CI)::

    python -m tests.stack.engine start DIR   # prints DOCKER_HOST=unix://...
    python -m tests.stack.engine stop DIR
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["engine_answers", "running_engine", "start_dockerd", "stop_dockerd"]

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


def engine_answers(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``docker version`` reaches a daemon with this environment."""
    if shutil.which("docker") is None:
        return False
    try:
        completed = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            env=dict(os.environ if environ is None else environ),
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


def _paths(folder: Path) -> dict[str, Path]:
    return {
        "data": folder / "data",
        "exec": folder / "exec",
        "pid": folder / "pid",
        "socket": folder / "docker.sock",
        "log": folder / "dockerd.log",
    }


def start_dockerd(folder: Path) -> str:
    """Start dockerd under ``folder`` and return its ``DOCKER_HOST`` value."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("dockerd is not installed: apt-get install docker.io")
    folder.mkdir(parents=True, exist_ok=True)
    paths = _paths(folder)
    host = f"unix://{paths['socket']}"
    log = paths["log"].open("ab")
    subprocess.Popen(
        [
            dockerd,
            "--data-root",
            str(paths["data"]),
            "--exec-root",
            str(paths["exec"]),
            "--pidfile",
            str(paths["pid"]),
            "-H",
            host,
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            # No default bridge: docker0 is shared by every daemon on the host,
            # and a daemon that stops deletes it. Compose projects use their
            # own networks, and builds and one-off containers use none.
            "--bridge=none",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    environ = {**os.environ, "DOCKER_HOST": host}
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if engine_answers(environ):
            return host
        time.sleep(0.3)
    stop_dockerd(folder)
    tail = paths["log"].read_text(errors="replace")[-2000:]
    raise RuntimeError(
        f"dockerd did not answer within {START_TIMEOUT_SECONDS:g}s:\n{tail}"
    )


def stop_dockerd(folder: Path) -> None:
    """Stop the dockerd started under ``folder`` by the pid in its pid file."""
    pid_file = _paths(folder)["pid"]
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running_engine(folder: Path) -> Iterator[str]:
    """Yield the ``DOCKER_HOST`` of an answering engine, starting one if needed."""
    current = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if engine_answers():
        yield current
        return
    host = start_dockerd(folder)
    try:
        yield host
    finally:
        stop_dockerd(folder)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``start DIR`` prints ``DOCKER_HOST=...``; ``stop DIR`` stops that daemon."""
    parser = argparse.ArgumentParser(description="private dockerd for stack tests")
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.action == "start":
        print(f"DOCKER_HOST={start_dockerd(args.folder.resolve())}")
    else:
        stop_dockerd(args.folder.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
