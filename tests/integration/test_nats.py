"""NATS servers started with the product's nats.conf, and the NATS probe."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from pathlib import Path

import nats
import pytest
from nats.errors import MaxPayloadError

from synthorg_tasks.health.nats_probe import probe_nats
from synthorg_tasks.render.natsconf import render_nats_conf
from tests.integration import servers
from tests.integration.conftest import NatsBinary

pytestmark = pytest.mark.nats

SIXTEEN_MIB = 16 * 1024 * 1024


def _info(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        buffer = b""
        while b"\r\n" not in buffer:
            buffer += sock.recv(65536)
    return buffer.split(b"\r\n", 1)[0]


def test_probe_reads_16mib_from_generated_conf(nats_default: tuple[str, int]) -> None:
    host, port = nats_default
    assert b'"max_payload":16777216' in _info(host, port)
    result = probe_nats(host, port, SIXTEEN_MIB)
    assert result.probe == "ok"
    assert result.max_payload == SIXTEEN_MIB


def test_probe_detects_other_limit(nats_binary: NatsBinary) -> None:
    with servers.nats_server(nats_binary.path, max_payload="8MB") as server:
        result = probe_nats(server.host, server.port, SIXTEEN_MIB)
    assert result.probe == "mismatch"
    assert result.max_payload == 8 * 1024 * 1024
    assert "8388608" in result.detail


def test_probe_closed_port_unreachable() -> None:
    result = probe_nats(servers.LOOPBACK, servers.closed_port(), SIXTEEN_MIB, timeout=2)
    assert result.probe == "unreachable"
    assert result.max_payload is None


def test_probe_non_nats_peer_unreachable() -> None:
    with socket.socket() as listener:
        listener.bind((servers.LOOPBACK, 0))
        listener.listen(1)

        def answer_like_http() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        peer = threading.Thread(target=answer_like_http)
        peer.start()
        port = listener.getsockname()[1]
        result = probe_nats(servers.LOOPBACK, port, SIXTEEN_MIB, timeout=2)
        peer.join(timeout=5)
    assert result.probe == "unreachable"
    assert "not INFO" in result.detail


async def _publish(url: str, size: int) -> None:
    client = await nats.connect(url, allow_reconnect=False, connect_timeout=5)
    try:
        await client.publish("synthorg.test", b"x" * size)
        await client.flush(timeout=10)
    finally:
        await client.close()


def test_16mib_message_publishes(nats_default: tuple[str, int]) -> None:
    host, port = nats_default
    asyncio.run(_publish(f"nats://{host}:{port}", SIXTEEN_MIB))


def test_16mib_plus_one_refused_by_client(nats_default: tuple[str, int]) -> None:
    host, port = nats_default
    with pytest.raises(MaxPayloadError):
        asyncio.run(_publish(f"nats://{host}:{port}", SIXTEEN_MIB + 1))


def test_16mib_plus_one_refused_by_server(nats_default: tuple[str, int]) -> None:
    host, port = nats_default
    size = SIXTEEN_MIB + 1
    with socket.create_connection((host, port), timeout=10) as sock:
        _ = sock.recv(65536)
        sock.sendall(b'CONNECT {"verbose":false}\r\n')
        # The server checks the size in the PUB header and closes the
        # connection before the payload, so only the header is sent.
        sock.sendall(f"PUB synthorg.test {size}\r\n".encode())
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert b"-ERR 'Maximum Payload Violation'" in reply


def test_payload_above_pending_passes_check_but_fails_start(
    nats_binary: NatsBinary, tmp_path: Path
) -> None:
    config = tmp_path / "nats.conf"
    config.write_text(
        f"host: {servers.LOOPBACK}\nport: {servers.free_port()}\n"
        "max_payload: 128MB\nmax_pending: 64MB\n",
        encoding="utf-8",
    )
    check = subprocess.run(
        [str(nats_binary.path), "-t", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The product's renderer rejects these limits, so the file is written by hand.
    with pytest.raises(ValueError, match="exceeds max_pending"):
        render_nats_conf("128MB", "64MB", host=servers.LOOPBACK)
    start = subprocess.run(
        [str(nats_binary.path), "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert start.returncode != 0
    assert "max_payload" in (start.stdout + start.stderr).lower()
