"""The status verdict rules, one by one, in order, with exit codes."""

from __future__ import annotations

import dataclasses

import pytest

from synthorg_tasks.health.readiness import ReadinessResult
from synthorg_tasks.status.collect import NatsOutcome, PostgresOutcome, Snapshot
from synthorg_tasks.status.verdict import Level, evaluate, exit_code
from tests.unit._status_fakes import (
    READY_URL,
    container,
    healthy_snapshot,
    ready,
    settings,
)


def codes(snapshot: Snapshot) -> list[str]:
    return [issue.code for issue in evaluate(snapshot).issues]


def without(snapshot: Snapshot, service: str) -> Snapshot:
    snapshot.containers = [c for c in snapshot.containers if c.service != service]
    return snapshot


def replace(snapshot: Snapshot, service: str, **changes: object) -> Snapshot:
    snapshot.containers = [
        dataclasses.replace(c, **changes) if c.service == service else c
        for c in snapshot.containers
    ]
    return snapshot


@pytest.mark.parametrize(
    ("persistence", "bus"),
    [
        ("sqlite", "internal"),
        ("postgres", "internal"),
        ("sqlite", "nats"),
        ("postgres", "nats"),
    ],
    ids=["sqlite-internal", "postgres-internal", "sqlite-nats", "postgres-nats"],
)
def test_healthy_stack_is_ok(persistence: str, bus: str) -> None:
    verdict = evaluate(healthy_snapshot(persistence, bus))
    assert verdict.level is Level.OK
    assert verdict.issues == []
    assert verdict.summary == "All systems operational"
    assert exit_code(verdict) == 0


def test_rule1_not_initialized_stops() -> None:
    verdict = evaluate(Snapshot(None, not_initialized="no configuration in /x"))
    assert [i.code for i in verdict.issues] == ["not_initialized"]
    assert verdict.hints == ["synthorg init"]
    assert exit_code(verdict) == 3


def test_rule2_engine_unreachable_exit_4() -> None:
    snapshot = healthy_snapshot()
    snapshot.containers = []
    snapshot.engine_error = "Docker engine not reachable: connection refused"
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["engine_unreachable"]
    assert verdict.issues[0].message.startswith("container listing failed: ")
    assert verdict.hints == ["check Docker is running: docker ps"]
    assert exit_code(verdict) == 4


def test_rule3_no_containers() -> None:
    snapshot = healthy_snapshot()
    snapshot.containers = []
    snapshot.readiness = ReadinessResult(READY_URL, error="connection refused")
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["no_containers", "backend_unreachable"]
    assert verdict.issues[0].message == "no containers running"
    assert exit_code(verdict) == 4


def test_rule3b_unmatched_filter_stays_ok() -> None:
    snapshot = healthy_snapshot()
    snapshot.services_filter = ("nothing",)
    snapshot.containers = []
    verdict = evaluate(snapshot)
    assert verdict.level is Level.OK
    assert exit_code(verdict) == 0


@pytest.mark.parametrize(
    ("service", "level"),
    [
        ("backend", Level.CRITICAL),
        ("postgres", Level.CRITICAL),
        ("web", Level.DEGRADED),
        ("nats", Level.DEGRADED),
    ],
    ids=["backend-core", "postgres-core", "web-edge", "nats-edge"],
)
def test_rule4_service_missing(service: str, level: Level) -> None:
    snapshot = without(healthy_snapshot("postgres", "nats"), service)
    if service == "postgres":
        snapshot.postgres = PostgresOutcome("skipped")
    if service == "nats":
        snapshot.nats = NatsOutcome("skipped")
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["service_missing"]
    assert verdict.level is level
    assert verdict.issues[0].service == service
    assert exit_code(verdict) == (3 if level is Level.CRITICAL else 5)


def test_rule4_data_init_missing_is_rule8b_not_rule4() -> None:
    snapshot = without(healthy_snapshot(), "data-init")
    assert codes(snapshot) == ["data_init_missing"]
    assert evaluate(snapshot).level is Level.DEGRADED


def test_rule5_unhealthy_counts_containers() -> None:
    snapshot = replace(healthy_snapshot(), "backend", health="unhealthy")
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["container_unhealthy"]
    assert verdict.issues[0].message.startswith("1 container(s) unhealthy")
    assert verdict.hints == ["synthorg logs backend"]


