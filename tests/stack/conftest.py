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


def _current_cell() -> Cell:
    return Cell(
        os.environ.get("SYNTHORG_STACK_DB", "postgres"),
        os.environ.get("SYNTHORG_STACK_BUS", "nats"),
    )


def _cell_admits(cell: Cell, requirement: str) -> bool:
    if requirement == "full":
        return cell.full
    if requirement == "postgres":
        return cell.db == "postgres"
    if requirement == "nats":
        return cell.bus == "nats"
    raise ValueError(f"unknown cell requirement {requirement!r}")


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Deselect tests that do not apply to this matrix cell, rather than skip them.

    A test marked ``cell("postgres")`` runs in the postgres cells only, and
    ``cell("full")`` only in the postgres + nats cell that runs the full
    scenario. CI then reports no skipped test.
    """
    current = _current_cell()
    kept, dropped = [], []
    for item in items:
        marks = [m.args[0] for m in item.iter_markers("cell")]
        (kept if all(_cell_admits(current, m) for m in marks) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _real_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    if _ENGINE_HOST is not None:
        monkeypatch.setenv("DOCKER_HOST", _ENGINE_HOST)
    else:
        monkeypatch.delenv("DOCKER_HOST", raising=False)


@pytest.fixture(scope="session")
def cell() -> Cell:
    return _current_cell()


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
