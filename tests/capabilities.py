"""Skip a test when an outside capability is missing, or fail in CI.

CI sets ``SYNTHORG_TEST_REQUIRE_ALL=1`` because it provides every capability:
there, a missing one is a broken setup and must fail instead of skip.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["require", "require_binary"]


def require(capability: str, available: bool, reason: str) -> None:
    """Skip (or fail under ``SYNTHORG_TEST_REQUIRE_ALL=1``) when not ``available``."""
    if available:
        return
    message = f"{capability} unavailable: {reason}"
    if os.environ.get("SYNTHORG_TEST_REQUIRE_ALL") == "1":
        pytest.fail(f"{message} (SYNTHORG_TEST_REQUIRE_ALL=1)")
    pytest.skip(message)


def require_binary(name: str, *candidates: str) -> str:
    """Return the path of the first binary found, or skip/fail naming them."""
    for candidate in (name, *candidates):
        found = shutil.which(candidate) or (
            candidate
            if os.path.isabs(candidate) and os.access(candidate, os.X_OK)
            else None
        )
        if found:
            return found
    require(name, False, f"none of {', '.join((name, *candidates))} is installed")
    raise AssertionError("unreachable")
