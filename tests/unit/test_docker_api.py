"""The docker SDK adapter: summaries, inspection, env dropping and call counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthorg_tasks.engine.docker_api import connect, parse_status_text
from synthorg_tasks.errors import EngineUnreachable, ExitCode
from synthorg_tasks.health.readiness import ReadinessResult
from synthorg_tasks.status.collect import collect_snapshot
from tests.unit._status_fakes import READY_URL, fake_api, settings, summary


@pytest.mark.parametrize(
    ("state", "status", "health", "code"),
    [
        ("running", "Up 3 minutes (healthy)", "healthy", None),
        ("running", "Up 3 minutes (unhealthy)", "unhealthy", None),
        ("running", "Up 5 seconds (health: starting)", "starting", None),
        ("running", "Up 3 minutes", "none", None),
        ("exited", "Exited (0) 2 minutes ago", None, 0),
        ("exited", "Exited (137) 1 second ago", None, 137),
        ("restarting", "Restarting (1) 4 seconds ago", None, 1),
        ("created", "Created", None, None),
    ],
    ids=[
        "healthy",
        "unhealthy",
        "starting",
        "no-probe",
        "exit-0",
        "exit-137",
        "restarting",
        "created",
    ],
)
def test_parse_status_text(
    state: str, status: str, health: str | None, code: int | None
) -> None:
    assert parse_status_text(state, status) == (health, code)


def test_list_filters_by_project_and_drops_oneoff() -> None:
    api, engine = fake_api(
        [
            summary("backend", index=1),
            summary("web", index=2),
            summary("backend", oneoff=True, index=3),
            summary("backend", project="other", index=4),
        ]
    )
    found = api.list_containers("demo")
    assert [c.service for c in found] == ["backend", "web"]
    assert engine.calls == ["containers"]
    backend = found[0]
    assert backend.health == "healthy"
    assert backend.ports[0].host_port == 3001
    assert backend.restart_count is None


def test_list_inspects_only_problem_containers() -> None:
    api, engine = fake_api(
        [
            summary("backend", index=1),
            summary("web", "restarting", "Restarting (1) 2 seconds ago", index=2),
        ]
    )
    found = {c.service: c for c in api.list_containers("demo")}
    assert engine.calls == ["containers", "inspect_container"]
    web = found["web"]
    assert web.restart_count == 3
    assert web.oom_killed is True
    assert web.exit_code == 1
    assert web.last_health_output == "probe failed"


def test_inspect_drops_container_environment() -> None:
    api, _engine = fake_api([])
    document = api.inspect_container("abc")
    assert "Env" not in document["Config"]
    assert "do-not-leak" not in repr(document)


def test_bound_ports_include_configured_bindings() -> None:
    api, engine = fake_api(
        [summary("web", "restarting", "Restarting (1) 1 second ago", index=2)]
    )
    ports = api.bound_ports("demo")
    assert [(p.host_ip, p.host_port, p.container_port) for p in ports] == [
        ("127.0.0.1", 40001, 3001)
    ]
    assert engine.calls == ["containers", "inspect_container"]


def _snapshot_calls(containers: int) -> int:
    summaries = [
        summary("backend", index=1),
        summary("data-init", "exited", "Exited (0) 5 minutes ago", index=2),
    ] + [summary(f"worker{n}", index=n + 10) for n in range(containers - 2)]
    api, engine = fake_api(summaries)
    collect_snapshot(
        Path("/srv/synthorg"),
        settings_loader=lambda path: settings(),
        connect=lambda timeout: api,
        readiness_probe=lambda s: ReadinessResult(READY_URL, error="not started"),
    )
    return len(engine.calls)


def test_snapshot_api_calls_constant_in_container_count() -> None:
    assert _snapshot_calls(5) == _snapshot_calls(20) == 1


def test_connect_unreachable_socket(tmp_path: Path) -> None:
    environ = {"DOCKER_HOST": f"unix://{tmp_path}/absent.sock"}
    with pytest.raises(EngineUnreachable) as caught:
        connect(1.0, environ)
    error = caught.value
    assert error.exit_code == ExitCode.UNREACHABLE
    assert error.message.startswith("Docker engine not reachable: ")
    assert any("docker CLI is on PATH" in hint for hint in error.hints)
    assert error.__cause__ is not None
