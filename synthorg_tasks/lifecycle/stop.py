"""``stop``: ``compose down``, keeping the volumes unless ``--volumes`` is confirmed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from synthorg_tasks.errors import UsageError
from synthorg_tasks.lifecycle._stack import open_engine, require_compose_file
from synthorg_tasks.logging import get_logger
from synthorg_tasks.output import Output
from synthorg_tasks.prompts import confirm
from synthorg_tasks.state.config import load_teardown
from synthorg_tasks.state.lock import LifecycleLock

__all__ = ["StopRequest", "StopResult", "parse_stop_timeout", "run_stop"]

_logger = get_logger("lifecycle")

_TIMEOUT_PATTERN = re.compile(r"^([0-9]+)s?$")


@dataclass(frozen=True)
class StopRequest:
    """The flags of ``stop``."""

    timeout: str | None = None
    volumes: bool = False
    yes: bool = False


@dataclass
class StopResult:
    """Outcome of a stop, for the summary and ``--json``."""

    project: str
    stopped: list[str]
    volumes_removed: list[str]
    volumes_kept: list[str]


def parse_stop_timeout(value: str | None) -> int | None:
    """Parse ``N`` or ``Ns`` (whole seconds >= 0); ``None`` keeps Compose's 10 s."""
    if value is None:
        return None
    match = _TIMEOUT_PATTERN.fullmatch(value.strip())
    if match is None:
        raise UsageError(
            f"--timeout: {value!r} is invalid (whole seconds, written N or Ns)",
            hints=["for example --timeout 30"],
        )
    return int(match.group(1))


def run_stop(request: StopRequest, data_dir: Path, out: Output) -> StopResult:
    """Validate, detect, confirm, lock, then ``compose down``."""
    timeout = parse_stop_timeout(request.timeout)
    config = load_teardown(data_dir)
    session = open_engine(config.tunable_seconds("status_docker_timeout"), out)
    try:
        volumes = [
            str(v.get("Name")) for v in session.api.list_volumes(config.project_name)
        ]
        if request.volumes:
            listed = ", ".join(volumes) or "none created yet"
            confirm(
                f"This deletes all data of project {config.project_name} "
                f"(volumes: {listed}). Continue?",
                action="delete the volumes",
                yes=request.yes,
            )
        with LifecycleLock(config.data_dir, config.tunable_seconds("lock_timeout")):
            require_compose_file(config.data_dir)
            containers = session.api.list_containers(config.project_name)
            for container in containers:
                out.info(f"stopping {container.service} ({container.state})")
            arguments: list[str] = []
            if timeout is not None:
                arguments += ["--timeout", str(timeout)]
            if request.volumes:
                arguments.append("--volumes")
            session.compose.run(config.project_name, config.data_dir, "down", arguments)
    finally:
        session.close()
    _logger.info("project %s stopped", config.project_name)
    if request.volumes:
        return StopResult(
            config.project_name, [c.service for c in containers], volumes, []
        )
    return StopResult(config.project_name, [c.service for c in containers], [], volumes)


def report_stop(result: StopResult, out: Output) -> None:
    """Print the outcome of ``stop``."""
    if out.json:
        out.document(
            {
                "project": result.project,
                "stopped": result.stopped,
                "volumes_removed": result.volumes_removed,
                "volumes_kept": result.volumes_kept,
            }
        )
        return
    out.data("SynthOrg stopped")
    if result.volumes_removed:
        out.warn(
            "all persistent data was deleted (volumes: "
            + ", ".join(result.volumes_removed)
            + ")",
            unsuppressible=True,
        )
    else:
        kept = ", ".join(result.volumes_kept) or "none created yet"
        out.data(f"data preserved in volumes: {kept}")
