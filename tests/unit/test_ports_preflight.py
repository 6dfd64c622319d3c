"""Host-port preflight against sockets held on IPv4 and IPv6 addresses."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from synthorg_tasks.engine.docker_api import PublishedPort
from synthorg_tasks.errors import PortInUse
from synthorg_tasks.ports_preflight import (
    PortNeed,
    bind_targets,
    host_has_ipv6,
    preflight_ports,
)
from tests.capabilities import require


@contextmanager
def held(address: str) -> Iterator[int]:
    """Listen on ``address`` at a free port (IPv6 sockets with V6ONLY)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def need(port: int) -> list[PortNeed]:
    return [PortNeed("backend_port", "backend", port)]


CASES = [
    ("127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "0.0.0.0", True),
    ("127.0.0.1", "::1", False),
    ("0.0.0.0", "127.0.0.1", True),
    ("0.0.0.0", "0.0.0.0", True),
    ("::", "0.0.0.0", True),
    ("::", "::", True),
    ("::", "::1", True),
    ("::", "127.0.0.1", False),
    ("::1", "::1", True),
    ("::1", "127.0.0.1", False),
    ("::1", "0.0.0.0", True),
]


@pytest.mark.parametrize(
    ("holder", "bind", "blocked"),
    CASES,
    ids=[f"held-{h}-bind-{b}" for h, b, _ in CASES],
)
def test_preflight_matrix(holder: str, bind: str, blocked: bool) -> None:
    if ":" in holder or ":" in bind:
        require("ipv6", host_has_ipv6(), "the host cannot bind ::1")
    with held(holder) as port:
        if blocked:
            with pytest.raises(PortInUse) as caught:
                preflight_ports(bind, need(port))
            assert caught.value.message.startswith(f"port {port} on ")
            assert "(needed by backend)" in caught.value.message
            assert "synthorg config set backend_port <other port>" in (
                caught.value.message
            )
        else:
            preflight_ports(bind, need(port))


def test_preflight_skips_own_published_port() -> None:
    with held("127.0.0.1") as port:
        own = [PublishedPort("127.0.0.1", port, 3001, "tcp")]
        preflight_ports("127.0.0.1", need(port), own)


def test_preflight_own_port_on_other_address_still_blocks() -> None:
    with held("127.0.0.1") as port:
        own = [PublishedPort("0.0.0.0", port, 3001, "tcp")]
        with pytest.raises(PortInUse):
            preflight_ports("127.0.0.1", need(port), own)


def test_preflight_free_port_passes() -> None:
    with held("127.0.0.1") as port:
        pass
    preflight_ports("127.0.0.1", need(port))


@pytest.mark.parametrize(
    ("bind", "ipv6", "targets"),
    [
        ("127.0.0.1", True, ["127.0.0.1"]),
        ("0.0.0.0", True, ["0.0.0.0", "::"]),
        ("0.0.0.0", False, ["0.0.0.0"]),
        ("::", True, ["::", "0.0.0.0"]),
        ("::1", True, ["::1"]),
    ],
)
def test_bind_targets(bind: str, ipv6: bool, targets: list[str]) -> None:
    assert bind_targets(bind, ipv6=ipv6) == targets
