"""Port model and the collision matrix of the published host ports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CONTAINER_PORTS", "PORT_SERVICES", "Collision", "find_collision"]

# Config key → the service that publishes it.
PORT_SERVICES = {
    "web_port": "web",
    "backend_port": "backend",
    "postgres_port": "postgres",
    "nats_client_port": "nats",
}
CONTAINER_PORTS = {
    "web_port": 8080,
    "backend_port": 3001,
    "postgres_port": 5432,
    "nats_client_port": 4222,
}

# Pairs that must differ, in the order they are checked. A pair is checked
# only when both keys are present, which is how disabled services are ignored.
_PAIRS = (
    ("backend_port", "web_port"),
    ("postgres_port", "web_port"),
    ("postgres_port", "backend_port"),
    ("nats_client_port", "postgres_port"),
    ("nats_client_port", "web_port"),
    ("nats_client_port", "backend_port"),
)


@dataclass(frozen=True)
class Collision:
    """Two enabled services on one host port."""

    key: str
    other: str
    port: int

    @property
    def message(self) -> str:
        """The user-facing rule that was broken."""
        return f"{self.key} {self.port} is already used by {self.other}"


def find_collision(ports: Mapping[str, int | None]) -> Collision | None:
    """Return the first pair of enabled services sharing a port, or ``None``.

    ``ports`` maps config keys to ports of the enabled services only.
    """
    for key, other in _PAIRS:
        first, second = ports.get(key), ports.get(other)
        if first is not None and first == second:
            return Collision(key, other, first)
    return None
