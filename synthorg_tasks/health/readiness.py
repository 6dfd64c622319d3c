"""The backend's ``/readyz`` probe and the readiness wait of start and update.

The probe is one ``GET http://<probe host>:<backend_port><prefix>/readyz``
with a body cap of 64 KiB. Ready means HTTP 200 with a JSON body whose
``data.status`` is ``"ok"``. The wait polls until ready, the budget ends, or
an abort check (crash loop, failed ``data-init``) raises.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from synthorg_tasks.errors import Unhealthy, Unreachable, UsageError
from synthorg_tasks.logging import get_logger
from synthorg_tasks.state.secrets import mask

__all__ = [
    "DEFAULT_API_PREFIX",
    "MAX_BODY_BYTES",
    "ReadinessResult",
    "api_prefix",
    "probe_host",
    "probe_readiness",
    "readiness_url",
    "wait_for_ready",
]

_logger = get_logger("health")

DEFAULT_API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
_PREFIX_PATTERN = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def api_prefix(environ: Mapping[str, str] | None = None) -> str:
    """Return the API prefix from ``SYNTHORG_API_API_PREFIX`` (default ``/api/v1``).

    A missing leading slash is added and a trailing one removed; the result
    must be one or more ``/segment`` parts, else :class:`UsageError`.
    """
    env = os.environ if environ is None else environ
    raw = env.get("SYNTHORG_API_API_PREFIX", "").strip()
    if not raw:
        return DEFAULT_API_PREFIX
    prefix = "/" + raw.lstrip("/") if not raw.startswith("/") else raw
    prefix = prefix.rstrip("/")
    if not _PREFIX_PATTERN.fullmatch(prefix):
        raise UsageError(
            f"SYNTHORG_API_API_PREFIX: {raw!r} is invalid (one or more /segment "
            "parts of letters, digits, '.', '_', '~' or '-')",
            hints=["unset it to use /api/v1"],
        )
    return prefix


def probe_host(bind_address: str) -> str:
    """Return the host to probe: the bind address, or loopback for a wildcard."""
    address = ipaddress.ip_address(bind_address)
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return str(address)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def readiness_url(host: str, port: int, prefix: str = DEFAULT_API_PREFIX) -> str:
    """Return ``http://<host>:<port><prefix>/readyz`` (IPv6 hosts in brackets)."""
    return f"http://{_url_host(host)}:{port}{prefix}/readyz"


@dataclass(frozen=True)
class ReadinessResult:
    """One readiness probe.

    ``error`` is set for a transport failure (nothing answered);
    ``unparseable`` for an answer without a JSON ``data.status``.
    """

    url: str
    ready: bool = False
    http_status: int | None = None
    status: str | None = None
    uptime_seconds: float | None = None
    error: str | None = None
    unparseable: bool = False
    data: Mapping[str, Any] = field(default_factory=dict)
    retry_after: float | None = None

    @property
    def reachable(self) -> bool:
        """Whether the backend answered at all."""
        return self.error is None

    def describe(self) -> str:
        """Return one line on the outcome, for errors and logs."""
        if self.error is not None:
            return self.error
        if self.unparseable:
            return f"unparseable response (HTTP {self.http_status})"
        return f"status={self.status}, HTTP {self.http_status}"


def _parse_body(
    url: str, status: int, body: bytes, retry_after: float | None
) -> ReadinessResult:
    try:
        document = json.loads(body)
        data = document["data"]
        data_status = data["status"]
    except (ValueError, TypeError, KeyError):
        return ReadinessResult(
            url, http_status=status, unparseable=True, retry_after=retry_after
        )
    if not isinstance(data, dict) or not isinstance(data_status, str):
        return ReadinessResult(
            url, http_status=status, unparseable=True, retry_after=retry_after
        )
    uptime = data.get("uptime_seconds")
    uptime_value = float(uptime) if isinstance(uptime, (int, float)) else None
    return ReadinessResult(
        url,
        ready=status == 200 and data_status == "ok",
        http_status=status,
        status=data_status,
        uptime_seconds=uptime_value,
        data=data,
        retry_after=retry_after,
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def probe_readiness(
    host: str,
    port: int,
    timeout: float,
    prefix: str = DEFAULT_API_PREFIX,
) -> ReadinessResult:
    """Send one readiness request; never raises for network or HTTP failures."""
    url = readiness_url(host, port, prefix)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(
            "GET", f"{prefix}/readyz", headers={"Accept": "application/json"}
        )
        response = connection.getresponse()
        body = response.read(MAX_BODY_BYTES + 1)
        retry_after = _retry_after(response.getheader("Retry-After"))
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        detail = mask(str(exc) or type(exc).__name__)
        return ReadinessResult(url, error=f"GET {url} failed: {detail}")
    finally:
        connection.close()
    if len(body) > MAX_BODY_BYTES:
        return ReadinessResult(url, http_status=status, unparseable=True)
    return _parse_body(url, status, body, retry_after)


def _format_budget(seconds: float) -> str:
    return f"{seconds:g}s"


def wait_for_ready(
    probe: Callable[[], ReadinessResult],
    *,
    budget: float,
    initial_delay: float,
    poll_interval: float,
    abort_check: Callable[[], None] = lambda: None,
    on_poll: Callable[[ReadinessResult, float], None] = lambda result, elapsed: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReadinessResult:
    """Poll until ready or the budget ends.

    Waits ``initial_delay`` (within the budget), then probes every
    ``poll_interval``. A 429 keeps polling, sleeping ``Retry-After`` seconds
    when it fits the budget. ``abort_check`` runs before every poll and raises
    to abort early. Raises :class:`Unhealthy` (exit 3) when the backend
    answered but never became ready, :class:`Unreachable` (exit 4) when it
    never answered.
    """
    started = clock()
    deadline = started + budget
    sleep(max(0.0, min(initial_delay, budget)))
    answered = False
    while True:
        abort_check()
        last = probe()
        answered = answered or last.reachable
        on_poll(last, clock() - started)
        if last.ready:
            _logger.info("backend ready after %.1fs", clock() - started)
            return last
        remaining = deadline - clock()
        if remaining <= 0:
            break
        pause = poll_interval
        if last.http_status == 429 and last.retry_after is not None:
            pause = max(pause, last.retry_after)
        sleep(min(pause, remaining))
    message = (
        f"health check timed out after {_format_budget(budget)} "
        f"(last error: {last.describe()})"
    )
    hints = ["run 'synthorg doctor'"]
    if answered:
        raise Unhealthy(message, hints=hints)
    raise Unreachable(message, hints=hints)