def test_rule6_restarting_not_counted_twice() -> None:
    snapshot = replace(
        healthy_snapshot(),
        "web",
        state="restarting",
        health="unhealthy",
        restart_count=4,
    )
    assert codes(snapshot) == ["container_unhealthy"]
    snapshot = replace(snapshot, "web", health=None)
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["container_restarting"]
    assert verdict.level is Level.DEGRADED
    assert verdict.hints == ["synthorg logs web --follow"]


@pytest.mark.parametrize("state", ["created", "exited", "dead", "paused"])
def test_rule7_not_running(state: str) -> None:
    snapshot = replace(healthy_snapshot(), "backend", state=state, health=None)
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["service_not_running"]
    assert verdict.level is Level.CRITICAL
    assert verdict.issues[0].message == f"backend is {state}"


def test_rule7_edge_not_running_degraded() -> None:
    snapshot = replace(
        healthy_snapshot(), "web", state="exited", health=None, exit_code=0
    )
    assert evaluate(snapshot).level is Level.DEGRADED


def test_rule8_data_init_failed() -> None:
    snapshot = replace(healthy_snapshot(), "data-init", exit_code=2)
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["data_init_failed"]
    assert "2" in verdict.issues[0].message
    assert verdict.level is Level.CRITICAL


def test_rule9_boot_failures_sorted_by_service() -> None:
    snapshot = healthy_snapshot()
    snapshot.boot_failures = {"web": "ERROR: w", "backend": "ERROR: b"}
    verdict = evaluate(snapshot)
    assert [i.service for i in verdict.issues] == ["backend", "web"]
    assert verdict.issues[0].message == "backend failed at start: ERROR: b"
    assert verdict.level is Level.DEGRADED


def test_rule10_backend_unreachable() -> None:
    snapshot = healthy_snapshot()
    snapshot.readiness = ReadinessResult(READY_URL, error="GET failed: refused")
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["backend_unreachable"]
    assert verdict.hints == ["synthorg doctor"]
    assert exit_code(verdict) == 4


def test_rule11_unparseable() -> None:
    snapshot = healthy_snapshot()
    snapshot.readiness = ReadinessResult(READY_URL, http_status=200, unparseable=True)
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["backend_unparseable"]
    assert "(HTTP 200)" in verdict.issues[0].message
    assert exit_code(verdict) == 3


@pytest.mark.parametrize(
    ("http_status", "status"),
    [(503, "error"), (200, "starting"), (500, "ok")],
    ids=["503-error", "200-not-ok", "500-ok-body"],
)
def test_rule12_not_ready(http_status: int, status: str) -> None:
    snapshot = healthy_snapshot()
    snapshot.readiness = ReadinessResult(
        READY_URL, http_status=http_status, status=status, data={"status": status}
    )
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["backend_not_ready"]
    assert verdict.issues[0].message == (
        f"backend reports not ready (status={status}, HTTP {http_status}); one of "
        "its dependencies is failing"
    )


@pytest.mark.parametrize(
    "component",
    [{"status": "error"}, "down"],
    ids=["object-error", "string-down"],
)
def test_rule13_persistence_not_wired(component: object) -> None:
    snapshot = healthy_snapshot()
    snapshot.readiness = ready(persistence=component)
    assert codes(snapshot) == ["persistence_not_wired"]
    assert evaluate(snapshot).level is Level.CRITICAL


def test_rule13_skipped_without_component_fields() -> None:
    snapshot = healthy_snapshot()
    snapshot.readiness = ready()
    assert codes(snapshot) == []


def test_rule14_bus_not_connected_only_for_nats() -> None:
    snapshot = healthy_snapshot("sqlite", "nats")
    snapshot.readiness = ready(persistence={"status": "ok"})
    assert codes(snapshot) == ["bus_not_connected"]
    assert evaluate(snapshot).level is Level.DEGRADED
    internal = healthy_snapshot("sqlite", "internal")
    internal.readiness = ready(persistence={"status": "ok"})
    assert codes(internal) == []


def test_rule14_topology_free_body_is_not_degraded() -> None:
    snapshot = healthy_snapshot("sqlite", "nats")
    snapshot.readiness = ready()
    assert codes(snapshot) == []


