"""One status snapshot: config, engine, containers, readiness and probes.

The snapshot contains facts only; :mod:`synthorg_tasks.status.verdict` judges
them. Collection never raises for an unhealthy stack: an unreachable engine
or backend is recorded and becomes an issue. Only a config that cannot be
read (malformed, too new, unreadable) raises, because status then exits 1.

Engine API cost: ``/_ping``, ``/version`` and one filtered container list,
whatever the number of containers. A container that is restarting,
unhealthy or stopped adds one inspect and one log read, and ``--wide`` on a
PostgreSQL install adds one disk-usage call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from synthorg_tasks.engine.docker_api import ContainerInfo, DockerApi, EngineVersion
from synthorg_tasks.errors import EngineError, NotInitialized
from synthorg_tasks.health.readiness import (
    ReadinessResult,
    api_prefix,
    probe_host,
    probe_readiness,
)
from synthorg_tasks.logging import get_logger
from synthorg_tasks.state.secrets import mask, register_secret
from synthorg_tasks.status.bootfail import extract_boot_failure

__all__ = [
    "BOOT_LOG_LINES",
    "NatsOutcome",
    "PostgresOutcome",
    "Snapshot",
    "StatusSettings",
    "VolumeInfo",
    "collect_snapshot",
    "load_settings",
]

_logger = get_logger("status")

BOOT_LOG_LINES = 80
PGDATA_VOLUME = "synthorg-pgdata"
CORE_SERVICES = frozenset({"backend", "postgres"})


@dataclass(frozen=True)
class StatusSettings:
    """The parts of config.json that status reads, with tunables resolved."""

    data_dir: Path
    project_name: str
    image_tag: str
    channel: str
    persistence_backend: str
    bus_backend: str
    bind_address: str
    backend_port: int
    web_port: int
    postgres_port: int | None = None
    nats_client_port: int | None = None
    postgres_password: str | None = field(default=None, repr=False)
    nats_max_payload_bytes: int | None = None
    health_check_timeout: float = 5.0
    status_docker_timeout: float = 15.0
    api_prefix: str = "/api/v1"

    @property
    def uses_postgres(self) -> bool:
        """Whether persistence is PostgreSQL."""
        return self.persistence_backend == "postgres"

    @property
    def uses_nats(self) -> bool:
        """Whether the bus is NATS."""
        return self.bus_backend == "nats"

    @property
    def probe_host(self) -> str:
        """The host that probes connect to (loopback for a wildcard bind)."""
        return probe_host(self.bind_address)

    def expected_services(self) -> list[str]:
        """Return the services this install runs, in compose order."""
        services = ["data-init"]
        if self.uses_postgres:
            services.append("postgres")
        if self.uses_nats:
            services.append("nats")
        return [*services, "backend", "web"]


def load_settings(
    data_dir: Path, environ: Mapping[str, str] | None = None
) -> StatusSettings:
    """Strict-load config.json and require compose.yml.

    Raises :class:`NotInitialized` for a missing config.json or compose.yml
    and the loader's errors for a config that cannot be used.
    """
    from synthorg_tasks.render.natsconf import parse_nats_size
    from synthorg_tasks.state.config import load_strict

    env = os.environ if environ is None else environ
    config = load_strict(data_dir)
    if not (config.data_dir / "compose.yml").is_file():
        raise NotInitialized(
            f"compose.yml not found in {config.data_dir}; run 'synthorg init'",
            hints=["synthorg init"],
        )
    if config.postgres_password:
        register_secret(config.postgres_password)
    return StatusSettings(
        data_dir=config.data_dir,
        project_name=config.project_name,
        image_tag=config.image_tag,
        channel=config.channel,
        persistence_backend=config.persistence_backend,
        bus_backend=config.bus_backend,
        bind_address=config.bind_address,
        backend_port=config.backend_port,
        web_port=config.web_port,
        postgres_port=config.postgres_port,
        nats_client_port=config.nats_client_port,
        postgres_password=config.postgres_password,
        nats_max_payload_bytes=parse_nats_size(config.nats_max_payload)
        if config.uses_nats
        else None,
        health_check_timeout=config.tunable_seconds("health_check_timeout", env),
        status_docker_timeout=config.tunable_seconds("status_docker_timeout", env),
        api_prefix=api_prefix(env),
    )


@dataclass(frozen=True)
class PostgresOutcome:
    """The authenticated PostgreSQL probe: ``probe`` as in the JSON schema."""

    probe: str
    detail: str | None = None


@dataclass(frozen=True)
class NatsOutcome:
    """The NATS INFO/PING probe: ``probe`` as in the JSON schema."""

    probe: str
    max_payload_actual: int | None = None
    detail: str | None = None


@dataclass(frozen=True)
class VolumeInfo:
    """The PostgreSQL volume and its size (None: not created, -1: unknown)."""

    name: str
    size_bytes: int | None


class PostgresProbe(Protocol):
    """Signature of the PostgreSQL probe used by a snapshot."""

    def __call__(
        self, host: str, port: int, password: str, timeout: float
    ) -> PostgresOutcome: ...


class NatsProbe(Protocol):
    """Signature of the NATS probe used by a snapshot."""

    def __call__(
        self, host: str, port: int, expected: int | None, timeout: float
    ) -> NatsOutcome: ...


@dataclass
class Snapshot:
    """Everything one status run observed."""

    settings: StatusSettings | None
    not_initialized: str | None = None
    engine: EngineVersion | None = None
    compose_version: str | None = None
    engine_error: str | None = None
    containers: list[ContainerInfo] = field(default_factory=list)
    boot_failures: dict[str, str] = field(default_factory=dict)
    readiness: ReadinessResult | None = None
    postgres: PostgresOutcome = field(
        default_factory=lambda: PostgresOutcome("not_applicable")
    )
    nats: NatsOutcome = field(default_factory=lambda: NatsOutcome("not_applicable"))
    volume: VolumeInfo | None = None
    services_filter: tuple[str, ...] | None = None
    api_calls: int = 0

    def admitted(self, service: str) -> bool:
        """Whether the ``--services`` filter admits ``service``."""
        return self.services_filter is None or service in self.services_filter

    def container(self, service: str) -> ContainerInfo | None:
        """Return the newest container of ``service``, or ``None``."""
        matches = [c for c in self.containers if c.service == service]
        if not matches:
            return None
        return max(matches, key=lambda c: c.created)


def default_postgres_probe(
    host: str, port: int, password: str, timeout: float
) -> PostgresOutcome:
    """Run the authenticated PostgreSQL probe of the health package."""
    from synthorg_tasks.health.postgres_probe import probe_postgres

    result = probe_postgres(host, port, password, timeout=timeout)
    return PostgresOutcome(str(result.probe), _masked(result.detail or None))


def default_nats_probe(
    host: str, port: int, expected: int | None, timeout: float
) -> NatsOutcome:
    """Run the NATS INFO/PING probe of the health package."""
    from synthorg_tasks.health.nats_probe import probe_nats

    result = probe_nats(host, port, expected or 0, timeout=timeout)
    return NatsOutcome(
        str(result.probe), result.max_payload, _masked(result.detail or None)
    )


def _masked(detail: object) -> str | None:
    return None if detail is None else mask(str(detail))


def _needs_logs(container: ContainerInfo) -> bool:
    if container.service == "data-init" and container.exit_code == 0:
        return False
    return container.health == "unhealthy" or container.state in {
        "restarting",
        "exited",
        "dead",
    }


def _collect_containers(
    snapshot: Snapshot, api: DockerApi, settings: StatusSettings
) -> None:
    containers = api.list_containers(settings.project_name)
    if snapshot.services_filter is not None:
        containers = [c for c in containers if snapshot.admitted(c.service)]
    snapshot.containers = containers
    for container in containers:
        if not _needs_logs(container) or container.service in snapshot.boot_failures:
            continue
        logs = api.container_logs(container.id, tail=BOOT_LOG_LINES)
        line = extract_boot_failure(logs)
        if line is not None:
            snapshot.boot_failures[container.service] = line


def _postgres_wanted(snapshot: Snapshot, settings: StatusSettings) -> bool:
    return (
        settings.uses_postgres
        and snapshot.admitted("postgres")
        and settings.postgres_port is not None
        and bool(settings.postgres_password)
    )


def _postgres_gate(snapshot: Snapshot, settings: StatusSettings) -> PostgresOutcome:
    """Return why PostgreSQL is not probed, from the containers found."""
    container = snapshot.container("postgres")
    if not snapshot.admitted("postgres") or container is None:
        return PostgresOutcome("skipped", "postgres is not probed")
    if container.state != "running":
        return PostgresOutcome("skipped", "postgres is not running")
    return PostgresOutcome("skipped", "no stored password")


def _nats_wanted(snapshot: Snapshot, settings: StatusSettings) -> bool:
    return (
        settings.uses_nats
        and snapshot.admitted("nats")
        and settings.nats_client_port is not None
    )


def _nats_gate(snapshot: Snapshot) -> NatsOutcome | None:
    """Return why NATS is not probed, or ``None`` when its result counts."""
    container = snapshot.container("nats")
    if not snapshot.admitted("nats") or container is None:
        return NatsOutcome("skipped", detail="nats is not probed")
    if container.state != "running":
        return NatsOutcome("skipped", detail="nats is not running")
    return None


def _volume(snapshot: Snapshot, api: DockerApi, settings: StatusSettings) -> None:
    volume = api.find_volume(settings.project_name, PGDATA_VOLUME)
    if volume is None:
        snapshot.volume = VolumeInfo(f"{settings.project_name}_{PGDATA_VOLUME}", None)
        return
    name = str(volume.get("Name"))
    size = api.volume_size(name)
    snapshot.volume = VolumeInfo(name, -1 if size is None else size)


def collect_snapshot(
    data_dir: Path,
    *,
    services_filter: Sequence[str] | None = None,
    wide: bool = False,
    with_compose_version: bool = False,
    environ: Mapping[str, str] | None = None,
    settings_loader: Callable[[Path], StatusSettings] | None = None,
    connect: Callable[[float], DockerApi] | None = None,
    readiness_probe: Callable[[StatusSettings], ReadinessResult] | None = None,
    postgres_probe: PostgresProbe = default_postgres_probe,
    nats_probe: NatsProbe = default_nats_probe,
    compose_version: Callable[[], str | None] | None = None,
) -> Snapshot:
    """Collect one snapshot; the keyword hooks replace real components in tests."""
    filters = tuple(services_filter) if services_filter is not None else None
    load = settings_loader or (lambda path: load_settings(path, environ))
    try:
        settings = load(data_dir)
    except NotInitialized as exc:
        return Snapshot(None, not_initialized=exc.message, services_filter=filters)
    snapshot = Snapshot(settings, services_filter=filters)

    if connect is None:
        from synthorg_tasks.engine.docker_api import connect as connect_engine

        connect = connect_engine
    engine_connect = connect

    def engine_step() -> DockerApi | None:
        # An unreachable engine is an issue of the verdict, not an error.
        try:
            api = engine_connect(settings.status_docker_timeout)
            snapshot.engine = api.engine
            _collect_containers(snapshot, api, settings)
        except EngineError as exc:
            snapshot.engine_error = exc.message
            return None
        return api

    # The probes run at the same time as the engine queries, because they wait
    # on different servers. A probe result counts only when the container
    # list shows its service running and admitted by the filter.
    probe = readiness_probe or _readiness
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="status") as pool:
        engine_future = pool.submit(engine_step)
        readiness_future = pool.submit(probe, settings)
        postgres_future = None
        if _postgres_wanted(snapshot, settings):
            assert settings.postgres_port is not None
            assert settings.postgres_password is not None
            postgres_future = pool.submit(
                postgres_probe,
                settings.probe_host,
                settings.postgres_port,
                settings.postgres_password,
                settings.health_check_timeout,
            )
        nats_future = None
        if _nats_wanted(snapshot, settings):
            assert settings.nats_client_port is not None
            nats_future = pool.submit(
                nats_probe,
                settings.probe_host,
                settings.nats_client_port,
                settings.nats_max_payload_bytes,
                settings.health_check_timeout,
            )
        api = engine_future.result()
        snapshot.readiness = readiness_future.result()
        _apply_probes(snapshot, settings, postgres_future, nats_future)

    if with_compose_version:
        snapshot.compose_version = (compose_version or _compose_version)()
    if api is not None:
        if wide and settings.uses_postgres:
            try:
                _volume(snapshot, api, settings)
            except EngineError as exc:
                _logger.debug("volume size unavailable: %s", exc)
        snapshot.api_calls = api.request_count
        api.close()
    return snapshot


def _apply_probes(
    snapshot: Snapshot,
    settings: StatusSettings,
    postgres_future: Future[PostgresOutcome] | None,
    nats_future: Future[NatsOutcome] | None,
) -> None:
    if settings.uses_postgres:
        container = snapshot.container("postgres")
        running = container is not None and container.state == "running"
        if postgres_future is not None and running:
            snapshot.postgres = postgres_future.result()
        else:
            snapshot.postgres = _postgres_gate(snapshot, settings)
    if settings.uses_nats:
        gate = _nats_gate(snapshot)
        if gate is None and nats_future is not None:
            snapshot.nats = nats_future.result()
        else:
            snapshot.nats = gate or NatsOutcome("skipped", detail="nats is not running")


def _readiness(settings: StatusSettings) -> ReadinessResult:
    return probe_readiness(
        settings.probe_host,
        settings.backend_port,
        settings.health_check_timeout,
        settings.api_prefix,
    )


def _compose_version() -> str | None:
    from synthorg_tasks.engine.compose_cli import detect_compose

    try:
        cli = detect_compose()
    except EngineError as exc:
        return f"unavailable ({exc.message})"
    return f"{cli.version} ({cli.binary})"
