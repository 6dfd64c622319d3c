"""The status verdict: ordered rules over one snapshot.

The level starts at OK and only escalates (CRITICAL > DEGRADED > OK). Rules
run in a fixed order and each appends its issues, so ``issues`` and
``hints`` come out in rule order. ``backend`` and ``postgres`` are core
services (a problem is CRITICAL), ``web`` and ``nats`` edge services
(DEGRADED). With a ``--services`` filter, expectations and probes cover only
the listed services, while the readiness rules always apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from synthorg_tasks.engine.docker_api import ContainerInfo
from synthorg_tasks.errors import ExitCode
from synthorg_tasks.status.collect import CORE_SERVICES, Snapshot

__all__ = ["Issue", "Level", "Verdict", "evaluate", "exit_code"]

NOT_RUNNING_STATES = frozenset({"created", "exited", "dead", "paused"})


class Level(IntEnum):
    """Verdict levels, ordered so that ``max`` escalates."""

    OK = 0
    DEGRADED = 1
    CRITICAL = 2


@dataclass(frozen=True)
class Issue:
    """One finding of a rule."""

    code: str
    level: Level
    message: str
    service: str | None = None
    hint: str | None = None


@dataclass
class Verdict:
    """The level, the issues in rule order and the summary line."""

    level: Level = Level.OK
    issues: list[Issue] = field(default_factory=list)

    def add(self, issue: Issue) -> None:
        """Record an issue and escalate the level."""
        self.issues.append(issue)
        self.level = max(self.level, issue.level)

    @property
    def hints(self) -> list[str]:
        """The issues' hints, deduplicated, in issue order."""
        seen: list[str] = []
        for issue in self.issues:
            if issue.hint and issue.hint not in seen:
                seen.append(issue.hint)
        return seen

    @property
    def summary(self) -> str:
        """``All systems operational`` or ``<LEVEL>: N problem(s)``."""
        if self.level is Level.OK:
            return "All systems operational"
        return f"{self.level.name}: {len(self.issues)} problem(s)"

    def has(self, code: str) -> bool:
        """Whether an issue with ``code`` was found."""
        return any(issue.code == code for issue in self.issues)


def _service_level(service: str) -> Level:
    return Level.CRITICAL if service in CORE_SERVICES else Level.DEGRADED


def _expected(snapshot: Snapshot) -> list[str]:
    assert snapshot.settings is not None
    return [
        service
        for service in snapshot.settings.expected_services()
        if snapshot.admitted(service)
    ]


# Rule 1 stops evaluation, so it lives in evaluate(); rules 2-18 follow.


def _rule_engine(snapshot: Snapshot, verdict: Verdict) -> None:
    if snapshot.engine_error is not None:
        verdict.add(
            Issue(
                "engine_unreachable",
                Level.CRITICAL,
                f"container listing failed: {snapshot.engine_error}",
                hint="check Docker is running: docker ps",
            )
        )


def _rule_no_containers(snapshot: Snapshot, verdict: Verdict) -> None:
    if (
        snapshot.engine_error is None
        and not snapshot.containers
        and snapshot.services_filter is None
    ):
        verdict.add(
            Issue(
                "no_containers",
                Level.CRITICAL,
                "no containers running",
                hint="synthorg start",
            )
        )


def _rule_service_missing(snapshot: Snapshot, verdict: Verdict) -> None:
    if not snapshot.containers:
        return
    for service in _expected(snapshot):
        if service == "data-init" or snapshot.container(service) is not None:
            continue
        verdict.add(
            Issue(
                "service_missing",
                _service_level(service),
                f"{service} has no container",
                service=service,
                hint="synthorg start",
            )
        )


def _unhealthy(snapshot: Snapshot) -> list[ContainerInfo]:
    # Docker keeps the last health status on a stopped container; a stopped
    # service is judged by the not-running rule instead.
    return [
        c
        for c in snapshot.containers
        if c.health == "unhealthy" and c.state in ("running", "restarting")
    ]


