"""Persistence wiring for the SynthOrg backend, and its migrations.

The backend calls :func:`resolve_persistence` at startup, so a malformed
database URL fails loudly there, then :func:`apply_migrations`. Nothing here
imports a database driver or yoyo until a function needs it.
"""

from __future__ import annotations

from synthorg_tasks.errors import (
    MigrationError,
    MigrationLockTimeout,
    PersistenceConfigError,
)
from synthorg_tasks.persistence.migrations import (
    MigrationStatusRow,
    apply_migrations,
    migration_status,
    pending_migrations,
)
from synthorg_tasks.persistence.wiring import PersistenceConfig, resolve_persistence

__all__ = [
    "MigrationError",
    "MigrationLockTimeout",
    "MigrationStatusRow",
    "PersistenceConfig",
    "PersistenceConfigError",
    "apply_migrations",
    "migration_status",
    "pending_migrations",
    "resolve_persistence",
]
