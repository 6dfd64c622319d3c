"""Concurrent config writers in separate processes lose no update and mix no pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthorg_tasks.state.config import load_strict
from tests.integration.processes import run_program, start_program

WRITERS = 20

pytestmark = pytest.mark.slow
LOCK_ENV = {"SYNTHORG_LOCK_TIMEOUT": "120s"}


@pytest.fixture
def postgres_install(tmp_path: Path) -> Path:
    data_dir = tmp_path / "install"
    completed = run_program(
        ["init", "--yes", "--backend", "postgres", "--data-dir", str(data_dir)]
    )
    assert completed.returncode == 0, completed.stderr.decode()
    return data_dir


def _password(data_dir: Path) -> str:
    value = json.loads((data_dir / "config.json").read_text())["postgres_password"]
    assert isinstance(value, str)
    return value


def test_concurrent_pair_sets_keep_one_result(postgres_install: Path) -> None:
    data_dir = postgres_install
    password = _password(data_dir)
    processes = [
        start_program(
            [
                "config",
                "set",
                "web_port",
                str(4000 + index),
                "--pair",
                f"backend_port={5000 + index}",
                "--pair",
                f"postgres_port={6000 + index}",
                "--data-dir",
                str(data_dir),
            ],
            LOCK_ENV,
        )
        for index in range(WRITERS)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr.decode()
    config = load_strict(data_dir)
    index = config.web_port - 4000
    assert 0 <= index < WRITERS
    assert config.backend_port == 5000 + index
    assert config.postgres_port == 6000 + index
    assert _password(data_dir) == password
    compose = (data_dir / "compose.yml").read_text()
    assert f'"127.0.0.1:{4000 + index}:8080"' in compose
    assert f'"127.0.0.1:{5000 + index}:3001"' in compose
    assert list(data_dir.glob(".*.tmp-*")) == []


def test_concurrent_sets_of_other_keys_lose_none(postgres_install: Path) -> None:
    data_dir = postgres_install
    password = _password(data_dir)
    keys = [
        "health_check_timeout",
        "health_wait_timeout",
        "health_poll_interval",
        "health_initial_delay",
        "image_verify_timeout",
        "dhi_verify_timeout",
        "attestation_http_timeout",
        "tuf_fetch_timeout",
        "image_pull_retry_delay",
        "status_docker_timeout",
        "diagnostics_dial_timeout",
    ]
    processes = [
        start_program(
            ["config", "set", key, f"{index + 7}s", "--data-dir", str(data_dir)],
            LOCK_ENV,
        )
        for index, key in enumerate(keys)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 0, stderr.decode()
    stored = json.loads((data_dir / "config.json").read_text())
    for index, key in enumerate(keys):
        assert stored[key] == f"{index + 7}s", key
    assert _password(data_dir) == password
