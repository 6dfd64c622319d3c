"""init's Compose version check and its per-binary cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from synthorg_tasks.engine.compose_check import (
    MISSING_COMPOSE_WARNING,
    check_compose_for_init,
)
from synthorg_tasks.errors import ComposeTooOld
from synthorg_tasks.lifecycle.init import InitRequest, run_init
from synthorg_tasks.output import Output


def _fake_compose(folder: Path, version: str) -> dict[str, str]:
    """Put a docker-compose that reports ``version`` first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "docker-compose"
    script.write_text(f"#!/bin/sh\necho '{version}'\n")
    script.chmod(0o755)
    return {
        "PATH": str(folder),
        "HOME": str(folder),
        "XDG_CACHE_HOME": str(folder / "c"),
    }


def test_too_old_compose_fails_init(tmp_path: Path) -> None:
    env = _fake_compose(tmp_path / "bin", "1.28.6")
    with pytest.raises(ComposeTooOld) as caught:
        run_init(
            InitRequest(environ={}),
            tmp_path / "d",
            Output(),
            compose_check=lambda: check_compose_for_init(env),
        )
    assert "1.28.6 (docker-compose) is too old: at least 1.29.0" in caught.value.message
    assert caught.value.exit_code == 1
    assert not (tmp_path / "d").exists()


def test_missing_compose_only_warns(tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path / "empty"),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "c"),
    }
    result = run_init(
        InitRequest(environ={}),
        tmp_path / "d",
        Output(),
        compose_check=lambda: check_compose_for_init(env),
    )
    assert MISSING_COMPOSE_WARNING in result.warnings


def test_supported_compose_passes(tmp_path: Path) -> None:
    env = _fake_compose(tmp_path / "bin", "1.29.2")
    assert check_compose_for_init(env) is None


def test_cache_is_used_until_the_binary_changes(tmp_path: Path) -> None:
    env = _fake_compose(tmp_path / "bin", "1.29.2")
    calls: list[int] = []

    def counting(environ: object) -> object:
        from synthorg_tasks.engine.compose_cli import detect_compose

        calls.append(1)
        return detect_compose(environ)  # type: ignore[arg-type]

    assert check_compose_for_init(env, detector=counting) is None
    assert check_compose_for_init(env, detector=counting) is None
    assert len(calls) == 1
    cache = tmp_path / "bin" / "c" / "synthorg-tasks" / "compose-version.json"
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    script = tmp_path / "bin" / "docker-compose"
    script.write_text("#!/bin/sh\necho '1.27.0'\n")
    os.utime(script, ns=(1, 1))
    with pytest.raises(ComposeTooOld):
        check_compose_for_init(env, detector=counting)
    assert len(calls) == 2
