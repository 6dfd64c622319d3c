"""NATS probe over a raw socket: read INFO, compare max_payload, then PING.

No NATS client library is needed at runtime. The probe reports instead of
raising: a server that is down or misconfigured is a result, not an error.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_INFO_BYTES", "NatsProbe", "NatsProbeResult", "probe_nats"]

NatsProbe = Literal["ok", "unreachable", "mismatch"]

MAX_INFO_BYTES = 64 * 1024
_CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"name":"synthorg-status"}\r\n'


@dataclass(frozen=True)
class NatsProbeResult:
    """Outcome of one probe; ``max_payload`` is the server's value when read."""

    probe: NatsProbe
    host: str
    port: int
    expected_max_payload: int
    max_payload: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.probe == "ok"


class _ProtocolError(Exception):
    """Raised inside the probe when the peer does not speak NATS as expected."""


class _LineReader:
    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._buffer = b""

    def read_line(self, limit: int) -> bytes:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > limit:
                raise _ProtocolError(f"no line end within {limit} bytes")
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out waiting for the server")
            self._sock.settimeout(remaining)
            chunk = self._sock.recv(65536)
            if not chunk:
                raise _ProtocolError("the server closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        if len(line) > limit:
            raise _ProtocolError(f"a line longer than {limit} bytes")
        return line


def _parse_info(line: bytes) -> int:
    if not line.startswith(b"INFO "):
        raise _ProtocolError("the first line is not INFO; is this a NATS server?")
    try:
        info = json.loads(line[5:])
    except ValueError as exc:
        raise _ProtocolError(f"INFO is not valid JSON ({exc})") from None
    value = info.get("max_payload") if isinstance(info, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _ProtocolError("INFO has no integer max_payload")
    return value


def _await_pong(reader: _LineReader, sock: socket.socket) -> None:
    while True:
        line = reader.read_line(MAX_INFO_BYTES)
        if line == b"PONG":
            return
        if line == b"PING":
            sock.sendall(b"PONG\r\n")
        elif line.startswith(b"-ERR"):
            raise _ProtocolError(line.decode("utf-8", "replace")[:200])


def probe_nats(
    host: str, port: int, expected_max_payload: int, *, timeout: float = 5.0
) -> NatsProbeResult:
    """Check that a NATS server replies to PING and has the expected max_payload.

    Steps: connect over TCP; read one INFO line of at most 64 KiB and take its
    ``max_payload``; send CONNECT and PING; wait for PONG. All within
    ``timeout`` seconds. A payload other than ``expected_max_payload`` (bytes)
    is ``mismatch``; any failure before that is ``unreachable``.
    """
    deadline = time.monotonic() + timeout

    def result(
        probe: NatsProbe, detail: str = "", max_payload: int | None = None
    ) -> NatsProbeResult:
        return NatsProbeResult(
            probe, host, port, expected_max_payload, max_payload, detail
        )

    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            reader = _LineReader(sock, deadline)
            max_payload = _parse_info(reader.read_line(MAX_INFO_BYTES))
            sock.sendall(_CONNECT + b"PING\r\n")
            _await_pong(reader, sock)
    except (OSError, _ProtocolError) as exc:
        return result("unreachable", str(exc) or type(exc).__name__)
    if max_payload != expected_max_payload:
        return result(
            "mismatch",
            f"max_payload is {max_payload} bytes, expected {expected_max_payload}",
            max_payload,
        )
    return result("ok", max_payload=max_payload)
