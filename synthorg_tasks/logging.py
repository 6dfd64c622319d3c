"""The ``synthorg`` logger tree and its secret-masking filter."""

from __future__ import annotations

import logging
import sys

from synthorg_tasks.state.secrets import mask

__all__ = ["SecretMaskingFilter", "configure_logging", "get_logger"]

ROOT_LOGGER = "synthorg"


class SecretMaskingFilter(logging.Filter):
    """Replace every registered secret form in a record's rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message or record.args:
            record.msg = masked
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class _LevelFormatter(logging.Formatter):
    """``warning: message`` for WARNING and above, ``debug name: message`` below.

    Warnings and errors then read like the command's own ``warning:`` lines;
    the logger name matters only when tracing with ``-v``.
    """

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        if record.levelno >= logging.WARNING:
            return f"{level}: {record.getMessage()}"
        return f"{level} {record.name}: {record.getMessage()}"


def get_logger(name: str = "") -> logging.Logger:
    """Return ``synthorg`` or a child logger such as ``synthorg.engine``."""
    return logging.getLogger(f"{ROOT_LOGGER}.{name}" if name else ROOT_LOGGER)


_handler: logging.Handler | None = None


def configure_logging(verbosity: int = 0) -> None:
    """Attach one stderr handler to ``synthorg``: WARNING, ``-v`` INFO, ``-vv`` DEBUG.

    Calling it again replaces the handler, so tests and nested programs can
    re-configure without duplicating lines.
    """
    global _handler
    root = logging.getLogger(ROOT_LOGGER)
    if _handler is not None:
        root.removeHandler(_handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter())
    handler.addFilter(SecretMaskingFilter())
    root.addHandler(handler)
    root.propagate = False
    level = logging.WARNING
    if verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    root.setLevel(level)
    _handler = handler
