"""Docker Compose detection, the version gate, argv and subprocess runs.

Two implementations are supported: the v2 plugin (``docker compose``) at any
2.x or later, and the standalone ``docker-compose`` from 1.29.0 on, the first
release that accepts ``condition: service_completed_successfully``. A
``docker-compose`` binary reporting 2.x counts as v2. Detection runs before any
file, lock or container is touched, so an old Compose never fails half-way.

Every run gets ``--project-name``, ``--file`` and ``--project-directory`` and an
environment without ``COMPOSE_*`` and ``SYNTHORG_*`` variables, so the caller's
shell cannot change the generated wiring.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from synthorg_tasks.errors import ComposeFailed, ComposeMissing, ComposeTooOld
from synthorg_tasks.logging import get_logger
from synthorg_tasks.state.secrets import mask

__all__ = [
    "MINIMUM_V1",
    "OUTPUT_TAIL_LINES",
    "ComposeCli",
    "ComposeResult",
    "ComposeVersion",
    "compose_argv",
    "detect_compose",
    "output_tail",
    "parse_compose_version",
    "sanitized_environment",
    "strip_control_characters",
]

_logger = get_logger("engine")

MINIMUM_V1 = (1, 29, 0)
OUTPUT_TAIL_LINES = 20
DETECT_TIMEOUT_SECONDS = 15.0

_VERSION_PATTERN = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")
_STRIPPED_PREFIXES = ("COMPOSE_", "SYNTHORG_")
# C0 controls except TAB and LF, DEL, and C1 controls; ANSI sequences first.
_ANSI_PATTERN = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
_CONTROL_PATTERN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class ComposeVersion:
    """A parsed Compose version and the command that reported it."""

    major: int
    minor: int
    patch: int
    raw: str

    @property
    def triple(self) -> tuple[int, int, int]:
        """The version as ``(major, minor, patch)``."""
        return (self.major, self.minor, self.patch)

    @property
    def is_v2(self) -> bool:
        """Whether this is Compose v2 or later (any binary)."""
        return self.major >= 2

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_compose_version(text: str) -> ComposeVersion:
    """Parse ``v2.24.5``, ``2.24.5-desktop.1`` or ``1.29.2`` into a version.

    A leading ``v`` and any build suffix are ignored. Raises ``ValueError`` for
    text that does not start with ``MAJOR.MINOR.PATCH``.
    """
    stripped = text.strip()
    match = _VERSION_PATTERN.match(stripped)
    if match is None:
        raise ValueError(f"not a Compose version: {stripped!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return ComposeVersion(major, minor, patch, stripped)


@dataclass(frozen=True)
class ComposeResult:
    """Exit code and combined output of one finished Compose run."""

    returncode: int
    output: str


def strip_control_characters(text: str) -> str:
    """Remove ANSI sequences and control characters other than TAB and LF."""
    return _CONTROL_PATTERN.sub("", _ANSI_PATTERN.sub("", text.replace("\r\n", "\n")))


def output_tail(output: str, lines: int = OUTPUT_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of ``output``, control-free and masked."""
    cleaned = strip_control_characters(output).rstrip("\n").splitlines()
    return mask("\n".join(cleaned[-lines:]))


