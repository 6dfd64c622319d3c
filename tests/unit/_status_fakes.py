"""Builders of status snapshots and a fake Engine API for the status tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synthorg_tasks.engine.docker_api import (
    PROJECT_LABEL,
    SERVICE_LABEL,
    ContainerInfo,
    DockerApi,
    EngineVersion,
)
from synthorg_tasks.health.readiness import ReadinessResult
from synthorg_tasks.status.collect import Snapshot, StatusSettings

ENGINE = EngineVersion("20.10.24", "1.41", "linux", "amd64")
READY_URL = "http://127.0.0.1:3001/api/v1/readyz"


def settings(
    persistence: str = "sqlite", bus: str = "internal", **changes: Any
) -> StatusSettings:
    values: dict[str, Any] = {
        "data_dir": Path("/srv/synthorg"),
        "project_name": "demo",
        "image_tag": "1.0.0",
        "channel": "stable",
        "persistence_backend": persistence,
        "bus_backend": bus,
        "bind_address": "127.0.0.1",
        "backend_port": 3001,
        "web_port": 3000,
        "postgres_port": 3002 if persistence == "postgres" else None,
        "nats_client_port": 3003 if bus == "nats" else None,
        "postgres_password": "p" * 43 if persistence == "postgres" else None,
        "nats_max_payload_bytes": 16 * 1024 * 1024 if bus == "nats" else None,
    }
    values.update(changes)
    return StatusSettings(**values)


def container(
    service: str,
    state: str = "running",
    health: str | None = "none",
    exit_code: int | None = None,
    **changes: Any,
) -> ContainerInfo:
    values: dict[str, Any] = {
        "id": f"{abs(hash(service)):064x}"[:64],
        "name": f"demo_{service}_1",
        "service": service,
        "state": state,
        "health": health if state == "running" else None,
        "exit_code": exit_code,
        "image": f"ghcr.io/aureliolo/synthorg-{service}:1.0.0",
        "status_text": "Up 3 minutes",
        "restart_count": 0,
        "oom_killed": False,
    }
    values.update(changes)
    return ContainerInfo(**values)


def healthy_containers(services: Iterable[str]) -> list[ContainerInfo]:
    found = []
    for service in services:
        if service == "data-init":
            found.append(
                container(
                    service,
                    "exited",
                    exit_code=0,
                    status_text="Exited (0) 3 minutes ago",
                )
            )
        elif service in {"backend", "postgres", "web"}:
            found.append(container(service, health="healthy"))
        else:
            found.append(container(service))
    return found


def ready(**data: Any) -> ReadinessResult:
    body = {"status": "ok", "uptime_seconds": 12.5, **data}
    return ReadinessResult(
        READY_URL,
        ready=True,
        http_status=200,
        status="ok",
        uptime_seconds=12.5,
        data=body,
    )


def healthy_snapshot(persistence: str = "sqlite", bus: str = "internal") -> Snapshot:
    from synthorg_tasks.status.collect import NatsOutcome, PostgresOutcome

    current = settings(persistence, bus)
    snapshot = Snapshot(
        current,
        engine=ENGINE,
        containers=healthy_containers(current.expected_services()),
        readiness=ready(),
    )
    if persistence == "postgres":
        snapshot.postgres = PostgresOutcome("ok")
    if bus == "nats":
        snapshot.nats = NatsOutcome("ok", max_payload_actual=16 * 1024 * 1024)
    return snapshot


def summary(
    service: str,
    state: str = "running",
    status: str = "Up 2 minutes (healthy)",
    *,
    project: str = "demo",
    oneoff: bool = False,
    index: int = 1,
) -> dict[str, Any]:
    """A ``GET /containers/json`` entry as the engine returns it."""
    return {
        "Id": f"{index:064x}",
        "Names": [f"/{project}_{service}_{index}"],
        "Image": f"stand-in/{service}:1",
        "State": state,
        "Status": status,
        "Created": 1_700_000_000 + index,
        "Ports": [
            {"IP": "127.0.0.1", "PrivatePort": 3001, "PublicPort": 3001, "Type": "tcp"}
        ]
        if service == "backend"
        else [],
        "Labels": {
            PROJECT_LABEL: project,
            SERVICE_LABEL: service,
            "com.docker.compose.oneoff": "True" if oneoff else "False",
        },
    }


class FakeEngine:
    """The low-level docker ``APIClient`` methods the adapter calls."""

    def __init__(self, summaries: list[dict[str, Any]]) -> None:
        self.summaries = summaries
        self.calls: list[str] = []

    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls.append("containers")
        assert all is True
        wanted = dict(label.split("=", 1) for label in filters["label"])
        return [s for s in self.summaries if all_labels_match(s["Labels"], wanted)]

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.calls.append("inspect_container")
        return {
            "Id": container_id,
            "RestartCount": 3,
            "Config": {"Env": ["POSTGRES_PASSWORD=do-not-leak"], "Image": "x"},
            "HostConfig": {
                "PortBindings": {
                    "3001/tcp": [{"HostIp": "127.0.0.1", "HostPort": "40001"}],
                    "8222/tcp": None,
                }
            },
            "State": {
                "Status": "restarting",
                "ExitCode": 1,
                "OOMKilled": True,
                "StartedAt": "2026-01-01T00:00:00Z",
                "FinishedAt": "2026-01-01T00:00:01Z",
                "Health": {
                    "Status": "unhealthy",
                    "Log": [{"Output": "probe failed\n"}],
                },
            },
        }

    def logs(self, container_id: str, **kwargs: Any) -> bytes:
        self.calls.append("logs")
        return b"ERROR: boot failed\n"

    def volumes(self, filters: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("volumes")
        return {"Volumes": []}

    def df(self) -> dict[str, Any]:
        self.calls.append("df")
        return {"Volumes": []}

    def close(self) -> None:
        return


def all_labels_match(labels: dict[str, str], wanted: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


def fake_api(summaries: list[dict[str, Any]]) -> tuple[DockerApi, FakeEngine]:
    engine = FakeEngine(summaries)
    return DockerApi(engine, ENGINE), engine