def _rule_unhealthy(snapshot: Snapshot, verdict: Verdict) -> None:
    unhealthy = _unhealthy(snapshot)
    if not unhealthy:
        return
    names = ", ".join(sorted({c.service for c in unhealthy}))
    first = sorted(unhealthy, key=lambda c: c.service)[0].service
    verdict.add(
        Issue(
            "container_unhealthy",
            Level.CRITICAL,
            f"{len(unhealthy)} container(s) unhealthy: {names}",
            service=first if len(unhealthy) == 1 else None,
            hint=f"synthorg logs {first}",
        )
    )


def _rule_restarting(snapshot: Snapshot, verdict: Verdict) -> None:
    counted = {c.id for c in _unhealthy(snapshot)}
    for container in snapshot.containers:
        if container.state != "restarting" or container.id in counted:
            continue
        restarts = container.restart_count
        suffix = f" ({restarts} restarts)" if restarts else ""
        verdict.add(
            Issue(
                "container_restarting",
                Level.DEGRADED,
                f"{container.service} is restarting{suffix}",
                service=container.service,
                hint=f"synthorg logs {container.service} --follow",
            )
        )


def _rule_not_running(snapshot: Snapshot, verdict: Verdict) -> None:
    for service in _expected(snapshot):
        container = snapshot.container(service)
        if service == "data-init" or container is None:
            continue
        if container.state not in NOT_RUNNING_STATES:
            continue
        verdict.add(
            Issue(
                "service_not_running",
                _service_level(service),
                f"{service} is {container.state}",
                service=service,
                hint="synthorg start",
            )
        )


def _rule_data_init(snapshot: Snapshot, verdict: Verdict) -> None:
    if not snapshot.admitted("data-init"):
        return
    container = snapshot.container("data-init")
    if container is None:
        if snapshot.containers:
            verdict.add(
                Issue(
                    "data_init_missing",
                    Level.DEGRADED,
                    "data-init has no container; volume ownership was not set",
                    service="data-init",
                    hint="synthorg start",
                )
            )
        return
    if container.state in {"exited", "dead"} and container.exit_code not in (0, None):
        verdict.add(
            Issue(
                "data_init_failed",
                Level.CRITICAL,
                f"data-init exited with code {container.exit_code}",
                service="data-init",
                hint="synthorg logs data-init",
            )
        )


def _rule_boot_failures(snapshot: Snapshot, verdict: Verdict) -> None:
    for service in sorted(snapshot.boot_failures):
        verdict.add(
            Issue(
                "boot_failure",
                Level.DEGRADED,
                f"{service} failed at start: {snapshot.boot_failures[service]}",
                service=service,
                hint=f"synthorg logs {service}",
            )
        )


def _rule_readiness(snapshot: Snapshot, verdict: Verdict) -> None:
    result = snapshot.readiness
    if result is None:
        return
    if result.error is not None:
        verdict.add(
            Issue(
                "backend_unreachable",
                Level.CRITICAL,
                f"backend unreachable: {result.error}",
                service="backend",
                hint="synthorg doctor",
            )
        )
        return
    if result.unparseable:
        verdict.add(
            Issue(
                "backend_unparseable",
                Level.CRITICAL,
                f"backend health response is unparseable (HTTP {result.http_status})",
                service="backend",
            )
        )
        return
    status_ok = result.http_status is not None and 200 <= result.http_status < 300
    if not status_ok or result.status != "ok":
        verdict.add(
            Issue(
                "backend_not_ready",
                Level.CRITICAL,
                f"backend reports not ready (status={result.status}, HTTP "
                f"{result.http_status}); one of its dependencies is failing",
                service="backend",
                hint="synthorg logs backend",
            )
        )


def component_ok(value: Any) -> bool:
    """Whether a readiness component (``"ok"`` or ``{"status": "ok"}``) is ok."""
    if isinstance(value, str):
        return value == "ok"
    if isinstance(value, dict):
        return value.get("status") == "ok"
    return False


def _parsed_data(snapshot: Snapshot) -> dict[str, Any] | None:
    result = snapshot.readiness
    if result is None or result.error is not None or result.unparseable:
        return None
    return dict(result.data)


def _rule_persistence_wired(snapshot: Snapshot, verdict: Verdict) -> None:
    data = _parsed_data(snapshot)
    if data is None or "persistence" not in data:
        return
    if not component_ok(data["persistence"]):
        verdict.add(
            Issue(
                "persistence_not_wired",
                Level.CRITICAL,
                "the backend reports its persistence component as not ok",
                service="backend",
                hint="synthorg logs backend",
            )
        )


