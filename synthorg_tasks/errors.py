"""Exception tree and exit codes of the toolkit.

Every failure a user can cause or fix is a :class:`SynthorgError`, which carries
the message, the process exit code and optional hints. The task decorator turns
these into one ``error:`` line plus ``hint:`` lines and never prints a traceback
for them. Programmer errors stay ``TypeError``/``ValueError`` and keep theirs.

    SynthorgError
    ├── UsageError (2)
    ├── ConfigError (1)
    │   ├── ConfigMalformed
    │   ├── ConfigInvalid
    │   ├── ConfigTooNew
    │   └── NotInitialized
    ├── LockTimeout (1)
    ├── EngineError (1)
    │   ├── EngineUnreachable (4)
    │   ├── ComposeMissing
    │   ├── ComposeTooOld
    │   └── ComposeFailed
    ├── PortInUse (1)
    ├── VerificationError (1)
    │   └── TransportError (adds the air-gapped hint)
    ├── PullError (1)
    ├── HealthError
    │   ├── Unhealthy (3)
    │   └── Unreachable (4)
    ├── PersistenceError
    │   ├── PersistenceConfigError (2, also a ValueError)
    │   ├── MigrationError (1)
    │   │   └── MigrationLockTimeout
    │   └── DatabaseUnreachable (4)
    ├── UpdateAvailable (10, a result rather than a failure)
    └── Interrupted (130)
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

__all__ = [
    "AIR_GAPPED_HINT",
    "ComposeFailed",
    "ComposeMissing",
    "ComposeTooOld",
    "ConfigError",
    "ConfigInvalid",
    "ConfigMalformed",
    "ConfigTooNew",
    "DatabaseUnreachable",
    "EngineError",
    "EngineUnreachable",
    "ExitCode",
    "HealthError",
    "Interrupted",
    "LockTimeout",
    "MigrationError",
    "MigrationLockTimeout",
    "NotInitialized",
    "PersistenceConfigError",
    "PersistenceError",
    "PortInUse",
    "PullError",
    "SynthorgError",
    "TransportError",
    "Unhealthy",
    "Unreachable",
    "UpdateAvailable",
    "UsageError",
    "VerificationError",
]

AIR_GAPPED_HINT = (
    "on a host without registry access, --skip-verify skips verification "
    "(images are then unverified)"
)


class ExitCode(IntEnum):
    """Process exit codes shared by every task."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CRITICAL = 3
    UNREACHABLE = 4
    DEGRADED = 5
    UPDATE_AVAILABLE = 10
    INTERRUPTED = 130


class SynthorgError(Exception):
    """Base of every error the user can act on.

    ``message`` is one sentence that names the value and the rule; ``hints``
    are follow-up commands or fixes, printed as ``hint:`` lines.
    """

    exit_code: int = ExitCode.FAILURE
    slug: str = "error"

    def __init__(
        self,
        message: str,
        *,
        hints: Sequence[str] = (),
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hints = list(hints)
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(SynthorgError):
    """Raised for an invalid flag, value, key or a missing confirmation."""

    exit_code = ExitCode.USAGE
    slug = "usage"


class ConfigError(SynthorgError):
    """Raised when config.json cannot be read, parsed or accepted."""

    slug = "config"


class ConfigMalformed(ConfigError):
    """Raised when config.json is not a valid JSON object; the file is untouched."""

    slug = "config_malformed"


class ConfigInvalid(ConfigError):
    """Raised when a stored value breaks its rule."""

    slug = "config_invalid"


class ConfigTooNew(ConfigError):
    """Raised when config.json has a newer schema_version than supported."""

    slug = "config_too_new"


class NotInitialized(ConfigError):
    """Raised when a command needs config.json or compose.yml and it is missing."""

    slug = "not_initialized"


class LockTimeout(SynthorgError):
    """Raised when another lifecycle operation holds the lock for too long."""

    slug = "lock_timeout"


class EngineError(SynthorgError):
    """Base of Docker engine and Compose failures."""

    slug = "engine"


class EngineUnreachable(EngineError):
    """Raised when Docker is missing or its daemon does not respond."""

    exit_code = ExitCode.UNREACHABLE
    slug = "engine_unreachable"


class ComposeMissing(EngineError):
    """Raised when neither Compose v2 nor docker-compose is installed."""

    slug = "compose_missing"


class ComposeTooOld(EngineError):
    """Raised when only a Compose release older than the minimum is installed."""

    slug = "compose_too_old"


class ComposeFailed(EngineError):
    """Raised when a Compose command exits non-zero."""

    slug = "compose_failed"


class PortInUse(SynthorgError):
    """Raised when a published host port is held by another program."""

    slug = "port_in_use"


class VerificationError(SynthorgError):
    """Raised when an image signature, attestation or log entry fails a check."""

    slug = "verification_failed"


class TransportError(VerificationError):
    """Raised when a registry or log could not be reached during verification."""

    slug = "verification_transport"

    def __init__(
        self,
        message: str,
        *,
        hints: Sequence[str] = (),
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message, hints=[*hints, AIR_GAPPED_HINT], exit_code=exit_code)


class PullError(SynthorgError):
    """Raised when one or more images could not be pulled."""

    slug = "pull_failed"


class HealthError(SynthorgError):
    """Base of failed readiness waits."""

    slug = "health"


class Unhealthy(HealthError):
    """Raised when the stack responds but is not ready, or a container crash-loops."""

    exit_code = ExitCode.CRITICAL
    slug = "unhealthy"


class Unreachable(HealthError):
    """Raised when the backend never responded within the budget."""

    exit_code = ExitCode.UNREACHABLE
    slug = "unreachable"


class PersistenceError(SynthorgError):
    """Base of database wiring and migration failures."""

    slug = "persistence"


class PersistenceConfigError(PersistenceError, ValueError):
    """Raised when the database settings in the environment are missing or malformed.

    The message never contains a password: URLs appear as ``scheme://****@host``.
    """

    exit_code = ExitCode.USAGE
    slug = "persistence_config"


class MigrationError(PersistenceError):
    """Raised when a migration fails to apply or its source cannot be read."""

    slug = "migration_failed"


class MigrationLockTimeout(MigrationError):
    """Raised when another process holds the migration lock for too long."""

    slug = "migration_lock_timeout"


class DatabaseUnreachable(PersistenceError):
    """Raised when the database server does not accept a connection."""

    exit_code = ExitCode.UNREACHABLE
    slug = "database_unreachable"


class UpdateAvailable(SynthorgError):
    """Raised by ``update --check`` to exit 10 when an update is available."""

    exit_code = ExitCode.UPDATE_AVAILABLE
    slug = "update_available"


class Interrupted(SynthorgError):
    """Raised when SIGINT or SIGTERM stops a command after its cleanup ran."""

    exit_code = ExitCode.INTERRUPTED
    slug = "interrupted"
