"""The one ordered write of nats.conf and compose.yml.

Order matters because compose.yml bind-mounts ``./nats.conf``: with NATS the
file is written first, so compose.yml never references a missing file; without
NATS a stale nats.conf is removed only after compose.yml no longer mounts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synthorg_tasks.errors import ConfigError
from synthorg_tasks.logging import get_logger
from synthorg_tasks.render.compose import render_compose
from synthorg_tasks.render.natsconf import render_nats_conf
from synthorg_tasks.render.params import RenderParams
from synthorg_tasks.state.atomic import atomic_write
from synthorg_tasks.state.config import Config
from synthorg_tasks.state.lock import LifecycleLock
from synthorg_tasks.state.paths import COMPOSE_FILE, NATS_CONF_FILE
from synthorg_tasks.verify.pins import Pins

__all__ = ["RenderedFiles", "render_files", "write_compose_files", "write_rendered"]

_logger = get_logger("render")

COMPOSE_MODE = 0o600
NATS_CONF_MODE = 0o644


@dataclass(frozen=True)
class RenderedFiles:
    """compose.yml and nats.conf rendered in memory, not yet written."""

    compose: str
    nats_conf: str | None
    params: RenderParams


def render_files(config: Config, pins: Pins) -> RenderedFiles:
    """Validate the parameters and render both files in memory."""
    params = RenderParams.from_config(config, pins)
    compose = render_compose(params)
    nats_conf = None
    if params.uses_nats:
        nats_conf = render_nats_conf(params.nats_max_payload, params.nats_max_pending)
    return RenderedFiles(compose, nats_conf, params)


def write_rendered(data_dir: Path, files: RenderedFiles, lock: LifecycleLock) -> None:
    """Write already rendered files in the safe order, under ``lock``."""
    if not lock.held:
        raise RuntimeError("write_rendered needs the lifecycle lock")
    nats_path = data_dir / NATS_CONF_FILE
    if files.nats_conf is not None:
        atomic_write(nats_path, files.nats_conf.encode("utf-8"), mode=NATS_CONF_MODE)
    atomic_write(
        data_dir / COMPOSE_FILE, files.compose.encode("utf-8"), mode=COMPOSE_MODE
    )
    if files.nats_conf is None and (nats_path.exists() or nats_path.is_symlink()):
        try:
            nats_path.unlink()
        except OSError as exc:
            raise ConfigError(
                f"cannot remove the stale {nats_path}: {exc.strerror}"
            ) from exc
        _logger.info("removed stale %s", nats_path)
    _logger.info("wrote %s", data_dir / COMPOSE_FILE)


def write_compose_files(
    config: Config, pins: Pins, lock: LifecycleLock
) -> RenderedFiles:
    """Render and write compose.yml (and nats.conf) for ``config``."""
    files = render_files(config, pins)
    write_rendered(config.data_dir, files, lock)
    return files
