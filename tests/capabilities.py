"""Skip or fail a test that needs an outside capability.

A test skips only when the capability is truly absent. With
``SYNTHORG_TEST_REQUIRE_ALL=1`` (set by CI) a missing capability fails the
test instead, so CI cannot pass by skipping.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ALL_ENV = "SYNTHORG_TEST_REQUIRE_ALL"


def require(capability: str, available: bool, reason: str) -> None:
    """Skip (or, under ``SYNTHORG_TEST_REQUIRE_ALL=1``, fail) unless ``available``."""
    if available:
        return
    message = f"{capability} unavailable: {reason}"
    if os.environ.get(REQUIRE_ALL_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_ALL_ENV}=1 requires every capability)")
    pytest.skip(message)
