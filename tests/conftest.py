"""Shared fixtures: an isolated environment and an in-process ``synthorg`` runner."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from synthorg_tasks.state.secrets import clear_secrets


@dataclass
class RunResult:
    """Exit code and captured streams of one in-process ``synthorg`` run."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Keep tests away from the caller's data dir, Docker and SYNTHORG_* settings."""
    for name in list(os.environ):
        # SYNTHORG_TEST_* carry the test setup, such as servers a Nox session
        # started and SYNTHORG_TEST_REQUIRE_ALL.
        if name.startswith(("SYNTHORG_", "COMPOSE_")) and not name.startswith(
            "SYNTHORG_TEST_"
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    # No engine answers here, so init's volume check is skipped, not slow.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    clear_secrets()
    yield
    clear_secrets()


def run_synthorg(*args: str, stdin: str = "") -> RunResult:
    """Run the ``synthorg`` program in this process and capture what it prints."""
    import sys

    from synthorg_tasks.program import build_program

    program = build_program(["synthorg", *args])
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                program.run(["synthorg", *args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = old_stdin
    return RunResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def synthorg() -> object:
    """The in-process runner, as a fixture."""
    return run_synthorg
