"""Boot-failure extraction: the one log line that explains a failed start.

The input is a container's last log lines. ANSI sequences and Compose log
prefixes (``service-1  | ``) are stripped first. When a line contains
``Application startup failed``, the newest failure-shaped line before the
last such line wins; otherwise the newest failure-shaped line overall.
Failure-shaped means: it contains ``[error]`` or ``[critical]``, starts with
``ERROR:`` or ``CRITICAL:``, or is ``Traceback (most recent call last):``.
The result is cut to 240 characters and masked.
"""

from __future__ import annotations

import re

from synthorg_tasks.state.secrets import mask

__all__ = ["MAX_LINE_LENGTH", "extract_boot_failure", "is_failure_shaped"]

MAX_LINE_LENGTH = 240
_STARTUP_FAILED = "Application startup failed"
_TRACEBACK = "Traceback (most recent call last):"
_ANSI_PATTERN = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
# ``name-1  | message`` or ``name_1 | message`` as Compose prints them.
_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\s+\|\s?")


def _clean(line: str) -> str:
    without_ansi = _ANSI_PATTERN.sub("", line).rstrip("\r")
    return _PREFIX_PATTERN.sub("", without_ansi, count=1).strip()


def is_failure_shaped(line: str) -> bool:
    """Whether a cleaned log line looks like a failure report."""
    lowered = line.lower()
    return (
        "[error]" in lowered
        or "[critical]" in lowered
        or line.startswith(("ERROR:", "CRITICAL:"))
        or line == _TRACEBACK
    )


def extract_boot_failure(text: str) -> str | None:
    """Return the line that explains a failed start, or ``None``."""
    lines = [_clean(line) for line in text.splitlines()]
    lines = [line for line in lines if line]
    end = len(lines)
    for index in range(len(lines) - 1, -1, -1):
        if _STARTUP_FAILED in lines[index]:
            end = index
            break
    chosen: str | None = None
    for line in reversed(lines[:end]):
        if is_failure_shaped(line):
            chosen = line
            break
    if chosen is None and end != len(lines):
        for line in reversed(lines):
            if is_failure_shaped(line):
                chosen = line
                break
    if chosen is None:
        return None
    return mask(chosen[:MAX_LINE_LENGTH])
