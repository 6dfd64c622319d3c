"""nats.conf: the size grammar, the limits check and the renderer.

Limits live in the file because current NATS servers take no command-line
flag for ``max_payload``. The server refuses to start when ``max_payload``
exceeds ``max_pending``, and its ``-t`` configuration test does not notice,
so the check runs here before anything is written.
"""

from __future__ import annotations

import re

from synthorg_tasks import __version__

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_MAX_PENDING",
    "check_nats_limits",
    "format_nats_size",
    "parse_nats_size",
    "render_nats_conf",
]

DEFAULT_MAX_PAYLOAD = "16MB"
DEFAULT_MAX_PENDING = "64MB"
MAX_PAYLOAD_LIMIT = 2**31 - 1
WARN_PAYLOAD_BYTES = 8 * 1024 * 1024

_SIZE_RE = re.compile(r"^([1-9][0-9]*)(K|KB|M|MB|G|GB)?$", re.IGNORECASE)
# NATS reads K, M and G as powers of 1000 and KB, MB and GB as powers of 1024.
_UNITS = {
    "": 1,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "KB": 1024,
    "MB": 1024**2,
    "GB": 1024**3,
}


def parse_nats_size(text: str) -> int:
    """Return the bytes of a NATS size such as ``16MB`` (16777216) or ``16M``."""
    match = _SIZE_RE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(
            f"{text!r} is not a NATS size (a positive integer with an optional "
            "unit K, KB, M, MB, G or GB)"
        )
    return int(match.group(1)) * _UNITS[(match.group(2) or "").upper()]


def format_nats_size(size: int) -> str:
    """Return the shortest exact NATS spelling of ``size`` bytes."""
    for unit in ("GB", "G", "MB", "M", "KB", "K"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def check_nats_limits(max_payload: str, max_pending: str) -> None:
    """Raise ``ValueError`` unless 1 <= max_payload <= max_pending and <= 2^31-1."""
    payload = parse_nats_size(max_payload)
    pending = parse_nats_size(max_pending)
    if payload > MAX_PAYLOAD_LIMIT:
        raise ValueError(
            f"max_payload {max_payload} ({payload} bytes) exceeds the server "
            f"maximum of {MAX_PAYLOAD_LIMIT} bytes"
        )
    if payload > pending:
        raise ValueError(
            f"max_payload {max_payload} ({payload} bytes) exceeds max_pending "
            f"{max_pending} ({pending} bytes); the server would refuse to start"
        )


def render_nats_conf(
    max_payload: str = DEFAULT_MAX_PAYLOAD,
    max_pending: str = DEFAULT_MAX_PENDING,
    *,
    host: str = "0.0.0.0",  # noqa: S104 - inside the container; published on bind_address
    port: int = 4222,
    store_dir: str = "/data",
) -> str:
    """Render nats.conf from its template, after checking the limits.

    ``host``, ``port`` and ``store_dir`` exist for native integration tests;
    the product always renders the defaults.
    """
    from synthorg_tasks.render.compose import template_environment

    check_nats_limits(max_payload, max_pending)
    template = template_environment().get_template("nats.conf.j2")
    return template.render(
        version=__version__,
        host=host,
        port=port,
        store_dir=store_dir,
        max_payload=max_payload,
        max_pending=max_pending if max_pending != DEFAULT_MAX_PENDING else None,
    )
