"""The decorator every task uses, and the common options it adds.

``@synthorg_task`` turns a function ``body(c, *, common, **flags)`` into an
Invoke task that:

- accepts the common options (``--data-dir``, ``--json``, ``--plain``,
  ``--no-color``, ``--quiet``/``-q``, ``--verbose``/``-v``, ``--debug``,
  ``--yes``/``-y``) in addition to its own flags;
- sets up output and logging before the body runs;
- converts product errors into one ``error:`` line, ``hint:`` lines (and a JSON
  error document with ``--json``) and :class:`invoke.exceptions.Exit` with the
  error's exit code, never a traceback;
- turns SIGINT and SIGTERM into exit 130 after the body's cleanup ran.

Automatic short flags are off: only ``-q``, ``-v`` and ``-y`` exist, plus the
ones a task names in ``short_flags``.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from invoke.exceptions import Exit
from invoke.tasks import Task

from synthorg_tasks.errors import ExitCode, SynthorgError, UsageError
from synthorg_tasks.logging import configure_logging
from synthorg_tasks.output import Output, emit_json, env_flag
from synthorg_tasks.state.paths import resolve_data_dir
from synthorg_tasks.state.secrets import mask

__all__ = [
    "COMMON_HELP",
    "CommonOptions",
    "SynthorgTask",
    "set_program_defaults",
    "synthorg_task",
]

COMMON_HELP = {
    "data_dir": "Data dir of the install (env SYNTHORG_DATA_DIR; default "
    "$XDG_DATA_HOME/synthorg or ~/.local/share/synthorg).",
    "json": "Print one JSON document on stdout.",
    "plain": "ASCII only: no colour, boxes, spinners or progress bars.",
    "no_color": "No colour (also NO_COLOR, CLICOLOR=0, TERM=dumb).",
    "quiet": "Only errors and unsuppressible warnings (env SYNTHORG_QUIET).",
    "verbose": "More detail on stderr; repeat the flag: -v INFO, -vv DEBUG.",
    "debug": "Same as -vv.",
    "yes": "Answer every confirmation with proceed (env SYNTHORG_YES).",
}
_COMMON_DEFAULTS: dict[str, Any] = {
    "data_dir": None,
    "json": False,
    "plain": False,
    "no_color": False,
    "quiet": False,
    "verbose": 0,
    "debug": False,
    "yes": False,
}
_COMMON_SHORT = {"quiet": "q", "verbose": "v", "yes": "y"}

# Common options the console script parsed before the task name. A flag given
# after the task name wins over these.
_program_defaults: dict[str, Any] = {}


def set_program_defaults(values: dict[str, Any]) -> None:
    """Record the common options given before the task name."""
    _program_defaults.clear()
    _program_defaults.update(values)


@dataclass
class CommonOptions:
    """The common options of one invocation, with env twins applied."""

    data_dir_flag: str | None
    out: Output
    yes: bool

    def data_dir(self) -> Path:
        """Resolve the data dir from the flag, the environment or the default."""
        return resolve_data_dir(self.data_dir_flag)


def _color_allowed(no_color: bool, plain: bool) -> bool:
    if no_color or plain:
        return False
    if os.environ.get("NO_COLOR", ""):
        return False
    if os.environ.get("CLICOLOR") == "0" or os.environ.get("TERM") == "dumb":
        return False
    return sys.stderr.isatty()


def _common_from_kwargs(kwargs: dict[str, Any]) -> CommonOptions:
    flags = {name: kwargs.pop(name) for name in _COMMON_DEFAULTS}
    for name, default in _COMMON_DEFAULTS.items():
        before_task = _program_defaults.get(name)
        if flags[name] == default and before_task not in (None, default):
            flags[name] = before_task
    quiet = bool(flags["quiet"]) or env_flag("SYNTHORG_QUIET")
    verbosity = 2 if flags["debug"] else int(flags["verbose"] or 0)
    if flags["quiet"] and verbosity:
        raise UsageError("--quiet cannot be combined with --verbose or --debug")
    if flags["plain"] and flags["json"]:
        raise UsageError("--plain cannot be combined with --json")
    out = Output(
        json=bool(flags["json"]),
        quiet=quiet,
        plain=bool(flags["plain"]),
        color=_color_allowed(bool(flags["no_color"]), bool(flags["plain"])),
        verbosity=0 if quiet else verbosity,
    )
    yes = bool(flags["yes"]) or env_flag("SYNTHORG_YES")
    return CommonOptions(flags["data_dir"], out, yes)


class _Terminated(BaseException):
    """Raised inside the task when SIGTERM arrives, unwinding like Ctrl+C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _report(error: SynthorgError, out: Output | None) -> None:
    output = out or Output()
    output.error(error.message, error.hints)
    if output.json:
        emit_json(
            {
                "error": {
                    "code": error.slug,
                    "message": mask(error.message),
                    "hints": [mask(h) for h in error.hints],
                },
                "exit_code": int(error.exit_code),
            }
        )


class SynthorgTask(Task[Any]):
    """An Invoke task whose flags get only the short names listed for it."""

    def __init__(
        self, *args: Any, short_flags: dict[str, str] | None = None, **kwargs: Any
    ) -> None:
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)
        self.short_flags = {**_COMMON_SHORT, **(short_flags or {})}

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> Any:
        opts = super().arg_opts(name, default, taken_names)
        short = self.short_flags.get(name)
        if short and short not in taken_names:
            opts["names"] = [*opts["names"], short]
        return opts


def synthorg_task(
    *,
    name: str | None = None,
    help: dict[str, str] | None = None,
    positional: list[str] | None = None,
    optional: list[str] | None = None,
    iterable: list[str] | None = None,
    short_flags: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], SynthorgTask]:
    """Wrap ``body(c, *, common, **flags)`` as a task with the common options."""

    def decorate(body: Callable[..., Any]) -> SynthorgTask:
        signature = inspect.signature(body)
        own = [p for p in signature.parameters.values() if p.name != "common"]
        extra = [
            inspect.Parameter(option, inspect.Parameter.KEYWORD_ONLY, default=default)
            for option, default in _COMMON_DEFAULTS.items()
            if option not in signature.parameters
        ]

        @functools.wraps(body)
        def wrapper(c: Any, *args: Any, **kwargs: Any) -> Any:
            out: Output | None = None
            try:
                common = _common_from_kwargs(kwargs)
                out = common.out
                configure_logging(out.verbosity)
                with _sigterm_as_interrupt():
                    return body(c, *args, common=common, **kwargs)
            except SynthorgError as error:
                _report(error, out)
                raise Exit(code=int(error.exit_code)) from None
            except (KeyboardInterrupt, _Terminated):
                print("interrupted", file=sys.stderr, flush=True)
                raise Exit(code=int(ExitCode.INTERRUPTED)) from None

        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*own, *extra]
        )
        del wrapper.__wrapped__  # Invoke must read the signature set above
        task_help = {**COMMON_HELP, **(help or {})}
        task_help = {
            k: v
            for k, v in task_help.items()
            if k in {p.name for p in own} or k in _COMMON_DEFAULTS
        }
        return SynthorgTask(
            wrapper,
            name=name,
            help=task_help,
            positional=positional or [],
            optional=optional or [],
            iterable=iterable or [],
            incrementable=["verbose"],
            short_flags=short_flags,
        )

    return decorate
