"""``logs``: stream ``compose logs`` to stdout."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from synthorg_tasks.engine.compose_cli import ComposeCli, detect_compose
from synthorg_tasks.errors import ComposeFailed, Interrupted, UsageError
from synthorg_tasks.grammars import SERVICE_FILTER_RE
from synthorg_tasks.lifecycle._stack import require_compose_file
from synthorg_tasks.state.config import Config, load_strict

__all__ = ["LogsRequest", "logs_arguments", "run_logs"]

_TAIL_PATTERN = re.compile(r"^(all|[0-9]+)$")
# Options that Compose v1 1.29 does not have (checked against its --help).
_V2_ONLY = ("since", "until")


@dataclass(frozen=True)
class LogsRequest:
    """The flags and positional services of ``logs``."""

    follow: bool = False
    tail: str = "100"
    since: str | None = None
    until: str | None = None
    timestamps: bool = False
    no_log_prefix: bool = False
    services: list[str] = field(default_factory=list)


def logs_arguments(request: LogsRequest, cli: ComposeCli) -> list[str]:
    """Build the ``compose logs`` arguments, rejecting what ``cli`` lacks."""
    if not _TAIL_PATTERN.fullmatch(request.tail):
        raise UsageError(f"--tail: {request.tail!r} is invalid (a line count or all)")
    for service in request.services:
        if not SERVICE_FILTER_RE.fullmatch(service):
            raise UsageError(f"service {service!r} is invalid (^[A-Za-z0-9_-]+$)")
    if not cli.is_v2:
        for name in _V2_ONLY:
            if getattr(request, name) is not None:
                raise UsageError(
                    f"--{name} is not supported by Docker Compose {cli.version} "
                    f"({cli.binary}); install the Compose v2 plugin to use it"
                )
    arguments = ["--no-color", f"--tail={request.tail}"]
    if request.follow:
        arguments.append("--follow")
    if request.timestamps:
        arguments.append("--timestamps")
    if request.no_log_prefix:
        arguments.append("--no-log-prefix")
    if request.since is not None:
        arguments += ["--since", request.since]
    if request.until is not None:
        arguments += ["--until", request.until]
    return [*arguments, "--", *request.services]


def _configured_services(config: Config) -> list[str]:
    """Return the services of this install's compose.yml, in compose order."""
    services = ["data-init"]
    if config.uses_postgres:
        services.append("postgres")
    if config.uses_nats:
        services.append("nats")
    return [*services, "backend", "web"]


def run_logs(request: LogsRequest, data_dir: Path) -> None:
    """Stream the logs; Ctrl+C during ``--follow`` exits 130."""
    config = load_strict(data_dir)
    require_compose_file(config.data_dir)
    known = _configured_services(config)
    unknown = [s for s in request.services if s not in known]
    if unknown:
        raise UsageError(
            f"unknown service {', '.join(map(repr, unknown))}; this install has "
            f"{', '.join(known)}",
            hints=[f"synthorg logs --services {known[-2]}"],
        )
    cli = detect_compose()
    arguments = logs_arguments(request, cli)
    process = cli.popen(
        config.project_name, config.data_dir, "logs", arguments, capture=False
    )
    try:
        code = process.wait()
    except KeyboardInterrupt:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
        raise Interrupted("logs interrupted") from None
    if code != 0:
        raise ComposeFailed(f"{cli.binary} logs exited with code {code}")
