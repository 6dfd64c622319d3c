"""init on a terminal: prompts for missing choices and the write confirmation."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _init_on_tty(
    data: Path, answers: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    master, slave = pty.openpty()
    try:
        os.write(master, answers.encode())
        code = (
            "import sys; sys.argv = ['synthorg', *sys.argv[1:]]; "
            "from synthorg_tasks.program import main; main()"
        )
        return subprocess.run(
            [sys.executable, "-c", code, "init", "--data-dir", str(data), *flags],
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={
                **os.environ,
                "PYTHONPATH": str(REPO),
                "DOCKER_HOST": f"unix://{data.parent}/none.sock",
            },
        )
    finally:
        os.close(slave)
        os.close(master)


def test_tty_defaults_are_postgres_and_nats(tmp_path: Path) -> None:
    result = _init_on_tty(tmp_path / "d", "\n\n\n")
    assert result.returncode == 0, result.stderr
    assert "Persistence backend" in result.stderr
    assert "Write this configuration?" in result.stderr
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["persistence_backend"] == "postgres"
    assert config["bus_backend"] == "nats"


def test_tty_answers_are_used(tmp_path: Path) -> None:
    result = _init_on_tty(tmp_path / "d", "sqlite\ninternal\ny\n")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["persistence_backend"] == "sqlite"
    assert config["bus_backend"] == "internal"


def test_tty_decline_writes_nothing(tmp_path: Path) -> None:
    result = _init_on_tty(tmp_path / "d", "\n\nn\n")
    assert result.returncode == 2
    assert not (tmp_path / "d").exists()


def test_tty_with_both_flags_does_not_prompt(tmp_path: Path) -> None:
    result = _init_on_tty(tmp_path / "d", "", "--backend", "sqlite", "--bus", "nats")
    assert result.returncode == 0, result.stderr
    assert "Persistence backend" not in result.stderr


@pytest.mark.parametrize(("answer", "code"), [("n\n", 2), ("y\n", 0)])
def test_tty_reinit_confirms_with_default_no(
    tmp_path: Path, answer: str, code: int
) -> None:
    data = tmp_path / "d"
    first = _init_on_tty(data, "", "--backend", "sqlite", "--bus", "internal")
    assert first.returncode == 0, first.stderr
    before = (data / "config.json").read_bytes()
    again = _init_on_tty(data, answer, "--web-port", "4000")
    assert again.returncode == code, again.stderr
    assert "web_port: 3000 -> 4000" in again.stderr
    changed = (data / "config.json").read_bytes() != before
    assert changed == (code == 0)