def sanitized_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return a copy of ``environ`` without any ``COMPOSE_*`` or ``SYNTHORG_*`` key."""
    source = os.environ if environ is None else environ
    return {
        key: value
        for key, value in source.items()
        if not key.upper().startswith(_STRIPPED_PREFIXES)
    }


def compose_argv(
    implementation: Sequence[str],
    project: str,
    directory: Path,
    subcommand: str,
    arguments: Iterable[str] = (),
) -> list[str]:
    """Build the argv of one Compose subcommand for a project.

    The form is ``<impl> --project-name P --file DIR/compose.yml
    --project-directory DIR <subcommand> <arguments>``.
    """
    return [
        *implementation,
        "--project-name",
        project,
        "--file",
        str(directory / "compose.yml"),
        "--project-directory",
        str(directory),
        subcommand,
        *arguments,
    ]


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def _probe_version(
    argv: Sequence[str], environ: Mapping[str, str], runner: Runner
) -> str | None:
    try:
        completed = runner(
            list(argv),
            capture_output=True,
            text=True,
            env=dict(environ),
            timeout=DETECT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        _logger.debug("%s failed: %s", " ".join(argv), exc)
        return None
    if completed.returncode != 0:
        _logger.debug(
            "%s exited %d: %s",
            " ".join(argv),
            completed.returncode,
            output_tail(completed.stderr or "", 3),
        )
        return None
    return str(completed.stdout).strip()


def detect_compose(
    environ: Mapping[str, str] | None = None, *, runner: Runner | None = None
) -> ComposeCli:
    """Find a usable Compose: the v2 plugin first, then ``docker-compose``.

    Raises :class:`ComposeTooOld` for a ``docker-compose`` older than 1.29.0
    and :class:`ComposeMissing` when neither reports a version.
    """
    env = sanitized_environment(environ)
    run = subprocess.run if runner is None else runner
    candidates: list[tuple[list[str], str]] = [
        (["docker", "compose"], "docker compose"),
        (["docker-compose"], "docker-compose"),
    ]
    for implementation, binary in candidates:
        text = _probe_version([*implementation, "version", "--short"], env, run)
        if text is None:
            continue
        try:
            version = parse_compose_version(text)
        except ValueError:
            _logger.debug("%s reported an unparseable version %r", binary, text)
            continue
        if not version.is_v2 and version.triple < MINIMUM_V1:
            raise ComposeTooOld(
                f"Docker Compose {version} ({binary}) is too old: at least 1.29.0 "
                "is required",
                hints=["install the Compose v2 plugin or docker-compose >= 1.29.0"],
            )
        _logger.info("using Docker Compose %s (%s)", version, binary)
        return ComposeCli(implementation, binary, version, env)
    raise ComposeMissing(
        "Docker Compose not found: install the Compose v2 plugin or "
        "docker-compose >= 1.29.0"
    )


class ComposeCli:
    """One detected Compose implementation, bound to a sanitised environment."""

    def __init__(
        self,
        implementation: Sequence[str],
        binary: str,
        version: ComposeVersion,
        environ: Mapping[str, str],
    ) -> None:
        self.implementation = list(implementation)
        self.binary = binary
        self.version = version
        self.environ = dict(environ)

    @property
    def is_v2(self) -> bool:
        """Whether the implementation is Compose v2 or later."""
        return self.version.is_v2

    def argv(
        self,
        project: str,
        directory: Path,
        subcommand: str,
        arguments: Iterable[str] = (),
    ) -> list[str]:
        """Return the full argv of one Compose subcommand for a project."""
        return compose_argv(
            self.implementation, project, directory, subcommand, arguments
        )

    def run(
        self,
        project: str,
        directory: Path,
        subcommand: str,
        arguments: Iterable[str] = (),
        *,
        timeout: float | None = None,
        check: bool = True,
    ) -> ComposeResult:
        """Run one subcommand to completion with its output captured.

        Raises :class:`ComposeFailed` with the masked output tail when it exits
        non-zero and ``check`` is true.
        """
        argv = self.argv(project, directory, subcommand, arguments)
        _logger.debug("running %s", " ".join(argv))
        try:
            completed = subprocess.run(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                env=self.environ,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ComposeFailed(
                f"{self.binary} {subcommand} timed out after {timeout:g}s"
            ) from exc
        except OSError as exc:
            raise ComposeFailed(
                f"cannot run {self.binary} {subcommand}: {exc.strerror or exc}"
            ) from exc
        result = ComposeResult(completed.returncode, completed.stdout or "")
        if check and result.returncode != 0:
            raise self.failure(subcommand, result)
        return result

    def popen(
        self,
        project: str,
        directory: Path,
        subcommand: str,
        arguments: Iterable[str] = (),
        *,
        capture: bool = True,
    ) -> subprocess.Popen[str]:
        """Start one subcommand in the background (its own process group)."""
        argv = self.argv(project, directory, subcommand, arguments)
        _logger.debug("starting %s", " ".join(argv))
        output = subprocess.PIPE if capture else None
        try:
            return subprocess.Popen(
                argv,
                stdout=output,
                stderr=subprocess.STDOUT if capture else None,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                env=self.environ,
                start_new_session=capture,
            )
        except OSError as exc:
            raise ComposeFailed(
                f"cannot run {self.binary} {subcommand}: {exc.strerror or exc}"
            ) from exc

    def failure(self, subcommand: str, result: ComposeResult) -> ComposeFailed:
        """Build the error of a failed run, with its last output lines."""
        tail = output_tail(result.output)
        code = result.returncode
        message = f"{self.binary} {subcommand} failed with exit code {code}"
        if tail:
            message = f"{message}:\n{tail}"
        return ComposeFailed(message)