def test_rule15_postgres_auth_failed() -> None:
    snapshot = healthy_snapshot("postgres")
    snapshot.postgres = PostgresOutcome("auth_failed", "password rejected")
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["postgres_auth_failed"]
    assert verdict.hints == [
        "restore the matching config.json, or re-create the volume"
    ]
    assert exit_code(verdict) == 3


@pytest.mark.parametrize(
    ("probe", "code"),
    [
        ("database_missing", "postgres_database_missing"),
        ("unreachable", "postgres_unreachable"),
    ],
)
def test_rule16_postgres_other_failures(probe: str, code: str) -> None:
    snapshot = healthy_snapshot("postgres")
    snapshot.postgres = PostgresOutcome(probe)
    assert codes(snapshot) == [code]
    assert evaluate(snapshot).level is Level.CRITICAL


def test_rule17_nats_unreachable() -> None:
    snapshot = healthy_snapshot("sqlite", "nats")
    snapshot.nats = NatsOutcome("unreachable", detail="no PONG")
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["nats_unreachable"]
    assert verdict.level is Level.DEGRADED
    assert exit_code(verdict) == 5


def test_rule18_max_payload_mismatch() -> None:
    snapshot = healthy_snapshot("sqlite", "nats")
    snapshot.nats = NatsOutcome("mismatch", max_payload_actual=1048576)
    verdict = evaluate(snapshot)
    assert codes(snapshot) == ["nats_max_payload_mismatch"]
    assert verdict.issues[0].message == (
        "server reports 1048576 bytes, configured 16777216"
    )


def test_rules_apply_in_order_and_escalate() -> None:
    snapshot = healthy_snapshot("postgres", "nats")
    snapshot = replace(snapshot, "web", state="restarting", health=None)
    snapshot = replace(snapshot, "data-init", exit_code=1)
    snapshot.nats = NatsOutcome("unreachable")
    snapshot.postgres = PostgresOutcome("auth_failed")
    verdict = evaluate(snapshot)
    assert [i.code for i in verdict.issues] == [
        "container_restarting",
        "data_init_failed",
        "postgres_auth_failed",
        "nats_unreachable",
    ]
    assert verdict.level is Level.CRITICAL
    assert verdict.summary == "CRITICAL: 4 problem(s)"


def test_hints_deduplicated_in_issue_order() -> None:
    snapshot = healthy_snapshot()
    snapshot = without(snapshot, "web")
    snapshot = without(snapshot, "data-init")
    verdict = evaluate(snapshot)
    assert [i.code for i in verdict.issues] == ["service_missing", "data_init_missing"]
    assert verdict.hints == ["synthorg start"]


def test_filter_limits_expectations() -> None:
    snapshot = healthy_snapshot("postgres")
    snapshot.services_filter = ("backend",)
    snapshot.containers = [c for c in snapshot.containers if c.service == "backend"]
    assert codes(snapshot) == []


def test_filter_keeps_readiness_rule() -> None:
    snapshot = healthy_snapshot()
    snapshot.services_filter = ("web",)
    snapshot.containers = [c for c in snapshot.containers if c.service == "web"]
    snapshot.readiness = ReadinessResult(READY_URL, error="refused")
    assert codes(snapshot) == ["backend_unreachable"]


def test_settings_expected_services() -> None:
    assert settings("postgres", "nats").expected_services() == [
        "data-init",
        "postgres",
        "nats",
        "backend",
        "web",
    ]
    assert settings().expected_services() == ["data-init", "backend", "web"]


def test_container_builder_running_health() -> None:
    assert container("web").health == "none"


def test_stopped_edge_with_stale_unhealthy_is_degraded() -> None:
    # Docker keeps Health.Status "unhealthy" on a container it stopped.
    snapshot = replace(
        healthy_snapshot("postgres", "nats"),
        "web",
        state="exited",
        health="unhealthy",
        exit_code=0,
    )
    verdict = evaluate(snapshot)
    assert "container_unhealthy" not in codes(snapshot)
    assert "service_not_running" in codes(snapshot)
    assert verdict.level == Level.DEGRADED
    assert exit_code(verdict) == 5
