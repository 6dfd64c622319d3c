"""Engine operations of ``update``: pulls, down/up, running containers, readiness.

:class:`StackEngine` is the one object ``update`` talks to, so tests can run
the whole transaction against a real engine or against a stand-in at this
process boundary. :class:`ComposeStackEngine` implements it with the shared
engine session (Compose CLI and docker SDK adapters), the parallel puller and
the readiness wait that ``start`` uses too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from synthorg_tasks.output import Output
from synthorg_tasks.state.config import Config

if TYPE_CHECKING:
    from synthorg_tasks.lifecycle._stack import Baseline, EngineSession

__all__ = ["ComposeStackEngine", "StackEngine", "wait_ready"]


class StackEngine(Protocol):
    """The engine operations of ``update``."""

    def running_services(self, project: str) -> list[str]:
        """Return the services of ``project`` with a running container."""
        ...

    def missing_images(self, references: Sequence[str]) -> list[str]:
        """Return the references that are not in the local image store."""
        ...

    def platform(self) -> str:
        """Return the engine's image platform, such as ``linux/amd64``."""
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


def wait_ready(
    config: Config, budget_seconds: float, environ: Mapping[str, str]
) -> None:
    """Wait for the backend's readiness on its published port (exit 3 or 4)."""
    from synthorg_tasks.health.readiness import (
        api_prefix,
        probe_host,
        probe_readiness,
        wait_for_ready,
    )

    host = probe_host(config.bind_address)
    prefix = api_prefix(environ)
    per_request = config.tunable_seconds("health_check_timeout", environ)
    wait_for_ready(
        lambda: probe_readiness(host, config.backend_port, per_request, prefix),
        budget=budget_seconds,
        initial_delay=config.tunable_seconds("health_initial_delay", environ),
        poll_interval=config.tunable_seconds("health_poll_interval", environ),
    )


class ComposeStackEngine:
    """:class:`StackEngine` on a detected engine session."""

    def __init__(
        self, session: EngineSession, environ: Mapping[str, str], out: Output
    ) -> None:
        self.session = session
        self.environ = dict(environ)
        self.out = out
        # Restart counts seen when ``up`` began, so that only restarts after
        # it count as a crash loop during the readiness wait.
        self.baseline: Baseline | None = None

    @classmethod
    def detect(
        cls, timeout: float, environ: Mapping[str, str], out: Output
    ) -> ComposeStackEngine:
        """Connect to the engine and find Compose; raise before anything changes."""
        from synthorg_tasks.lifecycle._stack import open_engine

        return cls(open_engine(timeout, out, environ), environ, out)

    def close(self) -> None:
        """Close the SDK connection."""
        self.session.close()

    def running_services(self, project: str) -> list[str]:
        """Return the services of ``project`` with a running container."""
        containers = self.session.api.list_containers(project, inspect=False)
        return sorted({c.service for c in containers if c.state == "running"})

    def missing_images(self, references: Sequence[str]) -> list[str]:
        """Return the references that are not in the local image store."""
        return [ref for ref in references if not self.session.api.image_present(ref)]

    def platform(self) -> str:
        """Return the engine's image platform, such as ``linux/amd64``."""
        from synthorg_tasks.engine.platform import oci_architecture

        engine = self.session.api.engine
        system = (engine.os or "linux").lower()
        return f"{system}/{oci_architecture(engine.arch or 'x86_64')}"

    def pull(self, config: Config, services: Sequence[str]) -> None:
        """Pull every service in parallel with retries (raises :class:`PullError`)."""
        from synthorg_tasks.engine.pull import pull_services

        pull_services(
            self.session.compose,
            config.project_name,
            config.data_dir,
            services,
            attempts=int(str(config.tunable("image_pull_attempts", self.environ))),
            retry_delay=config.tunable_seconds("image_pull_retry_delay", self.environ),
        )

    def down(self, config: Config) -> None:
        """Stop and remove the project's containers (volumes are kept)."""
        self.session.compose.run(config.project_name, config.data_dir, "down")

    def up(self, config: Config) -> None:
        """Start the project detached under start's crash-loop monitor."""
        # The same monitored ``up -d`` as start, so a crash loop aborts here too.
        from synthorg_tasks.lifecycle.start import up_detached

        self.baseline = up_detached(self.session, config, self.out)

    def wait_ready(self, config: Config, budget_seconds: float) -> None:
        """Wait until the backend is ready; raise :class:`Unhealthy` on timeout.

        Like start, the wait aborts early on a crash loop and prints
        per-container diagnostics when it fails.
        """
        from synthorg_tasks.lifecycle.start import wait_ready

        wait_ready(
            self.session, config, budget_seconds, self.out, self.environ, self.baseline
        )
