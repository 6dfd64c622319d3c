"""``status``: collect, judge and print one snapshot, or one per ``--watch`` tick."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from synthorg_tasks import grammars
from synthorg_tasks.errors import Interrupted, UsageError
from synthorg_tasks.output import Output, emit_json
from synthorg_tasks.status.collect import Snapshot, collect_snapshot
from synthorg_tasks.status.render import render_human, status_document
from synthorg_tasks.status.verdict import Verdict, evaluate, exit_code

__all__ = ["StatusRequest", "parse_services", "run_status"]

_CLEAR_SCREEN = "\x1b[H\x1b[2J"


@dataclass(frozen=True)
class StatusRequest:
    """The flags of ``status``."""

    wide: bool = False
    no_trunc: bool = False
    services: str | None = None
    watch: bool = False
    interval: str = "2s"
    check: bool = False


def parse_services(value: str | None, out: Output) -> tuple[str, ...] | None:
    """Split ``a,b``; invalid names are warned about and ignored."""
    if value is None:
        return None
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip()
        if not name:
            continue
        if not grammars.SERVICE_FILTER_RE.fullmatch(name):
            # stderr, so also shown with --json; only --quiet hides it.
            out.warn(
                f"ignoring invalid service name {name!r} (^[A-Za-z0-9_-]+$)",
                unsuppressible=not out.quiet,
            )
            continue
        names.append(name)
    return tuple(names)


def _interval(value: str) -> float:
    try:
        return grammars.parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"--interval: {value!r} is invalid ({exc})") from None


def _emit(
    snapshot: Snapshot, verdict: Verdict, request: StatusRequest, out: Output
) -> None:
    if request.check:
        return
    if out.json:
        emit_json(status_document(snapshot, verdict))
        return
    render_human(
        snapshot,
        verdict,
        sys.stdout,
        plain=out.plain,
        color=out.color and sys.stdout.isatty(),
        wide=request.wide,
        no_trunc=request.no_trunc,
    )


def run_status(
    request: StatusRequest,
    data_dir: Path,
    out: Output,
    *,
    collect: Callable[..., Snapshot] = collect_snapshot,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the status (or nothing with ``--check``) and return the exit code."""
    interval = _interval(request.interval)
    if request.watch and out.json:
        raise UsageError("--watch cannot be combined with --json")
    services = parse_services(request.services, out)
    human = not (out.json or request.check)
    first = True
    while True:
        snapshot = collect(
            data_dir,
            services_filter=services,
            wide=request.wide,
            with_compose_version=human,
        )
        verdict = evaluate(snapshot)
        if request.watch and not first and not request.check:
            if sys.stdout.isatty() and not out.plain:
                sys.stdout.write(_CLEAR_SCREEN)
            else:
                sys.stdout.write("---\n")
        _emit(snapshot, verdict, request, out)
        code = exit_code(verdict)
        if not request.watch:
            return code
        first = False
        try:
            sleep(interval)
        except KeyboardInterrupt:
            raise Interrupted("status --watch interrupted") from None