def _has_components(data: dict[str, Any]) -> bool:
    return "persistence" in data or "bus" in data


def _rule_bus_connected(snapshot: Snapshot, verdict: Verdict) -> None:
    data = _parsed_data(snapshot)
    settings = snapshot.settings
    if data is None or settings is None or not settings.uses_nats:
        return
    if not _has_components(data):
        return
    if "bus" not in data or not component_ok(data["bus"]):
        verdict.add(
            Issue(
                "bus_not_connected",
                Level.DEGRADED,
                "the backend reports no connected message bus",
                service="backend",
                hint="synthorg logs backend",
            )
        )


def _rule_postgres(snapshot: Snapshot, verdict: Verdict) -> None:
    probe = snapshot.postgres
    detail = f": {probe.detail}" if probe.detail else ""
    if probe.probe == "auth_failed":
        verdict.add(
            Issue(
                "postgres_auth_failed",
                Level.CRITICAL,
                "the stored password is rejected by PostgreSQL",
                service="postgres",
                hint="restore the matching config.json, or re-create the volume",
            )
        )
    elif probe.probe == "database_missing":
        verdict.add(
            Issue(
                "postgres_database_missing",
                Level.CRITICAL,
                f"the database synthorg does not exist{detail}",
                service="postgres",
            )
        )
    elif probe.probe == "unreachable":
        verdict.add(
            Issue(
                "postgres_unreachable",
                Level.CRITICAL,
                f"PostgreSQL is unreachable{detail}",
                service="postgres",
            )
        )


def _rule_nats(snapshot: Snapshot, verdict: Verdict) -> None:
    probe = snapshot.nats
    if probe.probe == "unreachable":
        detail = f": {probe.detail}" if probe.detail else ""
        verdict.add(
            Issue(
                "nats_unreachable",
                Level.DEGRADED,
                f"NATS did not answer PING{detail}",
                service="nats",
                hint="synthorg logs nats",
            )
        )


def _rule_nats_payload(snapshot: Snapshot, verdict: Verdict) -> None:
    probe = snapshot.nats
    settings = snapshot.settings
    if probe.probe not in {"ok", "mismatch"} or settings is None:
        return
    expected = settings.nats_max_payload_bytes
    actual = probe.max_payload_actual
    if expected is None or actual is None or actual == expected:
        return
    verdict.add(
        Issue(
            "nats_max_payload_mismatch",
            Level.DEGRADED,
            f"server reports {actual} bytes, configured {expected}",
            service="nats",
            hint="synthorg start",
        )
    )


_RULES: tuple[Callable[[Snapshot, Verdict], None], ...] = (
    _rule_engine,
    _rule_no_containers,
    _rule_service_missing,
    _rule_unhealthy,
    _rule_restarting,
    _rule_not_running,
    _rule_data_init,
    _rule_boot_failures,
    _rule_readiness,
    _rule_persistence_wired,
    _rule_bus_connected,
    _rule_postgres,
    _rule_nats,
    _rule_nats_payload,
)


def evaluate(snapshot: Snapshot) -> Verdict:
    """Apply every rule in order and return the verdict."""
    verdict = Verdict()
    if snapshot.not_initialized is not None or snapshot.settings is None:
        verdict.add(
            Issue(
                "not_initialized",
                Level.CRITICAL,
                snapshot.not_initialized or "not initialized",
                hint="synthorg init",
            )
        )
        return verdict
    for rule in _RULES:
        rule(snapshot, verdict)
    return verdict


def exit_code(verdict: Verdict) -> int:
    """Map a verdict to the exit code: 0, 5, 3, or 4 when something is unreachable."""
    if verdict.level is Level.OK:
        return int(ExitCode.OK)
    if verdict.level is Level.DEGRADED:
        return int(ExitCode.DEGRADED)
    if verdict.has("engine_unreachable") or verdict.has("backend_unreachable"):
        return int(ExitCode.UNREACHABLE)
    return int(ExitCode.CRITICAL)
