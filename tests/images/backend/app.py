"""Stand-in SynthOrg backend for the stack tests.

On start it resolves persistence from the environment exactly as the real
backend does, applies the fixture migrations, connects to NATS when
``SYNTHORG_BUS_BACKEND=nats`` and reads the server's ``max_payload``. It then
serves on port 3001:

- ``GET <prefix>/readyz``: 200 with ``{"data": {"status": "ok", ...}}`` only
  when persistence and the bus work, else 503 with the failing component;
- ``POST <prefix>/rows?value=V`` and ``GET <prefix>/rows``: write and list a
  row, so a test can prove data survives a restart.

``SYNTHORG_TEST_EXIT_AT_START=1`` makes it exit at once (crash-loop case).
``app.py --check`` is the image HEALTHCHECK.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PORT = 3001
MIGRATIONS = "/opt/synthorg/migrations"
STARTED = time.monotonic()


def _prefix() -> str:
    prefix = os.environ.get("SYNTHORG_API_API_PREFIX", "/api/v1").strip() or "/api/v1"
    return "/" + prefix.strip("/")


def _log(message: str) -> None:
    print(f"[backend] {message}", file=sys.stderr, flush=True)


class Store:
    """Rows in the configured database, through the product's wiring."""

    def __init__(self) -> None:
        from synthorg_tasks.persistence import resolve_persistence

        self.config: Any = resolve_persistence()
        self.backend = str(self.config.backend)

    def migrate(self) -> list[str]:
        from synthorg_tasks.persistence import apply_migrations

        deadline = time.monotonic() + 30
        while True:
            try:
                return list(apply_migrations(self.config, MIGRATIONS))
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                _log(f"migrations not applied yet: {exc}; retrying")
                time.sleep(1)

    def _connect(self) -> Any:
        if self.backend == "postgres":
            import psycopg

            return psycopg.connect(**self.config.psycopg_kwargs(), connect_timeout=3)
        return sqlite3.connect(str(self.config.sqlite_path), timeout=5)

    def check(self) -> None:
        with self._connect() as connection:
            connection.execute("SELECT 1")

    def write(self, value: str) -> None:
        placeholder = "%s" if self.backend == "postgres" else "?"
        with self._connect() as connection:
            connection.execute(
                f"INSERT INTO stack_rows (value) VALUES ({placeholder})", (value,)
            )

    def read(self) -> list[str]:
        with self._connect() as connection:
            cursor = connection.execute("SELECT value FROM stack_rows ORDER BY value")
            return [str(row[0]) for row in cursor.fetchall()]


class Bus:
    """The NATS connection check: INFO's max_payload through nats-py."""

    def __init__(self) -> None:
        self.backend = os.environ.get("SYNTHORG_BUS_BACKEND", "internal")
        self.max_payload: int | None = None

    def check(self) -> None:
        if self.backend != "nats":
            return
        self.max_payload = asyncio.run(self._probe())

    async def _probe(self) -> int:
        import nats

        url = os.environ.get("SYNTHORG_NATS_URL", "nats://nats:4222")
        client = await nats.connect(
            url, connect_timeout=3, max_reconnect_attempts=0, allow_reconnect=False
        )
        try:
            payload = int(client.max_payload)
            if payload <= 0:
                raise RuntimeError(f"server reports max_payload {payload}")
            await client.flush(timeout=3)
            return payload
        finally:
            await client.close()


class State:
    """Shared readiness of the process, refreshed by a background thread."""

    def __init__(self, store: Store, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self.persistence: dict[str, Any] = {"status": "starting"}
        self.bus_state: dict[str, Any] = {"status": "starting"}
        self.lock = threading.Lock()

    def refresh(self) -> None:
        persistence: dict[str, Any] = {"backend": self.store.backend}
        try:
            self.store.check()
            persistence["status"] = "ok"
        except Exception as exc:
            persistence.update(status="error", error=type(exc).__name__)
        bus: dict[str, Any] = {"backend": self.bus.backend}
        try:
            self.bus.check()
            bus["status"] = "ok"
            if self.bus.max_payload is not None:
                bus["max_payload"] = self.bus.max_payload
        except Exception as exc:
            bus.update(status="error", error=type(exc).__name__)
        with self.lock:
            self.persistence, self.bus_state = persistence, bus

    def document(self) -> tuple[int, dict[str, Any]]:
        with self.lock:
            persistence, bus = dict(self.persistence), dict(self.bus_state)
        ready = persistence.get("status") == "ok" and bus.get("status") == "ok"
        body = {
            "data": {
                "status": "ok" if ready else "error",
                "uptime_seconds": round(time.monotonic() - STARTED, 3),
                "persistence": persistence,
                "bus": bus,
            }
        }
        return (200 if ready else 503), body


def _handler(state: State) -> type[BaseHTTPRequestHandler]:
    prefix = _prefix()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, code: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == f"{prefix}/readyz":
                self._send(*state.document())
            elif path == f"{prefix}/rows":
                self._send(200, {"data": {"rows": state.store.read()}})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != f"{prefix}/rows":
                self._send(404, {"error": "not found"})
                return
            value = parse_qs(parts.query).get("value", [""])[0]
            if not value:
                self._send(400, {"error": "value is required"})
                return
            state.store.write(value)
            self._send(201, {"data": {"written": value}})

    return Handler


def _check() -> int:
    url = f"http://127.0.0.1:{PORT}{_prefix()}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = json.loads(response.read())
    except Exception as exc:
        print(f"readyz failed: {exc}")
        return 1
    return 0 if body.get("data", {}).get("status") == "ok" else 1


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        return _check()
    if os.environ.get("SYNTHORG_TEST_EXIT_AT_START") == "1":
        _log("ERROR: exiting at start as SYNTHORG_TEST_EXIT_AT_START requests")
        return 1
    store = Store()
    applied = store.migrate()
    _log(f"persistence {store.backend}: applied {applied or 'no'} migrations")
    state = State(store, Bus())
    state.refresh()

    def refresh_forever() -> None:
        while True:
            time.sleep(2)
            state.refresh()

    threading.Thread(target=refresh_forever, daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), _handler(state))
    _log(f"serving on port {PORT}")
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
