"""What ``update`` asks of the engine: pulls, down/up, running containers, readiness.

:class:`StackEngine` is the one object ``update`` talks to, so tests can run
the whole transaction against a real engine or against a stand-in at this
process boundary. :class:`ComposeStackEngine` implements it with the Compose
CLI adapter and the docker SDK adapter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from synthorg_tasks.errors import EngineError, PullError, Unhealthy
from synthorg_tasks.logging import get_logger
from synthorg_tasks.state.config import Config

if TYPE_CHECKING:
    from synthorg_tasks.engine.compose_cli import ComposeCli
    from synthorg_tasks.engine.docker_api import DockerApi

__all__ = [
    "ComposeStackEngine",
    "StackEngine",
    "compose_services",
    "probe_host",
    "readiness_url",
    "wait_ready",
]

_logger = get_logger("update")

PULL_DELAY_CAP_SECONDS = 300.0


class StackEngine(Protocol):
    """The engine operations of ``update``."""

    def running_services(self, project: str) -> list[str]:
        """Return the services of ``project`` with a running container."""
        ...

    def missing_images(self, references: Sequence[str]) -> list[str]:
        """Return the references that are not in the local image store."""
        ...

    def pull(self, config: Config, services: Sequence[str]) -> None:
        """Pull the image of every service; raise :class:`PullError` on failure."""
        ...

    def down(self, config: Config) -> None:
        """Stop and remove the project's containers (volumes are kept)."""
        ...

    def up(self, config: Config) -> None:
        """Start the project detached."""
        ...

    def wait_ready(self, config: Config, budget_seconds: float) -> None:
        """Wait until the backend is ready; raise :class:`Unhealthy` on timeout."""
        ...


def probe_host(bind_address: str) -> str:
    """Return the host to probe: the bind address, or a loopback for a wildcard."""
    from synthorg_tasks import grammars

    if grammars.is_wildcard(bind_address):
        return "::1" if ":" in bind_address else "127.0.0.1"
    return bind_address


def readiness_url(config: Config, environ: Mapping[str, str]) -> str:
    """Return the backend's readiness URL on the published port."""
    prefix = environ.get("SYNTHORG_API_API_PREFIX", "").strip() or "/api/v1"
    prefix = "/" + prefix.strip("/")
    host = probe_host(config.bind_address)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.backend_port}{prefix}/readyz"


def wait_ready(
    config: Config,
    budget_seconds: float,
    environ: Mapping[str, str],
) -> None:
    """Poll the readiness URL until it reports ``data.status == "ok"``.

    Waits ``health_initial_delay`` first and ``health_poll_interval`` between
    polls. Raises :class:`Unhealthy` (exit 3) when ``budget_seconds`` run out.
    """
    import urllib.error
    import urllib.request

    url = readiness_url(config, environ)
    deadline = time.monotonic() + budget_seconds
    interval = config.tunable_seconds("health_poll_interval", environ)
    per_request = config.tunable_seconds("health_check_timeout", environ)
    delay = min(config.tunable_seconds("health_initial_delay", environ), budget_seconds)
    time.sleep(delay)
    last_error = "no response yet"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            with urllib.request.urlopen(  # noqa: S310 - http URL built above
                url, timeout=min(per_request, remaining)
            ) as response:
                body = json.loads(response.read(1024 * 1024))
            status = (body.get("data") or {}).get("status")
            if status == "ok":
                _logger.info("backend ready at %s", url)
                return
            last_error = f"status {status!r}"
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            last_error = str(exc)
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
    raise Unhealthy(
        f"health check timed out after {budget_seconds:g}s (last error: {last_error})",
        hints=["run 'synthorg doctor'"],
    )


class ComposeStackEngine:
    """:class:`StackEngine` on the Compose CLI and the docker SDK adapters."""

    def __init__(
        self, compose: ComposeCli, api: DockerApi, environ: Mapping[str, str]
    ) -> None:
        self.compose = compose
        self.api = api
        self.environ = dict(environ)

    @classmethod
    def detect(cls, timeout: float, environ: Mapping[str, str]) -> ComposeStackEngine:
        """Connect to the engine and find Compose; raise before anything changes."""
        from synthorg_tasks.engine.compose_cli import detect_compose
        from synthorg_tasks.engine.docker_api import connect

        api = connect(timeout, environ)
        try:
            compose = detect_compose(environ)
        except BaseException:
            api.close()
            raise
        return cls(compose, api, environ)

    def close(self) -> None:
        """Close the SDK connection."""
        self.api.close()

    def running_services(self, project: str) -> list[str]:
        """Return the services of ``project`` with a running container."""
        containers = self.api.list_containers(project, inspect=False)
        return sorted({c.service for c in containers if c.state == "running"})

    def missing_images(self, references: Sequence[str]) -> list[str]:
        """Return the references that are not in the local image store."""
        return [ref for ref in references if not self.api.image_present(ref)]

    def pull(self, config: Config, services: Sequence[str]) -> None:
        """Pull each service's image with retries; report every failure together."""
        attempts = int(str(config.tunable("image_pull_attempts", self.environ)))
        delay = config.tunable_seconds("image_pull_retry_delay", self.environ)
        failures: list[str] = []
        for service in services:
            error = self._pull_one(config, service, attempts, delay)
            if error is not None:
                failures.append(error)
        if failures:
            raise PullError("pulling images failed:\n" + "\n".join(failures))

    def _pull_one(
        self, config: Config, service: str, attempts: int, delay: float
    ) -> str | None:
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                self.compose.run(
                    config.project_name, config.data_dir, "pull", [service]
                )
                _logger.info("pulled %s", service)
                return None
            except EngineError as exc:
                last = exc.message
                _logger.warning(
                    "pull of %s failed (attempt %d of %d)", service, attempt, attempts
                )
            if attempt < attempts:
                time.sleep(min(delay * 2 ** (attempt - 1), PULL_DELAY_CAP_SECONDS))
        hint = ""
        if "dhi.io" in last and ("401" in last or "403" in last):
            hint = " (run: docker login dhi.io)"
        return f"{service}: {last}{hint}"

    def down(self, config: Config) -> None:
        """Stop and remove the project's containers (volumes are kept)."""
        self.compose.run(config.project_name, config.data_dir, "down")

    def up(self, config: Config) -> None:
        """Start the project detached, never pulling."""
        arguments = ["-d"]
        if self.compose.is_v2:
            arguments += ["--pull", "never"]
        self.compose.run(config.project_name, config.data_dir, "up", arguments)

    def wait_ready(self, config: Config, budget_seconds: float) -> None:
        """Wait until the backend is ready; raise :class:`Unhealthy` on timeout."""
        wait_ready(config, budget_seconds, self.environ)


def compose_services(data_dir: Path) -> list[str]:
    """Return the service names of compose.yml in file order."""
    import yaml

    document = yaml.safe_load((data_dir / "compose.yml").read_text(encoding="utf-8"))
    services = document.get("services") if isinstance(document, dict) else None
    return list(services) if isinstance(services, dict) else []
