"""Fixtures of the stack tests: the engine, the stand-in images and one install.

The matrix cell comes from ``SYNTHORG_STACK_DB`` and ``SYNTHORG_STACK_BUS``
(default postgres and nats), set by the nox session ``stack(db, bus)``.
The full scenario runs on postgres + nats; the other cells run the core of
it (tests marked with ``full_only`` skip there).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.capabilities import require
from tests.images.build import StandInImages, build_all
from tests.stack.engine import engine_answers
from tests.stack.harness import Install, compose_down, sweep_project_label

# Captured before the shared autouse fixture points DOCKER_HOST at nothing.
_ENGINE_HOST = os.environ.get("DOCKER_HOST")
PROJECT_PREFIX = "st-"


@dataclass(frozen=True)
class Cell:
    """One cell of the stack matrix."""

    db: str
    bus: str

    @property
    def full(self) -> bool:
        """Whether this cell runs the full scenario."""
        return self.db == "postgres" and self.bus == "nats"


@pytest.fixture(autouse=True)
def _real_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    if _ENGINE_HOST is not None:
        monkeypatch.setenv("DOCKER_HOST", _ENGINE_HOST)
    else:
        monkeypatch.delenv("DOCKER_HOST", raising=False)


@pytest.fixture(scope="session")
def cell() -> Cell:
    return Cell(
        os.environ.get("SYNTHORG_STACK_DB", "postgres"),
        os.environ.get("SYNTHORG_STACK_BUS", "nats"),
    )


@pytest.fixture(scope="session")
def images() -> StandInImages:
    environ = dict(os.environ)
    if _ENGINE_HOST is not None:
        environ["DOCKER_HOST"] = _ENGINE_HOST
    require("docker", engine_answers(environ), "no Docker engine answers")
    require(
        "compose",
        shutil.which("docker-compose") is not None,
        "docker-compose is not installed",
    )
    return build_all(environ)


@pytest.fixture(scope="module")
def stack(
    images: StandInImages, cell: Cell, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Install]:
    """One install of this cell; its containers and volumes go in teardown."""
    if _ENGINE_HOST is not None:
        os.environ["DOCKER_HOST"] = _ENGINE_HOST
    project = f"{PROJECT_PREFIX}{cell.db[:2]}{cell.bus[:2]}-{secrets.token_hex(3)}"
    install = Install(
        tmp_path_factory.mktemp("stack") / "data", project, cell.db, cell.bus
    )
    try:
        yield install
    finally:
        compose_down(install)
        sweep_project_label(project)
