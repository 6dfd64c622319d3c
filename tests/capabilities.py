"""Skip or fail a test whose external capability is missing.

CI sets ``SYNTHORG_TEST_REQUIRE_ALL=1`` so that a missing capability fails the
run instead of silently skipping the tests that need it.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["require"]


def require(capability: str, available: bool, reason: str) -> None:
    """Skip the calling test when ``capability`` is absent, or fail under CI."""
    if available:
        return
    message = f"{capability} unavailable: {reason}"
    if os.environ.get("SYNTHORG_TEST_REQUIRE_ALL") == "1":
        pytest.fail(f"{message} (SYNTHORG_TEST_REQUIRE_ALL=1)")
    pytest.skip(message)
