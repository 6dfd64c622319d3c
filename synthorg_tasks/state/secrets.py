"""Password generation and the registry of secrets that outputs must mask.

Every secret is registered in three forms, because each reaches a different
sink: the raw value (psycopg, config.json), the percent-encoded value (database
URLs) and the ``$``-doubled value (compose.yml, where Compose would otherwise
interpolate ``$``). :func:`mask` replaces all of them.
"""

from __future__ import annotations

import secrets
import threading
from urllib.parse import quote

__all__ = [
    "MASK",
    "REDACTED",
    "clear_secrets",
    "generate_password",
    "mask",
    "percent_encode",
    "register_secret",
    "registered_forms",
]

MASK = "****"
REDACTED = "[REDACTED]"

# Secrets shorter than this are not registered: masking every occurrence of a
# two-letter string would garble unrelated output.
_MIN_MASKED_LENGTH = 4

_lock = threading.Lock()
_forms: set[str] = set()


def generate_password() -> str:
    """Return a new PostgreSQL password: 32 random bytes, URL-safe base64, 43 chars."""
    return secrets.token_urlsafe(32)


def percent_encode(value: str) -> str:
    """Encode every character outside ``A-Za-z0-9-._~`` as ``%HH`` (UTF-8)."""
    return quote(value, safe="-._~")


def register_secret(value: str) -> None:
    """Add a secret, its percent-encoded and its ``$``-doubled forms to the registry."""
    if len(value) < _MIN_MASKED_LENGTH:
        return
    with _lock:
        _forms.update({value, percent_encode(value), value.replace("$", "$$")})


def registered_forms() -> frozenset[str]:
    """Return every registered form, for tests and diagnostics."""
    with _lock:
        return frozenset(_forms)


def clear_secrets() -> None:
    """Forget every registered secret (tests only)."""
    with _lock:
        _forms.clear()


def mask(text: str, replacement: str = MASK) -> str:
    """Return ``text`` with every registered secret form replaced."""
    with _lock:
        # Longest first, so a form that contains another is replaced whole.
        forms = sorted(_forms, key=len, reverse=True)
    for form in forms:
        if form in text:
            text = text.replace(form, replacement)
    return text
