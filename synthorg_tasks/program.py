"""The ``synthorg`` console script: an Invoke ``Program`` on the shared namespace."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from invoke.exceptions import Exit, ParseError
from invoke.parser.argument import Argument
from invoke.program import Program

from synthorg_tasks import __version__
from synthorg_tasks.errors import ExitCode
from synthorg_tasks.output import emit_json
from synthorg_tasks.tasks._base import COMMON_HELP, set_program_defaults

__all__ = [
    "SynthorgProgram",
    "build_program",
    "main",
    "requested_name",
    "rewrite_space_form",
]

# Core flags that take a value, so the rewrite can skip the value.
_VALUE_FLAGS = frozenset(
    {
        "--data-dir",
        "-T",
        "--command-timeout",
        "-f",
        "--config",
        "-c",
        "--collection",
        "-r",
        "--search-root",
        "--complete",
        "--write-pyc",
    }
)
_SUB_COLLECTIONS = {
    "config": frozenset(
        {"get", "set", "unset", "list", "path", "edit", "show", "import"}
    ),
    "db": frozenset({"migrate", "status"}),
    "pins": frozenset({"bump", "check"}),
}


def rewrite_space_form(argv: Sequence[str]) -> list[str]:
    """Rewrite ``config get KEY`` as ``config.get KEY`` (likewise ``db`` and ``pins``).

    Only the first positional token is considered, and only when the next
    token names one of that collection's tasks.
    """
    args = list(argv)
    index = 1
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return args
        if arg.startswith("-"):
            index += 2 if arg in _VALUE_FLAGS else 1
            continue
        tasks = _SUB_COLLECTIONS.get(arg)
        following = args[index + 1] if index + 1 < len(args) else None
        if tasks and following in tasks:
            args[index : index + 2] = [f"{arg}.{following}"]
        elif tasks and following in (None, "--help", "-h"):
            # "synthorg config" or "synthorg config --help" lists its tasks.
            args[index : index + 2] = ["--list", arg]
        return args
    return args


def _parse_error_message(text: str) -> str:
    """Reword Invoke's parser messages in the usual terms."""
    unknown = re.fullmatch(r"No idea what '(.*)' is!", text)
    if unknown:
        return f"unknown flag or task {unknown.group(1)!r}"
    missing = re.fullmatch(r"Flag <Argument: ([a-z_-]+)> needed value.*", text, re.S)
    if missing:
        flag = "--" + missing.group(1).replace("_", "-")
        return f"{flag} needs a value"
    return text


class SynthorgProgram(Program):
    """Invoke's Program with the space form rewrite and usage errors as exit 2."""

    def run(self, argv: Any = None, exit: bool = True) -> None:
        """Run the program; ``argv`` defaults to ``sys.argv``."""
        if argv is None:
            argv = sys.argv
        if isinstance(argv, str):
            argv = argv.split()
        super().run(rewrite_space_form(argv), exit=exit)

    def core_args(self) -> list[Argument]:
        """Invoke's core flags plus the common options, so they may precede the task."""
        return [
            *super().core_args(),
            Argument(names=("data-dir",), help=COMMON_HELP["data_dir"]),
            Argument(
                names=("json",), kind=bool, default=False, help=COMMON_HELP["json"]
            ),
            Argument(
                names=("plain",), kind=bool, default=False, help=COMMON_HELP["plain"]
            ),
            Argument(
                names=("no-color",),
                kind=bool,
                default=False,
                help=COMMON_HELP["no_color"],
            ),
            Argument(
                names=("quiet", "q"),
                kind=bool,
                default=False,
                help=COMMON_HELP["quiet"],
            ),
            Argument(
                names=("verbose", "v"),
                kind=int,
                default=0,
                incrementable=True,
                help=COMMON_HELP["verbose"],
            ),
            Argument(
                names=("yes", "y"), kind=bool, default=False, help=COMMON_HELP["yes"]
            ),
        ]

    def execute(self) -> None:
        # Common options given before the task name apply to every task run.
        set_program_defaults(
            {
                "data_dir": self.args["data-dir"].value,
                "json": self.args.json.value,
                "plain": self.args.plain.value,
                "no_color": self.args["no-color"].value,
                "quiet": self.args.quiet.value,
                "verbose": self.args.verbose.value,
                "debug": self.args.debug.value,
                "yes": self.args.yes.value,
            }
        )
        super().execute()

    def parse_core(self, argv: Any) -> None:
        self._argv = list(argv or [])
        try:
            super().parse_core(argv)
        except ParseError as exc:
            self._usage_error(exc)

    def parse_tasks(self) -> None:
        try:
            super().parse_tasks()
        except ParseError as exc:
            self._usage_error(exc)

    def _usage_error(self, exc: ParseError) -> None:
        """Report a parser error like every other usage error, then exit 2."""
        task = next((a for a in self._argv[1:] if not a.startswith("-")), None)
        hint = f"run 'synthorg {task} --help'" if task else "run 'synthorg --help'"
        message = _parse_error_message(str(exc))
        if "--json" in self._argv:
            emit_json(
                {
                    "error": {"code": "usage", "message": message, "hints": [hint]},
                    "exit_code": int(ExitCode.USAGE),
                }
            )
        raise Exit(f"error: {message}\nhint: {hint}", code=int(ExitCode.USAGE)) from exc


def requested_name(argv: Sequence[str]) -> str | None:
    """Return the root task or sub-collection that ``argv`` runs, if exactly one.

    ``None`` when no task is named, more than one positional token could be a
    task, or the name is unknown; the caller then builds the full namespace.
    """
    from synthorg_tasks.namespace import ROOT_TASKS, SUB_COLLECTIONS

    args = rewrite_space_form(argv)
    index = 1
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return None
        if arg.startswith("-"):
            index += 2 if arg in _VALUE_FLAGS else 1
            continue
        name = arg.split(".", 1)[0]
        if arg in ROOT_TASKS or (name in SUB_COLLECTIONS and "." in arg):
            return name
        return None
    return None


def build_program(argv: Sequence[str] | None = None) -> SynthorgProgram:
    """Return the program, with a namespace of just the task ``argv`` runs."""
    from synthorg_tasks.namespace import ROOT_TASKS, build_namespace

    only = requested_name(argv) if argv is not None else None
    # Several tasks in one call ("synthorg init status") need them all.
    if only in ROOT_TASKS and argv is not None:
        others = [a for a in argv[1:] if a in ROOT_TASKS and a != only]
        if others:
            only = None
    return SynthorgProgram(
        name="synthorg",
        binary="synthorg",
        binary_names=["synthorg"],
        version=__version__,
        namespace=build_namespace(include_dev=False, only=only),
    )


def main() -> None:
    """Entry point of the ``synthorg`` console script."""
    build_program(sys.argv).run()
