"""Root lifecycle tasks that belong to no sub-collection."""

from __future__ import annotations

from typing import Any

from synthorg_tasks.tasks._base import CommonOptions, synthorg_task

__all__ = ["init"]


@synthorg_task(
    help={
        "backend": "Persistence backend: sqlite or postgres (default sqlite without "
        "a TTY, asked on a TTY).",
        "persistence_backend": "Alias of --backend.",
        "bus": "Message bus: internal or nats (default internal without a TTY, "
        "asked on a TTY).",
        "bus_backend": "Alias of --bus.",
        "backend_port": "Host port of the backend API, 1-65535 (env "
        "SYNTHORG_BACKEND_PORT; default 3001).",
        "web_port": "Host port of the web dashboard, 1-65535 (env SYNTHORG_WEB_PORT; "
        "default 3000).",
        "postgres_port": "Host port of PostgreSQL, 1-65535 (postgres only; "
        "default 3002).",
        "nats_port": "Host port of the NATS client listener, 1-65535 (nats only; "
        "default 3003).",
        "bind_address": "Host address every port is published on (default "
        "127.0.0.1; other addresses print a warning).",
        "project_name": "Compose project name: [a-z0-9][a-z0-9_-]*, at most 63 "
        "characters (default derived from the data dir).",
        "image_tag": "SynthOrg image tag (env SYNTHORG_IMAGE_TAG; default the "
        "pinned release).",
        "channel": "Update channel: stable or dev (env SYNTHORG_CHANNEL; "
        "default stable).",
        "log_level": "Backend log level: debug, info, warn or error (env "
        "SYNTHORG_LOG_LEVEL; default info).",
    }
)
def init(
    c: Any,
    backend: str | None = None,
    persistence_backend: str | None = None,
    bus: str | None = None,
    bus_backend: str | None = None,
    backend_port: str | None = None,
    web_port: str | None = None,
    postgres_port: str | None = None,
    nats_port: str | None = None,
    bind_address: str | None = None,
    project_name: str | None = None,
    image_tag: str | None = None,
    channel: str | None = None,
    log_level: str | None = None,
    *,
    common: CommonOptions,
) -> None:
    """Write config.json, compose.yml and nats.conf for a new or existing install."""
    from synthorg_tasks.engine.compose_check import check_compose_for_init
    from synthorg_tasks.engine.init_probes import (
        project_has_containers,
        project_volume_exists,
    )
    from synthorg_tasks.lifecycle.init import InitRequest, run_init
    from synthorg_tasks.lifecycle.init_report import report_init

    request = InitRequest(
        backend=backend,
        persistence_backend=persistence_backend,
        bus=bus,
        bus_backend=bus_backend,
        backend_port=backend_port,
        web_port=web_port,
        postgres_port=postgres_port,
        nats_port=nats_port,
        bind_address=bind_address,
        project_name=project_name,
        image_tag=image_tag,
        channel=channel,
        log_level=log_level,
        yes=common.yes,
    )
    data_dir = common.data_dir()
    common.out.banner()
    result = run_init(
        request,
        data_dir,
        common.out,
        volume_probe=project_volume_exists,
        container_probe=project_has_containers,
        compose_check=check_compose_for_init,
    )
    report_init(result, common.out)
