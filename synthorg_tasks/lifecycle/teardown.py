"""``uninstall`` and ``wipe``: remove an install, or only its data.

``uninstall`` stops the stack (``compose down``, with ``--volumes`` unless
``--keep-data``) and deletes the data dir unless ``--keep-data``. ``wipe``
stops the stack and deletes its named volumes, the persistent data, but keeps
config.json, so the next ``synthorg start`` begins with empty data and the
same settings and password.

Both ask for confirmation (or ``--yes``) and hold the lifecycle lock while
they act. The data dir is deleted only when it is an absolute path other than
the file-system root and the home folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from synthorg_tasks import grammars
from synthorg_tasks.errors import ConfigError, SynthorgError, UsageError
from synthorg_tasks.logging import get_logger
from synthorg_tasks.output import Output
from synthorg_tasks.prompts import confirm
from synthorg_tasks.state.config import load_teardown
from synthorg_tasks.state.lock import LifecycleLock, lock_path
from synthorg_tasks.state.paths import COMPOSE_FILE

__all__ = [
    "StackStopper",
    "TeardownResult",
    "check_removable",
    "compose_down",
    "run_uninstall",
    "run_wipe",
]

_logger = get_logger("teardown")

ENGINE_TIMEOUT_SECONDS = 15.0

# Stops a project's stack: (project, data_dir, remove_volumes) -> a message
# for the user when the containers could not be checked, else None.
StackStopper = Callable[[str, Path, bool], "str | None"]


@dataclass
class TeardownResult:
    """Outcome of one ``uninstall`` or ``wipe`` run."""

    project: str
    data_dir: Path
    containers_checked: bool
    volumes_removed: bool
    data_dir_removed: bool
    warnings: list[str] = field(default_factory=list)


def check_removable(path: Path | str) -> Path:
    """Return ``path`` when it is safe to delete; raise :class:`UsageError` if not.

    Rejected: a relative path, the file-system root and the home folder (also
    when reached through a symbolic link).
    """
    text = str(path)
    if not text or not os.path.isabs(text):
        raise UsageError(
            f"refusing to delete {text!r}: the data dir must be an absolute path",
            hints=["pass --data-dir with an absolute path"],
        )
    candidate = Path(os.path.normpath(text))
    resolved = Path(os.path.realpath(candidate))
    home = Path(os.path.realpath(Path.home()))
    for form in (candidate, resolved):
        if form == Path(form.anchor):
            raise UsageError(
                f"refusing to delete {text}: it is the file-system root",
                hints=["pass --data-dir with the folder of the install"],
            )
        if form == home:
            raise UsageError(
                f"refusing to delete {text}: it is the home folder",
                hints=["pass --data-dir with the folder of the install"],
            )
    return candidate


def compose_down(project: str, data_dir: Path, volumes: bool) -> str | None:
    """Run ``compose down`` for the project through the engine session.

    Returns a message, and does nothing, when the engine or Compose is not
    available or compose.yml is missing, so the caller can say the containers
    were not checked.
    """
    from synthorg_tasks.lifecycle._stack import open_engine

    if not (data_dir / COMPOSE_FILE).is_file():
        return f"{data_dir / COMPOSE_FILE} is missing; containers were not checked"
    try:
        session = open_engine(ENGINE_TIMEOUT_SECONDS, Output(quiet=True))
    except SynthorgError as exc:
        return f"{exc.message}; containers were not checked"
    try:
        arguments = ["--volumes"] if volumes else []
        session.compose.run(project, data_dir, "down", arguments)
    finally:
        session.close()
    _logger.info("compose down for project %s (volumes: %s)", project, volumes)
    return None


def _project_of(data_dir: Path, warnings: list[str]) -> str:
    try:
        return load_teardown(data_dir).project_name
    except ConfigError as exc:
        name = grammars.derive_project_name(data_dir.name)
        warnings.append(
            f"cannot load config.json ({exc.message}); continuing with the "
            f"project name {name} derived from the data dir"
        )
        return name


def run_uninstall(
    data_dir: Path,
    out: Output,
    *,
    keep_data: bool,
    yes: bool,
    stopper: StackStopper = compose_down,
    lock_timeout: float = 5.0,
) -> TeardownResult:
    """Stop the stack and delete its volumes and data dir (``uninstall``)."""
    warnings: list[str] = []
    if not keep_data:
        check_removable(data_dir)
    if not data_dir.exists():
        raise UsageError(
            f"nothing to uninstall: {data_dir} does not exist",
            hints=["pass --data-dir with the folder of the install"],
        )
    project = _project_of(data_dir, warnings)
    if keep_data:
        question = (
            f"Remove the containers of project {project}? The volumes and "
            f"{data_dir} are kept."
        )
    else:
        question = (
            f"Remove the containers and volumes of project {project} (ALL DATA "
            f"is deleted) and the data dir {data_dir}?"
        )
    if not confirm(question, action="uninstall", yes=yes, default=False):
        raise UsageError("uninstall cancelled; nothing was removed")

    with LifecycleLock(data_dir, timeout=lock_timeout):
        unchecked = stopper(project, data_dir, not keep_data)
        if unchecked:
            warnings.append(unchecked)
        if not keep_data:
            _remove_tree(data_dir)
    if not keep_data:
        with contextlib.suppress(FileNotFoundError):
            lock_path(data_dir).unlink()
    return TeardownResult(
        project=project,
        data_dir=data_dir,
        containers_checked=unchecked is None,
        volumes_removed=unchecked is None and not keep_data,
        data_dir_removed=not keep_data,
        warnings=warnings,
    )


def _remove_tree(data_dir: Path) -> None:
    try:
        shutil.rmtree(data_dir)
    except OSError as exc:
        raise ConfigError(
            f"cannot delete {data_dir}: {exc.strerror or exc}",
            hints=["check the permissions of the data dir and delete it by hand"],
        ) from exc
    _logger.info("deleted %s", data_dir)


def run_wipe(
    data_dir: Path,
    out: Output,
    *,
    yes: bool,
    stopper: StackStopper = compose_down,
    lock_timeout: float = 5.0,
) -> TeardownResult:
    """Stop the stack and delete its volumes, keeping the configuration (``wipe``).

    Raises when the containers could not be checked, because then no volume
    was deleted and a "wiped" report would be false.
    """
    warnings: list[str] = []
    project = load_teardown(data_dir).project_name
    question = (
        f"Delete ALL DATA of project {project} (its containers and volumes)? "
        f"The configuration in {data_dir} is kept."
    )
    if not confirm(question, action="wipe all data", yes=yes, default=False):
        raise UsageError("wipe cancelled; nothing was removed")
    with LifecycleLock(data_dir, timeout=lock_timeout):
        unchecked = stopper(project, data_dir, True)
    if unchecked:
        raise SynthorgError(
            f"nothing was wiped: {unchecked}",
            hints=["start the Docker engine, then run 'synthorg wipe' again"],
        )
    return TeardownResult(
        project=project,
        data_dir=data_dir,
        containers_checked=True,
        volumes_removed=True,
        data_dir_removed=False,
        warnings=warnings,
    )
