"""The Compose version check of ``init``, remembered per installed binary.

``init`` must refuse a Compose older than 1.29.0 and warn when none is
installed, but running ``docker-compose version`` (a Python program) costs
more than the rest of ``init``. The result is therefore cached per user,
keyed by the path, size, modification time and inode of every candidate
binary and CLI plugin: replacing or upgrading any of them invalidates it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from synthorg_tasks.engine.compose_cli import (
    MINIMUM_V1,
    ComposeVersion,
    detect_compose,
    parse_compose_version,
)
from synthorg_tasks.errors import ComposeMissing, ComposeTooOld, SynthorgError
from synthorg_tasks.logging import get_logger
from synthorg_tasks.state.atomic import atomic_write

__all__ = ["MISSING_COMPOSE_WARNING", "check_compose_for_init"]

_logger = get_logger("engine")

MISSING_COMPOSE_WARNING = (
    "Docker Compose not found: 'synthorg start' needs the Compose v2 plugin or "
    "docker-compose >= 1.29.0"
)
_PLUGIN_DIRS = (
    "~/.docker/cli-plugins",
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)

Detector = Callable[[Mapping[str, str]], Any]


def _identity(environ: Mapping[str, str]) -> list[list[Any]]:
    """Describe every file whose change could change the detected Compose."""
    path = environ.get("PATH", os.defpath)
    candidates = [
        shutil.which("docker", path=path),
        shutil.which("docker-compose", path=path),
    ]
    config_dir = environ.get("DOCKER_CONFIG")
    plugin_dirs = [
        *_PLUGIN_DIRS,
        *([f"{config_dir}/cli-plugins"] if config_dir else []),
    ]
    candidates += [str(Path(d).expanduser() / "docker-compose") for d in plugin_dirs]
    identity: list[list[Any]] = []
    for candidate in candidates:
        if candidate is None:
            identity.append(["", 0, 0, 0])
            continue
        try:
            info = os.stat(candidate)
        except OSError:
            continue
        identity.append([candidate, info.st_size, info.st_mtime_ns, info.st_ino])
    return identity


def _cache_file(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "synthorg-tasks" / "compose-version.json"


def _read_cache(path: Path, identity: list[list[Any]]) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("identity") != identity:
        return None
    result = document.get("result")
    return result if isinstance(result, dict) else None


def _write_cache(path: Path, identity: list[list[Any]], result: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = json.dumps({"identity": identity, "result": result}).encode("utf-8")
        atomic_write(path, data, mode=0o600)
    except (OSError, ValueError, SynthorgError) as exc:
        # A cache that cannot be written only costs the next init some time.
        _logger.debug("could not cache the Compose version: %s", exc)


def _detect(environ: Mapping[str, str], detector: Detector) -> dict[str, Any]:
    try:
        cli = detector(environ)
    except ComposeMissing:
        return {"missing": True}
    except ComposeTooOld as exc:
        return {"too_old": exc.message}
    return {"binary": cli.binary, "version": str(cli.version)}


def check_compose_for_init(
    environ: Mapping[str, str] | None = None,
    *,
    detector: Detector | None = None,
    use_cache: bool = True,
) -> str | None:
    """Raise :class:`ComposeTooOld` for a too-old Compose; warn when none exists.

    Returns the warning text when no Compose is installed, else ``None``.
    """
    env = dict(os.environ if environ is None else environ)
    detect = detector or detect_compose
    identity = _identity(env)
    cache = _cache_file(env)
    result = _read_cache(cache, identity) if use_cache else None
    if result is None:
        result = _detect(env, detect)
        if use_cache:
            _write_cache(cache, identity, result)
    if result.get("missing"):
        return MISSING_COMPOSE_WARNING
    if "too_old" in result:
        raise ComposeTooOld(
            str(result["too_old"]),
            hints=["install the Compose v2 plugin or docker-compose >= 1.29.0"],
        )
    version: ComposeVersion = parse_compose_version(str(result.get("version", "")))
    if not version.is_v2 and version.triple < MINIMUM_V1:
        raise ComposeTooOld(
            f"Docker Compose {version} ({result.get('binary')}) is too old: at least "
            "1.29.0 is required",
            hints=["install the Compose v2 plugin or docker-compose >= 1.29.0"],
        )
    _logger.info("Docker Compose %s (%s)", version, result.get("binary"))
    return None
