"""Fixtures shared by the unit tests: a real install made by ``init``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from synthorg_tasks.lifecycle.init import InitRequest, run_init
from synthorg_tasks.output import Output

Installer = Callable[..., Path]


@pytest.fixture(autouse=True)
def _no_editor_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the caller's VISUAL and EDITOR, which ``config edit`` would run."""
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)


@pytest.fixture
def install(tmp_path: Path) -> Installer:
    """Return a function that runs ``init`` for a fresh data dir and returns it."""

    def make(
        backend: str = "sqlite", bus: str = "internal", name: str = "install"
    ) -> Path:
        data_dir = tmp_path / name
        request = InitRequest(backend=backend, bus=bus, yes=True, environ={})
        run_init(
            request,
            data_dir,
            Output(quiet=True),
            volume_probe=lambda project: False,
            container_probe=lambda project: False,
        )
        return data_dir

    return make
