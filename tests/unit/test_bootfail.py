"""Boot-failure extraction over a corpus of real-shaped logs."""

from __future__ import annotations

import pytest

from synthorg_tasks.state.secrets import clear_secrets, register_secret
from synthorg_tasks.status.bootfail import extract_boot_failure, is_failure_shaped

CORPUS = [
    pytest.param("INFO: started\nINFO: ready\n", None, id="no-failure"),
    pytest.param(
        "INFO: boot\nERROR: cannot open database\nINFO: retrying\n",
        "ERROR: cannot open database",
        id="error-prefix",
    ),
    pytest.param(
        "2026-01-01 [error] first\n2026-01-01 [critical] second\nINFO: x\n",
        "2026-01-01 [critical] second",
        id="newest-failure-wins",
    ),
    pytest.param(
        "ERROR: migration 0003 failed\n"
        "Traceback (most recent call last):\n"
        '  File "app.py", line 3\n'
        "ERROR: Application startup failed. Exiting.\n"
        "ERROR: late noise after shutdown\n",
        "Traceback (most recent call last):",
        id="before-startup-failed",
    ),
    pytest.param(
        "INFO: a\nApplication startup failed\nERROR: after it\n",
        "ERROR: after it",
        id="startup-failed-without-earlier-failure",
    ),
    pytest.param(
        "backend-1  | INFO: up\nbackend-1  | CRITICAL: bus lost\n",
        "CRITICAL: bus lost",
        id="compose-v2-prefix",
    ),
    pytest.param(
        "demo_backend_1  | ERROR: v1 prefix\n",
        "ERROR: v1 prefix",
        id="compose-v1-prefix",
    ),
    pytest.param(
        "\x1b[31mERROR:\x1b[0m coloured\n",
        "ERROR: coloured",
        id="ansi-stripped",
    ),
    pytest.param(
        "error: lowercase prefix is not a failure line\n",
        None,
        id="lowercase-prefix-ignored",
    ),
    pytest.param("ERROR: " + "x" * 400 + "\n", "ERROR: " + "x" * 233, id="truncated"),
]


@pytest.mark.parametrize(("text", "expected"), CORPUS)
def test_extract_boot_failure(text: str, expected: str | None) -> None:
    assert extract_boot_failure(text) == expected


def test_extract_masks_secrets() -> None:
    clear_secrets()
    register_secret("s3cret-password-value")
    try:
        line = extract_boot_failure("ERROR: auth with s3cret-password-value failed\n")
    finally:
        clear_secrets()
    assert line == "ERROR: auth with **** failed"


@pytest.mark.parametrize(
    ("line", "shaped"),
    [
        ("[ERROR] upper bracket", True),
        ("x [critical] y", True),
        ("CRITICAL: y", True),
        ("Traceback (most recent call last):", True),
        ("WARNING: w", False),
        ("  ERROR: indented after strip only", False),
    ],
    ids=[
        "bracket-upper",
        "bracket-critical",
        "critical-prefix",
        "traceback",
        "warning",
        "indented",
    ],
)
def test_is_failure_shaped(line: str, shaped: bool) -> None:
    assert is_failure_shaped(line) is shaped
