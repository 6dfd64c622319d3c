"""TTY detection and confirmations."""

from __future__ import annotations

import sys

from synthorg_tasks.errors import UsageError

__all__ = ["ask_choice", "confirm", "stdin_is_tty"]


def stdin_is_tty() -> bool:
    """Return whether standard input is an interactive terminal."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def confirm(question: str, *, action: str, yes: bool, default: bool = False) -> bool:
    """Ask a yes/no question, or accept ``--yes``; without a TTY, raise.

    ``action`` completes "refusing to <action> without confirmation".
    """
    if yes:
        return True
    if not stdin_is_tty():
        raise UsageError(
            f"refusing to {action} without confirmation; pass --yes",
            hints=["re-run with --yes"],
        )
    suffix = " [Y/n] " if default else " [y/N] "
    while True:
        print(question + suffix, end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if not answer:  # end of input (Ctrl-D) declines
            print(file=sys.stderr)
            return False
        word = answer.strip().lower()
        if not word:
            return default
        if word in ("y", "yes"):
            return True
        if word in ("n", "no"):
            return False


def ask_choice(question: str, choices: tuple[str, ...], default: str) -> str:
    """Ask for one of ``choices`` on the terminal; empty input picks ``default``."""
    prompt = f"{question} ({'/'.join(choices)}) [{default}]: "
    while True:
        print(prompt, end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline()
        if not answer:  # end of input (Ctrl-D) cancels
            print(file=sys.stderr)
            raise UsageError("input ended at a prompt; nothing was written")
        word = answer.strip().lower()
        if not word:
            return default
        if word in choices:
            return word
        print(f"please answer one of: {', '.join(choices)}", file=sys.stderr)
