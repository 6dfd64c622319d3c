"""The readiness probe against a real loopback server, and the wait loop."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from synthorg_tasks.errors import Unhealthy, Unreachable, UsageError
from synthorg_tasks.health.readiness import (
    MAX_BODY_BYTES,
    ReadinessResult,
    api_prefix,
    probe_host,
    probe_readiness,
    readiness_url,
    wait_for_ready,
)

RESPONSES: dict[str, tuple[int, bytes, dict[str, str]]] = {}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        code, body, headers = RESPONSES.get(self.path, (404, b"{}", {}))
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _serve(prefix: str, code: int, body: object, **headers: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    RESPONSES[f"{prefix}/readyz"] = (code, raw, headers)


def test_probe_ready(server_port: int) -> None:
    _serve("/ok", 200, {"data": {"status": "ok", "uptime_seconds": 7}})
    result = probe_readiness("127.0.0.1", server_port, 2.0, "/ok")
    assert result.ready
    assert result.uptime_seconds == 7.0
    assert result.url == f"http://127.0.0.1:{server_port}/ok/readyz"


def test_probe_not_ready(server_port: int) -> None:
    _serve("/down", 503, {"data": {"status": "error"}})
    result = probe_readiness("127.0.0.1", server_port, 2.0, "/down")
    assert not result.ready
    assert result.http_status == 503
    assert result.status == "error"
    assert result.reachable


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"data": []}', b'{"other": 1}', b'{"data": {"status": 3}}'],
    ids=["not-json", "data-list", "no-data", "status-number"],
)
def test_probe_unparseable(server_port: int, body: bytes) -> None:
    _serve("/bad", 200, body)
    result = probe_readiness("127.0.0.1", server_port, 2.0, "/bad")
    assert result.unparseable
    assert not result.ready


def test_probe_body_over_cap_is_unparseable(server_port: int) -> None:
    _serve("/big", 200, b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert probe_readiness("127.0.0.1", server_port, 2.0, "/big").unparseable


def test_probe_transport_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    result = probe_readiness("127.0.0.1", port, 1.0)
    assert result.error is not None
    assert not result.reachable


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", "/api/v1"), ("api/v2", "/api/v2"), ("/x/", "/x"), ("/a/b.c", "/a/b.c")],
)
def test_api_prefix(raw: str, expected: str) -> None:
    assert api_prefix({"SYNTHORG_API_API_PREFIX": raw}) == expected


@pytest.mark.parametrize("raw", ["/a b", "/a?x", "//"])
def test_api_prefix_invalid(raw: str) -> None:
    with pytest.raises(UsageError, match="SYNTHORG_API_API_PREFIX"):
        api_prefix({"SYNTHORG_API_API_PREFIX": raw})


@pytest.mark.parametrize(
    ("bind", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("::", "::1"),
        ("::1", "::1"),
        ("192.0.2.7", "192.0.2.7"),
    ],
)
def test_probe_host(bind: str, host: str) -> None:
    assert probe_host(bind) == host


def test_readiness_url_brackets_ipv6() -> None:
    assert readiness_url("::1", 3001) == "http://[::1]:3001/api/v1/readyz"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


URL = "http://127.0.0.1:3001/api/v1/readyz"


def _sequence(results: list[ReadinessResult]) -> object:
    iterator = iter(results)
    last = results[-1]
    return lambda: next(iterator, last)


def test_wait_succeeds_after_polls() -> None:
    clock = Clock()
    probe = _sequence(
        [
            ReadinessResult(URL, error="refused"),
            ReadinessResult(URL, http_status=503, status="error"),
            ReadinessResult(URL, ready=True, http_status=200, status="ok"),
        ]
    )
    result = wait_for_ready(
        probe,
        budget=30,
        initial_delay=5,
        poll_interval=2,  # type: ignore[arg-type]
        clock=clock.time,
        sleep=clock.sleep,
    )
    assert result.ready
    assert clock.sleeps == [5, 2, 2]


def test_wait_unreachable_exit_4() -> None:
    clock = Clock()
    with pytest.raises(Unreachable) as caught:
        wait_for_ready(
            lambda: ReadinessResult(URL, error="refused"),
            budget=10,
            initial_delay=1,
            poll_interval=2,
            clock=clock.time,
            sleep=clock.sleep,
        )
    assert caught.value.message == (
        "health check timed out after 10s (last error: refused)"
    )
    assert caught.value.exit_code == 4
    assert clock.now == 10


def test_wait_answered_but_not_ready_exit_3() -> None:
    clock = Clock()
    with pytest.raises(Unhealthy) as caught:
        wait_for_ready(
            lambda: ReadinessResult(URL, http_status=503, status="error"),
            budget=6,
            initial_delay=0,
            poll_interval=2,
            clock=clock.time,
            sleep=clock.sleep,
        )
    assert caught.value.exit_code == 3
    assert "status=error, HTTP 503" in caught.value.message


def test_wait_honours_retry_after_within_budget() -> None:
    clock = Clock()
    probe = _sequence(
        [
            ReadinessResult(URL, http_status=429, unparseable=True, retry_after=7),
            ReadinessResult(URL, ready=True, http_status=200, status="ok"),
        ]
    )
    wait_for_ready(
        probe,
        budget=30,
        initial_delay=0,
        poll_interval=2,  # type: ignore[arg-type]
        clock=clock.time,
        sleep=clock.sleep,
    )
    assert clock.sleeps == [0, 7]


def test_wait_abort_check_stops_early() -> None:
    clock = Clock()

    def abort() -> None:
        if clock.now >= 4:
            raise Unhealthy("backend keeps restarting (crash loop); aborting")

    with pytest.raises(Unhealthy, match="crash loop"):
        wait_for_ready(
            lambda: ReadinessResult(URL, error="refused"),
            budget=90,
            initial_delay=0,
            poll_interval=2,
            abort_check=abort,
            clock=clock.time,
            sleep=clock.sleep,
        )
    assert clock.now == 4
