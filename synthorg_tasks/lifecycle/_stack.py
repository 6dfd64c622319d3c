"""Steps that start, stop and doctor share: engine checks, crash loops, ports."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from synthorg_tasks.engine.compose_cli import ComposeCli, detect_compose
from synthorg_tasks.engine.docker_api import ContainerInfo, DockerApi, connect
from synthorg_tasks.errors import NotInitialized, Unhealthy
from synthorg_tasks.logging import get_logger
from synthorg_tasks.output import Output
from synthorg_tasks.ports import PORT_SERVICES
from synthorg_tasks.ports_preflight import PortNeed
from synthorg_tasks.state.config import Config
from synthorg_tasks.state.paths import COMPOSE_FILE
from synthorg_tasks.state.secrets import mask

__all__ = [
    "CRASH_LOOP_RESTARTS",
    "Baseline",
    "EngineSession",
    "check_crash_loop",
    "container_diagnostics",
    "crash_baseline",
    "open_engine",
    "port_needs",
    "require_compose_file",
]

_logger = get_logger("engine")

CRASH_LOOP_RESTARTS = 2
_OLDEST_TESTED_ENGINE = (20, 10)


class EngineSession:
    """A reachable engine and a usable Compose, detected before any write."""

    def __init__(self, api: DockerApi, compose: ComposeCli) -> None:
        self.api = api
        self.compose = compose

    def close(self) -> None:
        """Close the Engine API connection."""
        self.api.close()


def _engine_release(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def open_engine(
    timeout: float, out: Output, environ: Mapping[str, str] | None = None
) -> EngineSession:
    """Connect to the engine (exit 4) and detect Compose (exit 1), in that order."""
    env = os.environ if environ is None else environ
    api = connect(timeout, env)
    try:
        compose = detect_compose(env)
    except BaseException:
        api.close()
        raise
    _logger.info(
        "engine %s, Docker Compose %s (%s)",
        api.engine.version,
        compose.version,
        compose.binary,
    )
    release = _engine_release(api.engine.version)
    if release is not None and release < _OLDEST_TESTED_ENGINE:
        out.warn(
            f"Docker engine {api.engine.version} is older than 20.10; "
            "upgrade if start or status misbehave"
        )
    return EngineSession(api, compose)


def require_compose_file(data_dir: Path) -> None:
    """Raise :class:`NotInitialized` when compose.yml is missing."""
    if not (data_dir / COMPOSE_FILE).is_file():
        raise NotInitialized(
            f"compose.yml not found in {data_dir}; run 'synthorg init'",
            hints=["synthorg init"],
        )


def port_needs(config: Config) -> list[PortNeed]:
    """Return the published host ports of the enabled services."""
    return [
        PortNeed(key, PORT_SERVICES[key], port) for key, port in config.ports().items()
    ]


Baseline = dict[str, tuple[int, str | None]]


def crash_baseline(containers: list[ContainerInfo]) -> Baseline:
    """Record restart counts and finish times before ``compose up`` runs."""
    return {c.id: (c.restart_count or 0, c.finished_at) for c in containers}


def check_crash_loop(
    containers: list[ContainerInfo], baseline: Baseline | None = None
) -> None:
    """Raise :class:`Unhealthy` for a crash-looping service or a failed data-init.

    With a ``baseline``, only what happened since it was taken counts: the
    restarts a container gained, and a data-init run that finished since.
    So a container left crash-looping by an earlier start does not abort a
    start that is about to replace it.
    """
    before = baseline or {}
    for container in containers:
        restarts_before, finished_before = before.get(container.id, (0, None))
        if container.service == "data-init":
            new_run = container.id not in before or (
                container.finished_at != finished_before
            )
            exited = container.state in {"exited", "dead"}
            if new_run and exited and container.exit_code:
                raise Unhealthy(
                    f"data-init exited with code {container.exit_code}; volume "
                    "ownership could not be set, aborting",
                    hints=["synthorg logs data-init"],
                )
            continue
        restarts = (container.restart_count or 0) - restarts_before
        if restarts >= CRASH_LOOP_RESTARTS and container.health != "healthy":
            raise Unhealthy(
                f"{container.service} keeps restarting (crash loop); aborting",
                hints=[f"synthorg logs {container.service}", "run 'synthorg doctor'"],
            )


def container_diagnostics(containers: list[ContainerInfo]) -> list[str]:
    """Return one masked line per container for a failed start."""
    lines = []
    for container in containers:
        restarts = "-" if container.restart_count is None else container.restart_count
        code = "-" if container.exit_code is None else container.exit_code
        parts = [
            f"{container.service}: {container.state}",
            f"status {container.status_text or '-'}",
            f"health {container.health or '-'}",
            f"restarts {restarts}",
            f"exit code {code}",
            f"OOM {'yes' if container.oom_killed else 'no'}",
        ]
        if container.last_health_output:
            last = container.last_health_output.splitlines()[-1][:200]
            parts.append(f"last probe: {last}")
        lines.append(mask(", ".join(parts)))
    return lines
