"""Whole-process timings of `synthorg --help` and `synthorg init` against `inv`.

Run inside an environment where the package is installed (``nox -s
bench_init`` does that). Each command runs ``--runs`` times after one warm-up
run; the medians are printed with the ratio to ``inv --version``, the floor
every Invoke program starts from.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        argv,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def _median(argv_factory: object, runs: int, env: dict[str, str]) -> float:
    samples = []
    for index in range(runs + 1):
        argv = argv_factory(index)  # type: ignore[operator]
        elapsed = _time(argv, env)
        if index:  # the first run warms the page cache and .pyc files
            samples.append(elapsed)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    args = parser.parse_args()
    synthorg, inv = BIN / "synthorg", BIN / "inv"
    if not synthorg.exists() or not inv.exists():
        sys.exit("install the package first: pip install . (synthorg and inv needed)")
    work = Path(tempfile.mkdtemp(prefix="bench-init-"))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(work),
        "DOCKER_HOST": f"unix://{work}/no-engine.sock",
    }
    try:
        floor = _median(lambda i: [str(inv), "--version"], args.runs, env)
        rows = [("inv --version", floor, 1.2)]
        rows.append(
            (
                "synthorg --help",
                _median(lambda i: [str(synthorg), "--help"], args.runs, env),
                1.2,
            )
        )
        for label, flags in (
            ("synthorg init (sqlite)", ["--backend", "sqlite"]),
            (
                "synthorg init (postgres, nats)",
                ["--backend", "postgres", "--bus", "nats"],
            ),
        ):
            median = _median(
                lambda i, f=flags, tag=label[15:18]: [
                    str(synthorg),
                    "init",
                    "--data-dir",
                    str(work / f"{tag}{i}"),
                    *f,
                ],
                args.runs,
                env,
            )
            rows.append((label, median, 1.5))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'command':34} {'median ms':>10} {'x inv':>7} {'target':>7}")
    for label, median, target in rows:
        ratio = median / floor
        print(f"{label:34} {median * 1000:10.1f} {ratio:7.2f} {'<= ' + str(target):>7}")
    print(
        f"runs per command: {args.runs}; Python {sys.version.split()[0]}; "
        f"{os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
