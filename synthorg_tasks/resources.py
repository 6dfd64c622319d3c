"""Locate the packaged templates and pins.

A wheel carries ``compose-templates/`` and ``config/pins.toml`` inside
``synthorg_tasks/_resources/``. When the package runs uninstalled from a
checkout, the top-level folders of the checkout are used instead.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["pins_path", "read_pins_text", "read_template", "templates_dir"]

_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def _packaged(*parts: str) -> Path | None:
    candidate = resources.files("synthorg_tasks").joinpath("_resources", *parts)
    if candidate.is_file() or candidate.is_dir():
        return Path(str(candidate))
    return None


def templates_dir() -> Path:
    """Return the folder holding ``compose.yml.j2`` and ``nats.conf.j2``."""
    packaged = _packaged("compose-templates")
    if packaged is not None:
        return packaged
    checkout = _CHECKOUT_ROOT / "compose-templates"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        "compose templates not found in the installed package or the checkout"
    )


def pins_path() -> Path:
    """Return the path of ``pins.toml``, packaged or in the checkout."""
    packaged = _packaged("config", "pins.toml")
    if packaged is not None:
        return packaged
    checkout = _CHECKOUT_ROOT / "config" / "pins.toml"
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(
        "pins.toml not found in the installed package or the checkout"
    )


def read_template(name: str) -> str:
    """Return the text of one template."""
    return (templates_dir() / name).read_text(encoding="utf-8")


def read_pins_text() -> str:
    """Return the text of ``pins.toml``."""
    return pins_path().read_text(encoding="utf-8")
