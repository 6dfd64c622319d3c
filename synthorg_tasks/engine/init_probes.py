"""Engine look-ups that ``init`` needs before it generates a password.

Each returns ``None`` when the engine cannot be asked, so ``init`` can warn that
the check was skipped instead of failing on a host without Docker.
"""

from __future__ import annotations

import os
from typing import Any

from synthorg_tasks.engine.docker_api import DEFAULT_UNIX_SOCKET, unix_socket_error
from synthorg_tasks.logging import get_logger

__all__ = ["project_has_containers", "project_volume_exists"]

_logger = get_logger("engine")

_TIMEOUT_SECONDS = 3


def _unix_socket_answers() -> bool:
    """Return False when DOCKER_HOST names a unix socket that accepts no connection.

    docker-py leaks its socket when a unix connection is refused, so the
    common "no daemon" case is detected here first, which is also faster.
    """
    host = os.environ.get("DOCKER_HOST", DEFAULT_UNIX_SOCKET)
    error = unix_socket_error(host, _TIMEOUT_SECONDS)
    if error is not None:
        _logger.debug("Docker engine not reachable at %s: %s", host, error)
        return False
    return True


def _client() -> Any:
    if not _unix_socket_answers():
        return None
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:
        return None
    client = None
    try:
        # A fixed API version avoids the version probe in the constructor, which
        # leaks its socket when the engine is down. 1.41 is Docker 20.10.
        client = docker.from_env(version="1.41", timeout=_TIMEOUT_SECONDS)
        client.ping()
    except (DockerException, OSError) as exc:
        _logger.debug("Docker engine not reachable: %s", exc)
        if client is not None:
            client.close()
        return None
    return client


def project_volume_exists(
    project: str, volume: str = "synthorg-pgdata"
) -> str | bool | None:
    """Return the project's volume name if it exists, False if not, None if unknown."""
    client = _client()
    if client is None:
        return None
    from docker.errors import DockerException

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
            return str(labelled[0].name)
        name = f"{project}_{volume}"
        names = {v.name for v in client.volumes.list()}
        return name if name in names else False
    except (DockerException, OSError) as exc:
        _logger.debug("volume listing failed: %s", exc)
        return None
    finally:
        client.close()


def project_has_containers(project: str) -> bool | None:
    """Return whether any container of the project exists, or ``None`` if unknown."""
    client = _client()
    if client is None:
        return None
    from docker.errors import DockerException

    try:
        found = client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}
        )
    except (DockerException, OSError) as exc:
        _logger.debug("container listing failed: %s", exc)
        return None
    finally:
        client.close()
    return bool(found)
