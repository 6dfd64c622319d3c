"""Status output: the JSON document (schema ``status.v1.json``) and the human view.

The human view is built as plain lines first and drawn with rich only when
colour and boxes are allowed, so plain mode is pure ASCII.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any, TextIO

from synthorg_tasks.engine.docker_api import ContainerInfo
from synthorg_tasks.state.secrets import mask
from synthorg_tasks.status.collect import Snapshot
from synthorg_tasks.status.verdict import Level, Verdict

__all__ = [
    "SCHEMA_VERSION",
    "human_lines",
    "image_display",
    "load_schema",
    "render_human",
    "status_document",
]

SCHEMA_VERSION = 1


def load_schema() -> dict[str, Any]:
    """Return the JSON Schema of the status document."""
    text = (
        resources.files("synthorg_tasks").joinpath("schemas").joinpath("status.v1.json")
    )
    return dict(json.loads(text.read_text(encoding="utf-8")))


# -- JSON ---------------------------------------------------------------------


def _service_row(snapshot: Snapshot, service: str, expected: bool) -> dict[str, Any]:
    container = snapshot.container(service)
    if container is None:
        return {
            "service": service,
            "expected": expected,
            "present": False,
            "container": None,
            "state": None,
            "health": None,
            "exit_code": None,
            "restart_count": None,
            "oom_killed": None,
            "image": None,
            "ports": [],
            "started_at": None,
        }
    return {
        "service": service,
        "expected": expected,
        "present": True,
        "container": container.short_id,
        "state": container.state,
        "health": container.health,
        "exit_code": container.exit_code,
        "restart_count": container.restart_count,
        "oom_killed": container.oom_killed,
        "image": container.image,
        "ports": [
            f"{_host(p.host_ip)}:{p.host_port}->{p.container_port}/{p.protocol}"
            for p in container.ports
        ],
        "started_at": container.started_at,
    }


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _service_names(snapshot: Snapshot) -> list[tuple[str, bool]]:
    expected: list[str] = []
    if snapshot.settings is not None:
        expected = [
            s for s in snapshot.settings.expected_services() if snapshot.admitted(s)
        ]
    names = [(service, True) for service in expected]
    extra = sorted({c.service for c in snapshot.containers} - set(expected))
    return names + [(service, False) for service in extra if service]


def _health_document(snapshot: Snapshot) -> dict[str, Any]:
    result = snapshot.readiness
    if result is None:
        return {
            "url": None,
            "ready": False,
            "http_status": None,
            "status": None,
            "uptime_seconds": None,
            "error": "not probed",
        }
    error = result.error
    if error is None and result.unparseable:
        error = f"unparseable response (HTTP {result.http_status})"
    return {
        "url": result.url,
        "ready": result.ready,
        "http_status": result.http_status,
        "status": result.status,
        "uptime_seconds": result.uptime_seconds,
        "error": error,
    }


def _persistence_document(snapshot: Snapshot) -> dict[str, Any]:
    settings = snapshot.settings
    volume = None
    if snapshot.volume is not None:
        volume = {
            "name": snapshot.volume.name,
            "size_bytes": snapshot.volume.size_bytes,
        }
    return {
        "backend": settings.persistence_backend if settings else None,
        "probe": snapshot.postgres.probe,
        "detail": snapshot.postgres.detail,
        "volume": volume,
    }


def _bus_document(snapshot: Snapshot) -> dict[str, Any]:
    settings = snapshot.settings
    return {
        "backend": settings.bus_backend if settings else None,
        "probe": snapshot.nats.probe,
        "max_payload_expected": settings.nats_max_payload_bytes if settings else None,
        "max_payload_actual": snapshot.nats.max_payload_actual,
        "detail": snapshot.nats.detail,
    }


def status_document(snapshot: Snapshot, verdict: Verdict) -> dict[str, Any]:
    """Build the one JSON document of ``status --json``."""
    return {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict.level.name,
        "summary": verdict.summary,
        "issues": [
            {
                "code": issue.code,
                "level": issue.level.name,
                "service": issue.service,
                "message": mask(issue.message),
            }
            for issue in verdict.issues
        ],
        "hints": verdict.hints,
        "services": [
            _service_row(snapshot, name, expected)
            for name, expected in _service_names(snapshot)
        ],
        "health": _health_document(snapshot),
        "persistence": _persistence_document(snapshot),
        "bus": _bus_document(snapshot),
    }


# -- human ----------------------------------------------------------------------


def image_display(reference: str, *, no_trunc: bool = False) -> str:
    """Return the tag of an image reference, or the whole reference with no_trunc.

    A registry port (``host:5000/name``) is never read as a tag, and a digest
    reference shows ``@sha256:`` plus 12 hex digits.
    """
    if no_trunc or not reference:
        return reference
    if "@sha256:" in reference:
        return "@" + reference.rsplit("@", 1)[1][:19]
    last = reference.rsplit("/", 1)[-1]
    if ":" in last:
        return last.split(":", 1)[1]
    return "latest"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


# Kind of a service's state → (icon, plain-mode word).
_STATE_ICONS = {
    "ok": ("✓", "ok"),
    "fail": ("✗", "FAIL"),
    "wait": ("⋯", ".."),
    "warn": ("⚠", "!!"),
}


def _state_kind(service: str, container: ContainerInfo | None) -> str:
    if container is None:
        return "fail"
    if container.state == "restarting":
        return "warn"
    if container.health == "unhealthy":
        return "fail"
    if container.health == "starting" or container.state == "created":
        return "wait"
    if container.state in {"exited", "dead"}:
        return "ok" if service == "data-init" and container.exit_code == 0 else "fail"
    return "ok" if container.state == "running" else "wait"


def _health_word(container: ContainerInfo | None) -> str:
    if container is None or container.health is None:
        return "-"
    return "no probe" if container.health == "none" else container.health


def _status_word(service: str, container: ContainerInfo | None) -> str:
    if container is None:
        return "missing"
    completed = container.state == "exited" and container.exit_code == 0
    if service == "data-init" and completed:
        return "completed"
    text = container.status_text
    if text.startswith("Up "):
        return "up " + text[3:].split(" (", 1)[0]
    if text.startswith("Exited "):
        return "exited " + text[len("Exited ") :]
    return text.lower() or container.state


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def _health_line(snapshot: Snapshot) -> str:
    result = snapshot.readiness
    if result is None:
        return "Backend health: not probed"
    if result.error is not None:
        return f"Backend unreachable: {result.error}"
    if result.unparseable:
        return f"Backend health: unparseable response (HTTP {result.http_status})"
    if result.ready:
        uptime = ""
        if result.uptime_seconds is not None:
            uptime = f" (uptime {_duration(result.uptime_seconds)})"
        return f"Backend healthy{uptime}"
    return f"Backend not ready (status={result.status}, HTTP {result.http_status})"


def _size(size: int | None) -> str:
    if size is None:
        return "not created yet"
    if size < 0:
        return "size unavailable"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _service_rows(
    snapshot: Snapshot, *, plain: bool, wide: bool, no_trunc: bool
) -> list[list[str]]:
    header = ["SERVICE", "STATE", "HEALTH", "IMAGE", "STATUS"]
    if wide:
        header.append("PORTS")
    rows = [header]
    for service, _expected in _service_names(snapshot):
        container = snapshot.container(service)
        icon, word = _STATE_ICONS[_state_kind(service, container)]
        state = word if plain else icon
        if container is not None:
            state = f"{state} {container.state}"
        row = [
            service,
            state,
            _health_word(container),
            image_display(container.image, no_trunc=no_trunc) if container else "-",
            _status_word(service, container),
        ]
        if wide:
            ports = (
                ", ".join(f"{_host(p.host_ip)}:{p.host_port}" for p in container.ports)
                if container
                else ""
            )
            row.append(ports or "-")
        rows.append(row)
    return rows


def human_lines(
    snapshot: Snapshot,
    verdict: Verdict,
    *,
    plain: bool = False,
    wide: bool = False,
    no_trunc: bool = False,
) -> list[str]:
    """Return the human status view as lines (no colour)."""
    lines: list[str] = []
    settings = snapshot.settings
    if settings is not None:
        engine = snapshot.engine.version if snapshot.engine else "unreachable"
        lines.append(
            f"Data dir: {settings.data_dir}   Project: {settings.project_name}   "
            f"Image tag: {settings.image_tag}   Channel: {settings.channel}"
        )
        lines.append(
            f"Engine: {engine}   Compose: {snapshot.compose_version or 'not checked'}"
        )
        lines.append("")
    lines.extend(_banner(verdict, plain=plain))
    if settings is None:
        return lines
    lines.append("")
    lines.append(_health_line(snapshot))
    lines.append("")
    if snapshot.services_filter is not None and not snapshot.containers:
        lines.append("No containers match requested services")
    else:
        lines.extend(
            _table(_service_rows(snapshot, plain=plain, wide=wide, no_trunc=no_trunc))
        )
    lines.append("")
    persistence = f"Persistence: {settings.persistence_backend}"
    if settings.uses_postgres:
        persistence += f" (probe: {snapshot.postgres.probe})"
        if wide and snapshot.volume is not None:
            persistence += (
                f", volume {snapshot.volume.name}: {_size(snapshot.volume.size_bytes)}"
            )
    lines.append(persistence)
    bus = f"Bus: {settings.bus_backend}"
    if settings.uses_nats:
        bus += f" (probe: {snapshot.nats.probe}"
        if snapshot.nats.max_payload_actual is not None:
            bus += f", max_payload {snapshot.nats.max_payload_actual}"
        bus += ")"
    lines.append(bus)
    host = settings.probe_host
    host = f"[{host}]" if ":" in host else host
    lines.append(f"Dashboard: http://{host}:{settings.web_port}")
    lines.append(f"API:       http://{host}:{settings.backend_port}/api")
    lines.append(
        f"Ready:     http://{host}:{settings.backend_port}{settings.api_prefix}/readyz"
    )
    return [mask(line) for line in lines]


def _banner(verdict: Verdict, *, plain: bool) -> list[str]:
    if verdict.level is Level.OK:
        return [verdict.summary]
    body = [verdict.summary]
    body += [f"- {issue.message}" for issue in verdict.issues]
    if verdict.hints:
        body.append("Try:")
        body += [f"> {hint}" for hint in verdict.hints]
    title = f"Status: {verdict.level.name}"
    width = max(len(line) for line in [title, *body]) + 2
    if plain:
        rule = "+" + "-" * width + "+"
        framed = [f"| {line.ljust(width - 1)}|" for line in [title, *body]]
        return [rule, framed[0], rule, *framed[1:], rule]
    top = "┌" + "─" * width + "┐"
    bottom = "└" + "─" * width + "┘"
    return [top, *[f"│ {line.ljust(width - 1)}│" for line in [title, *body]], bottom]


def render_human(
    snapshot: Snapshot,
    verdict: Verdict,
    stream: TextIO,
    *,
    plain: bool = False,
    color: bool = False,
    wide: bool = False,
    no_trunc: bool = False,
) -> None:
    """Write the human view to ``stream``, coloured by level when allowed."""
    lines = human_lines(snapshot, verdict, plain=plain, wide=wide, no_trunc=no_trunc)
    if plain or not color:
        stream.write("\n".join(lines) + "\n")
        stream.flush()
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(file=stream, highlight=False, soft_wrap=True)
    style = {Level.OK: "green", Level.DEGRADED: "yellow", Level.CRITICAL: "red"}
    banner = set(_banner(verdict, plain=False))
    for line in lines:
        console.print(Text(line, style=style[verdict.level] if line in banner else ""))
