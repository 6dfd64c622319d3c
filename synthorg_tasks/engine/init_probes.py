"""Engine look-ups that ``init`` needs before it generates a password.

Each returns ``None`` when the engine cannot be asked, so ``init`` can warn that
the check was skipped instead of failing on a host without Docker.
"""

from __future__ import annotations

from typing import Any

from synthorg_tasks.logging import get_logger

__all__ = ["project_has_containers", "project_volume_exists"]

_logger = get_logger("engine")

_TIMEOUT_SECONDS = 3


def _client() -> Any:
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return None
    try:
        client = docker.from_env(timeout=_TIMEOUT_SECONDS)
        client.ping()
    except (DockerException, OSError) as exc:
        _logger.debug("Docker engine not reachable: %s", exc)
        return None
    return client


def project_volume_exists(project: str, volume: str = "synthorg-pgdata") -> bool | None:
    """Return whether the project's named volume exists, or ``None`` if unknown."""
    from docker.errors import DockerException

    client = _client()
    if client is None:
        return None
    try:
        labelled = client.volumes.list(
            filters={
                "label": [
                    f"com.docker.compose.project={project}",
                    f"com.docker.compose.volume={volume}",
                ]
            }
        )
        if labelled:
            return True
        names = {v.name for v in client.volumes.list()}
        return f"{project}_{volume}" in names
    except (DockerException, OSError) as exc:
        _logger.debug("volume listing failed: %s", exc)
        return None


def project_has_containers(project: str) -> bool | None:
    """Return whether any container of the project exists, or ``None`` if unknown."""
    from docker.errors import DockerException

    client = _client()
    if client is None:
        return None
    try:
        found = client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}
        )
    except (DockerException, OSError) as exc:
        _logger.debug("container listing failed: %s", exc)
        return None
    return bool(found)
