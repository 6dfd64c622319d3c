"""Output streams: data on stdout, diagnostics on stderr, secrets always masked.

Rich is imported only by commands that draw tables or progress, so the plain
paths (``--help``, ``config get``, ``init``) stay fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from synthorg_tasks.state.secrets import mask

__all__ = ["Output", "emit_json", "env_flag"]

_TRUE_WORDS = frozenset({"1", "true", "yes"})


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Return whether a boolean environment twin is set to 1, true or yes."""
    env = os.environ if environ is None else environ
    return env.get(name, "").strip().lower() in _TRUE_WORDS


def emit_json(document: Any, stream: TextIO | None = None) -> None:
    """Write one JSON document and a newline to stdout, secrets masked."""
    target = sys.stdout if stream is None else stream
    target.write(mask(json.dumps(document, indent=2, ensure_ascii=False)) + "\n")
    target.flush()


@dataclass
class Output:
    """How one command prints: JSON or human, quiet, plain, coloured."""

    json: bool = False
    quiet: bool = False
    plain: bool = False
    color: bool = True
    verbosity: int = 0

    def banner(self) -> None:
        """Print the one-line name and version banner unless quiet, JSON or plain."""
        if not (self.quiet or self.json or self.plain):
            from synthorg_tasks import __version__

            print(f"synthorg-tasks {__version__}", file=sys.stderr, flush=True)

    def data(self, text: str) -> None:
        """Print a result line on stdout (suppressed in JSON mode)."""
        if not self.json:
            print(mask(text), file=sys.stdout, flush=True)

    def document(self, document: Any) -> None:
        """Print the command's one JSON document on stdout."""
        emit_json(document)

    def info(self, text: str) -> None:
        """Print a progress or status line on stderr unless quiet or JSON."""
        if not (self.quiet or self.json):
            print(mask(text), file=sys.stderr, flush=True)

    def warn(self, text: str, *, unsuppressible: bool = False) -> None:
        """Print a warning on stderr; unsuppressible ones ignore quiet and JSON."""
        if unsuppressible or not (self.quiet or self.json):
            prefix = "" if text.startswith("WARNING") else "warning: "
            print(mask(prefix + text), file=sys.stderr, flush=True)

    def error(self, message: str, hints: Sequence[str] = ()) -> None:
        """Print ``error:`` and ``hint:`` lines on stderr."""
        lines = [f"error: {message}", *(f"hint: {hint}" for hint in hints)]
        print(mask("\n".join(lines)), file=sys.stderr, flush=True)

    def table(self, title: str, rows: Sequence[tuple[str, str]]) -> None:
        """Print a two-column table on stdout (plain text, aligned)."""
        if self.json:
            return
        width = max((len(key) for key, _ in rows), default=0)
        lines = [title, "-" * max(len(title), 1)]
        lines += [f"{key.ljust(width)}  {value}" for key, value in rows]
        self.data("\n".join(lines))
