"""Value grammars shared by flags, config.json, rendering and verification.

Each ``parse_*`` function returns the canonical value or raises ``ValueError``
with the rule in words; callers add the key and the fix.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "DIGEST_RE",
    "DURATION_RE",
    "IMAGE_REF_RE",
    "PROJECT_NAME_RE",
    "REGISTRY_RE",
    "REPO_PREFIX_RE",
    "SERVICE_FILTER_RE",
    "TAG_RE",
    "derive_project_name",
    "is_loopback",
    "is_wildcard",
    "parse_bind_address",
    "parse_byte_size",
    "parse_duration",
    "parse_port",
]

PORT_TEXT_RE = re.compile(r"^[1-9][0-9]{0,4}$")
PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
PROJECT_NAME_MAX = 63
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
REGISTRY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?$")
REGISTRY_MAX = 253
REPO_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]*$")
REPO_PREFIX_MAX = 255
_COMPONENT = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
IMAGE_REF_RE = re.compile(
    r"^(?:(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]{1,5})?)/(?=.))?"
    rf"(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9][A-Za-z0-9._-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
DURATION_RE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_BYTE_SIZE_RE = re.compile(
    r"^([0-9]+(?:\.[0-9]+)?)\s*(b|k|kb|m|mb|g|gb|ki|kib|mi|mib|gi|gib)?$", re.IGNORECASE
)
_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}
BYTE_SIZE_MAX = 1024**3
SERVICE_FILTER_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_port(value: object) -> int:
    """Return a port 1-65535 from an int or its decimal text (no sign, no leading 0)."""
    if isinstance(value, bool):
        raise ValueError("a port is an integer from 1 to 65535, not a boolean")
    if isinstance(value, str):
        if not PORT_TEXT_RE.fullmatch(value):
            raise ValueError("a port is an integer from 1 to 65535")
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("a port is an integer from 1 to 65535")
    return value


def parse_bind_address(value: str) -> str:
    """Return the canonical form of a bind address (IPv6 compressed, no brackets)."""
    text = value.strip()
    if text != value or not text:
        raise ValueError("an IPv4 or IPv6 address without spaces")
    if text.startswith("[") and text.endswith("]"):
        raise ValueError("an IPv6 address is written without brackets")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(
            "an IPv4 dotted quad without leading zeros, or an IPv6 address"
        ) from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            raise ValueError("IPv4-mapped IPv6 addresses are not accepted")
        if address.scope_id is not None:
            raise ValueError("an IPv6 address without a zone index")
        if address.packed[:12] == bytes(12) and int(address) > 1:
            raise ValueError(
                "IPv4-compatible IPv6 addresses (::a.b.c.d) are deprecated"
            )
    elif address == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError("the broadcast address cannot be bound")
    if address.is_multicast:
        raise ValueError("a multicast address cannot be bound")
    return str(address)


def is_loopback(address: str) -> bool:
    """Return whether a canonical bind address is in 127.0.0.0/8 or is ::1."""
    return ipaddress.ip_address(address).is_loopback


def is_wildcard(address: str) -> bool:
    """Return whether a canonical bind address is 0.0.0.0 or ::."""
    return ipaddress.ip_address(address).is_unspecified


def parse_duration(value: str) -> float:
    """Return seconds from a Go duration such as ``90s``, ``1m30s`` or ``500ms``."""
    if not isinstance(value, str) or not DURATION_RE.fullmatch(value):
        raise ValueError("a duration such as 90s, 1m30s or 500ms")
    seconds = sum(
        float(number) * _DURATION_UNITS[unit]
        for number, unit in _DURATION_PART_RE.findall(value)
    )
    if seconds <= 0:
        raise ValueError("a duration greater than zero")
    return seconds


def parse_byte_size(value: object) -> int:
    """Return bytes from an integer or a size such as ``4MiB`` (at most 1 GiB)."""
    if isinstance(value, bool):
        raise ValueError("a byte size, not a boolean")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _BYTE_SIZE_RE.fullmatch(value.strip())
        if not match:
            raise ValueError("a byte size such as 4194304, 4MB or 4MiB")
        number, unit = match.group(1), (match.group(2) or "").lower()
        size = round(float(number) * _BYTE_UNITS[unit])
    else:
        raise ValueError("a byte size such as 4194304, 4MB or 4MiB")
    if size < 1:
        raise ValueError("a byte size of at least 1 byte")
    if size > BYTE_SIZE_MAX:
        raise ValueError("a byte size of at most 1 GiB")
    return size


def derive_project_name(base_name: str) -> str:
    """Derive a Compose project name from a folder name.

    Lowercase, delete every character outside ``[a-z0-9_-]``, strip leading
    characters outside ``[a-z0-9]``, cut to 63 characters, and fall back to
    ``synthorg`` when nothing remains.
    """
    name = re.sub(r"[^a-z0-9_-]", "", base_name.lower())
    name = re.sub(r"^[^a-z0-9]+", "", name)[:PROJECT_NAME_MAX]
    return name or "synthorg"
