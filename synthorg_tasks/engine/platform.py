"""The image platform (``os/architecture[/variant]``) of the Docker engine or host.

Docker reports the machine name the kernel uses (``x86_64``, ``aarch64``),
while image indexes use Go's names (``amd64``, ``arm64``), so both are mapped
to the OCI spelling here.
"""

from __future__ import annotations

import platform as host_platform
import sys

from synthorg_tasks.logging import get_logger

__all__ = ["engine_platform", "host_image_platform", "oci_architecture"]

_logger = get_logger("engine")

_ARCHITECTURES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
_ARM_VARIANTS = {"armv7l": "v7", "armv6l": "v6"}


def oci_architecture(machine: str) -> str:
    """Return ``architecture[/variant]`` for a kernel machine name."""
    name = machine.strip().lower()
    architecture = _ARCHITECTURES.get(name, name)
    variant = _ARM_VARIANTS.get(name)
    return f"{architecture}/{variant}" if variant else architecture


def host_image_platform() -> str:
    """Return the platform of this host, such as ``linux/amd64``."""
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    if system == "darwin":
        # Containers on macOS run in a Linux VM of the same architecture.
        system = "linux"
    return f"{system}/{oci_architecture(host_platform.machine())}"


def engine_platform(timeout: float = 5.0) -> str | None:
    """Return the engine's platform, or ``None`` when the engine is unreachable.

    Docker SDK failures are logged at DEBUG and reported as ``None``, because
    the caller falls back to the host's platform.
    """
    # NOTE: this is a second, read-only use of the docker SDK beside the
    # engine adapter; it catches only the SDK's own and OS-level errors.
    try:
        import docker
        from docker.errors import DockerException
        from docker.utils import kwargs_from_env
    except ImportError:
        return None
    from synthorg_tasks.engine.docker_api import DEFAULT_UNIX_SOCKET, unix_socket_error

    base_url = str(kwargs_from_env().get("base_url") or DEFAULT_UNIX_SOCKET)
    error = unix_socket_error(base_url, timeout)
    if error is not None:
        _logger.debug(
            "Docker engine socket %s refused the connection: %s", base_url, error
        )
        return None
    try:
        client = docker.from_env(timeout=timeout)
        try:
            info = client.info()
        finally:
            client.close()
    except (DockerException, OSError) as exc:
        _logger.debug("Docker engine not reachable for its platform: %s", exc)
        return None
    system = str(info.get("OSType") or "linux").lower()
    machine = str(info.get("Architecture") or "")
    if not machine:
        return None
    return f"{system}/{oci_architecture(machine)}"
