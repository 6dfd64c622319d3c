"""Parallel image pulls through ``compose pull <service>``, with retries.

Each service is pulled in its own thread and retried up to ``attempts``
times, waiting ``retry_delay * 2**(n-1)`` seconds (at most 5 minutes)
between tries. Failures are collected and reported together, each with its
output tail.

NOTE: progress is one line per state change (pulling, pulled, failed); the
byte and layer counts of a rich progress display are not parsed yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from synthorg_tasks.engine.compose_cli import ComposeCli, output_tail
from synthorg_tasks.errors import ComposeFailed, PullError
from synthorg_tasks.logging import get_logger

__all__ = ["MAX_RETRY_DELAY_SECONDS", "PullOutcome", "pull_services", "retry_delays"]

_logger = get_logger("engine")

MAX_RETRY_DELAY_SECONDS = 300.0
_AUTH_MARKERS = ("401", "403", "unauthorized", "denied")


@dataclass(frozen=True)
class PullOutcome:
    """The result of pulling one service."""

    service: str
    ok: bool
    attempts: int
    output: str = ""


def retry_delays(attempts: int, retry_delay: float) -> list[float]:
    """Return the waits between ``attempts`` tries, doubling, capped at 5 minutes."""
    return [
        min(retry_delay * 2 ** (n - 1), MAX_RETRY_DELAY_SECONDS)
        for n in range(1, attempts)
    ]


def _pull_one(
    cli: ComposeCli,
    project: str,
    directory: Path,
    service: str,
    attempts: int,
    retry_delay: float,
    report: Callable[[str], None],
    sleep: Callable[[float], None],
) -> PullOutcome:
    delays = retry_delays(attempts, retry_delay)
    output = ""
    for attempt in range(1, attempts + 1):
        report(f"pulling {service} (attempt {attempt}/{attempts})")
        try:
            result = cli.run(project, directory, "pull", [service], check=False)
        except ComposeFailed as exc:
            output = exc.message
        else:
            if result.returncode == 0:
                report(f"pulled {service}")
                return PullOutcome(service, True, attempt)
            output = result.output
        _logger.info("pull of %s failed (attempt %d/%d)", service, attempt, attempts)
        if attempt < attempts:
            sleep(delays[attempt - 1])
    return PullOutcome(service, False, attempts, output)


def pull_services(
    cli: ComposeCli,
    project: str,
    directory: Path,
    services: Sequence[str],
    *,
    attempts: int,
    retry_delay: float,
    report: Callable[[str], None] = lambda line: None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[PullOutcome]:
    """Pull every service in parallel; raise :class:`PullError` if any failed."""
    lock = threading.Lock()

    def locked_report(line: str) -> None:
        with lock:
            report(line)

    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        futures = [
            pool.submit(
                _pull_one,
                cli,
                project,
                directory,
                service,
                attempts,
                retry_delay,
                locked_report,
                sleep,
            )
            for service in services
        ]
        outcomes = [future.result() for future in futures]
    failed = [outcome for outcome in outcomes if not outcome.ok]
    if failed:
        details = []
        hints: list[str] = []
        for outcome in failed:
            tail = output_tail(outcome.output, 5)
            details.append(
                f"{outcome.service} after {outcome.attempts} attempt(s):\n{tail}"
            )
            lowered = outcome.output.lower()
            if "dhi.io" in lowered and any(m in lowered for m in _AUTH_MARKERS):
                hints.append("run: docker login dhi.io")
        names = ", ".join(outcome.service for outcome in failed)
        raise PullError(
            f"could not pull {names}:\n" + "\n".join(details),
            hints=sorted(set(hints)),
        )
    return outcomes
