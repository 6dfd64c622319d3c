"""Host-port preflight: prove every published port can be bound before ``up``.

Each needed port is bound with a TCP socket of the bind address's family,
``SO_REUSEADDR`` set as the engine's port proxy sets it, then listened on and
closed. A wildcard bind is tested for both families: ``0.0.0.0`` also tests
``::`` (with ``IPV6_V6ONLY``) when the host has IPv6, and ``::`` also tests
``0.0.0.0``. A port that a container of this project already publishes on
the same address is skipped, so a second ``start`` of a running stack is not
blocked by its own ports.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from synthorg_tasks.engine.docker_api import PublishedPort
from synthorg_tasks.errors import PortInUse
from synthorg_tasks.logging import get_logger

__all__ = ["PortNeed", "bind_targets", "host_has_ipv6", "preflight_ports"]

_logger = get_logger("engine")

_IPV4_ANY = "0.0.0.0"  # noqa: S104 - a bind test on the wildcard the user chose
_IPV6_ANY = "::"


@dataclass(frozen=True)
class PortNeed:
    """A host port that one service publishes, with its config key."""

    key: str
    service: str
    port: int


def host_has_ipv6() -> bool:
    """Whether this host can bind an IPv6 socket on the loopback."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def bind_targets(bind_address: str, *, ipv6: bool) -> list[str]:
    """Return the addresses to bind-test for ``bind_address``."""
    address = ipaddress.ip_address(bind_address)
    if not address.is_unspecified:
        return [str(address)]
    if address.version == 4:
        return [_IPV4_ANY, _IPV6_ANY] if ipv6 else [_IPV4_ANY]
    return [_IPV6_ANY, _IPV4_ANY]


def _normalised(address: str) -> str:
    if not address:
        return _IPV4_ANY
    try:
        return str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        return address


def _own(port: int, target: str, published: Iterable[PublishedPort]) -> bool:
    wanted = _normalised(target)
    for entry in published:
        if entry.host_port != port or entry.protocol != "tcp":
            continue
        if _normalised(entry.host_ip) == wanted:
            return True
    return False


def _bind_test(address: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port, 0, 0))
        else:
            sock.bind((address, port))
        sock.listen(1)
    except OSError as exc:
        return exc
    finally:
        sock.close()
    return None


def preflight_ports(
    bind_address: str,
    needs: Iterable[PortNeed],
    own_published: Iterable[PublishedPort] = (),
    *,
    ipv6: bool | None = None,
) -> None:
    """Raise :class:`PortInUse` for the first needed port that cannot be bound."""
    published = list(own_published)
    has_ipv6 = host_has_ipv6() if ipv6 is None else ipv6
    for need in needs:
        for target in bind_targets(bind_address, ipv6=has_ipv6):
            if _own(need.port, target, published):
                _logger.debug("port %d on %s is this project's own", need.port, target)
                continue
            failure = _bind_test(target, need.port)
            if failure is None:
                continue
            if failure.errno == errno.EADDRNOTAVAIL and target == _IPV6_ANY:
                _logger.debug("IPv6 wildcard not available: %s", failure)
                continue
            raise PortInUse(
                f"port {need.port} on {target} is already in use (needed by "
                f"{need.service}); free it or run: synthorg config set {need.key} "
                "<other port>",
            )
