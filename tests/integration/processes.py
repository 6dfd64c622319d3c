"""Run the ``synthorg`` program as real subprocesses of the test run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = "from synthorg_tasks.program import main; main()"


def program_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return an environment that runs this checkout's package.

    ``DOCKER_HOST`` names a closed loopback port, so the engine probes fail
    at once instead of reaching a real engine.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SYNTHORG_", "DOCKER_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["DOCKER_HOST"] = "tcp://127.0.0.1:9"
    env.update(extra or {})
    return env


def start_program(
    argv: Sequence[str], extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``synthorg <argv>`` in a new Python process."""
    return subprocess.Popen(
        [sys.executable, "-c", PROGRAM, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=program_environment(extra_env),
    )


def run_program(
    argv: Sequence[str], extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``synthorg <argv>`` to completion in a new Python process."""
    return subprocess.run(
        [sys.executable, "-c", PROGRAM, *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=program_environment(extra_env),
        check=False,
        timeout=120,
    )
