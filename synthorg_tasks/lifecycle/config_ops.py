"""The ``config`` collection: read views and safe changes of ``config.json``.

Views (``get``, ``list``, ``show``) use the tolerant loader and take no lock.
Every change (``set``, ``unset``, ``edit``, ``import``) follows one path:

1. parse the requested values by their grammar, before anything is locked;
2. take the lifecycle lock and reload the file strictly, so a concurrent
   writer's change is never lost;
3. apply the change and validate the whole result, collision matrix included;
4. clear the image-digest cache when the change selects other images;
5. when the change alters compose.yml and compose.yml exists, render and
   write it (nats.conf first);
6. save config.json atomically.

Nothing is written unless every earlier step succeeded. Secrets are shown
as ``****`` in every view.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthorg_tasks import grammars
from synthorg_tasks.errors import (
    ConfigInvalid,
    NotInitialized,
    SynthorgError,
    UsageError,
)
from synthorg_tasks.logging import get_logger
from synthorg_tasks.options import (
    CACHE_INVALIDATING,
    CONDITIONS,
    SETTINGS,
    Setting,
    is_secret_name,
    parse_value,
    setting,
)
from synthorg_tasks.output import env_flag
from synthorg_tasks.state.config import (
    DEFAULT_PORTS,
    ENUM_DEFAULTS,
    Config,
    LoadResult,
    config_path,
    load_reinit,
    load_strict,
    load_tolerant,
    save_config,
    validate_config,
)
from synthorg_tasks.state.lock import LifecycleLock
from synthorg_tasks.state.paths import COMPOSE_FILE
from synthorg_tasks.state.secrets import MASK
from synthorg_tasks.verify.pins import Pins, load_pins

__all__ = [
    "ChangeResult",
    "ReplaceResult",
    "ValueView",
    "applies",
    "compose_changed_keys",
    "editor_argv",
    "format_value",
    "lock_timeout_for",
    "parse_assignments",
    "parse_candidate",
    "replace_config",
    "require_initialized",
    "require_settable",
    "run_edit",
    "run_import",
    "run_set",
    "run_unset",
    "view_all",
    "view_one",
    "write_change",
]

_logger = get_logger("config")

NOT_SET = "(not set)"
NOT_APPLICABLE = "(not applicable)"


# ---------------------------------------------------------------------------
# Views


@dataclass(frozen=True)
class ValueView:
    """One key as ``config get`` and ``config list`` show it.

    ``value`` is JSON-ready and already masked; ``source`` is ``env``,
    ``config``, ``default`` or ``unknown`` (a stored key this toolkit does not
    know).
    """

    key: str
    value: Any
    source: str
    applicable: bool = True

    @property
    def text(self) -> str:
        """The value as one line of text, the form ``config get`` prints."""
        if not self.applicable:
            return NOT_APPLICABLE
        return format_value(self.value)

    def document(self) -> dict[str, Any]:
        """Return the ``{"key", "value", "source"}`` JSON object."""
        return {"key": self.key, "value": self.value, "source": self.source}


def format_value(value: Any) -> str:
    """Return a config value as text: booleans lowercase, objects as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def applies(spec: Setting, config: Config) -> bool:
    """Return whether the topology of ``config`` uses the key of ``spec``."""
    if spec.condition == "postgres":
        return config.uses_postgres
    if spec.condition == "nats":
        return config.uses_nats
    return True


def _env_value(spec: Setting, environ: Mapping[str, str]) -> Any:
    """Return the value of the runtime env twin, or ``None`` when it is unset."""
    if spec.env is None:
        return None
    if spec.kind == "bool":
        # A boolean twin only switches on; any other word is ignored.
        return True if env_flag(spec.env, environ) else None
    text = environ.get(spec.env, "").strip()
    return text or None


def _pinned_default(key: str, pins: Pins) -> str:
    from synthorg_tasks.render.params import pinned_values

    if key == "image_tag":
        return pins.synthorg.default_image_tag
    return pinned_values(pins)[key]


def _stored_value(spec: Setting, config: Config, pins: Pins) -> Any:
    """Return the value ``config`` holds for ``spec`` (defaults filled in)."""
    if spec.tunable:
        return config.tunables.get(spec.key, spec.default)
    if spec.key == "data_dir":
        return str(config.data_dir)
    if spec.key == "verified_digests":
        return dict(sorted(config.verified_digests.items()))
    value = getattr(config, spec.key)
    if value is None and spec.key in CACHE_INVALIDATING:
        return _pinned_default(spec.key, pins)
    return value


def _view(
    spec: Setting,
    loaded: LoadResult,
    document: Mapping[str, Any],
    pins: Pins,
    environ: Mapping[str, str],
) -> ValueView:
    config = loaded.config
    if not applies(spec, config):
        return ValueView(spec.key, None, "default", applicable=False)
    invalid = {finding.key for finding in loaded.findings}
    from_env = _env_value(spec, environ)
    if from_env is not None:
        return ValueView(spec.key, MASK if spec.secret else from_env, "env")
    stored = spec.key in document and spec.key not in invalid
    source = "config" if stored else "default"
    if spec.secret:
        secret = getattr(config, spec.key)
        return ValueView(spec.key, MASK if secret else NOT_SET, source)
    return ValueView(spec.key, _stored_value(spec, config, pins), source)


def _load_views(
    data_dir: Path, pins: Pins | None, environ: Mapping[str, str] | None
) -> tuple[LoadResult, dict[str, Any], Pins, Mapping[str, str]]:
    loaded = load_tolerant(data_dir)
    document = load_reinit(data_dir) or {}
    return (
        loaded,
        document,
        pins or load_pins(),
        os.environ if environ is None else environ,
    )


def view_one(
    data_dir: Path,
    key: str,
    *,
    pins: Pins | None = None,
    environ: Mapping[str, str] | None = None,
) -> ValueView:
    """Return the effective value of one gettable key; unknown keys exit 2."""
    spec = setting(key)
    if spec is None or not spec.gettable:
        raise _unknown_key(key)
    loaded, document, pins, env = _load_views(data_dir, pins, environ)
    return _view(spec, loaded, document, pins, env)


def view_all(
    data_dir: Path,
    *,
    pins: Pins | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[list[ValueView], LoadResult]:
    """Return every gettable key, then every unknown stored key, with sources."""
    loaded, document, pins, env = _load_views(data_dir, pins, environ)
    views = [
        _view(spec, loaded, document, pins, env) for spec in SETTINGS if spec.gettable
    ]
    for key, value in loaded.config.extra.items():
        shown = MASK if is_secret_name(key) else value
        views.append(ValueView(key, shown, "unknown"))
    return views, loaded


def _unknown_key(key: str) -> UsageError:
    return UsageError(
        f"unknown config key {key!r}",
        hints=["list the keys with: synthorg config list"],
    )


# ---------------------------------------------------------------------------
# Parsing requested changes


def parse_assignments(
    assignments: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    """Parse ``(key, text)`` pairs by each key's grammar; any bad pair exits 2.

    A key given twice with different values is rejected, so the result never
    depends on the order of ``--pair`` flags.
    """
    if not assignments:
        raise UsageError(
            "no key given",
            hints=["synthorg config set KEY VALUE, or --pair KEY=VALUE (repeatable)"],
        )
    parsed: dict[str, Any] = {}
    for key, text in assignments:
        spec = require_settable(key)
        try:
            value = parse_value(spec, text)
        except ValueError as exc:
            raise UsageError(
                f"{key}: {text!r} is invalid ({exc})",
                hints=[f"{spec.key}: {spec.help}"],
            ) from None
        if key in parsed and parsed[key] != value:
            raise UsageError(f"{key} is given twice with different values")
        parsed[key] = value
    return parsed


def require_settable(key: str) -> Setting:
    """Return the declaration of a settable key; unknown or read-only keys exit 2."""
    spec = setting(key)
    if spec is None:
        raise _unknown_key(key)
    if not spec.settable:
        raise UsageError(
            f"{key} cannot be changed with config set",
            hints=["it is set by 'synthorg init'; re-run init to change it"]
            if spec.key in {"persistence_backend", "bus_backend", "project_name"}
            else [],
        )
    return spec


def _check_conditions(config: Config, keys: Sequence[str]) -> None:
    for key in keys:
        spec = setting(key)
        if spec is not None and spec.condition and not applies(spec, config):
            raise UsageError(f"{key} only applies when {CONDITIONS[spec.condition]}")


# ---------------------------------------------------------------------------
# Applying and writing a change


@dataclass
class ChangeResult:
    """Outcome of one config change."""

    config: Config
    changes: list[tuple[str, str]] = field(default_factory=list)
    compose_regenerated: bool = False
    cache_cleared: bool = False
    warnings: list[str] = field(default_factory=list)


def _with_values(config: Config, values: Mapping[str, Any]) -> Config:
    tunables = dict(config.tunables)
    fields: dict[str, Any] = {}
    for key, value in values.items():
        spec = setting(key)
        if spec is not None and spec.tunable:
            if value is None:
                tunables.pop(key, None)
            else:
                tunables[key] = value
        else:
            fields[key] = value
    return config.replace(tunables=tunables, **fields)


def _default_for(spec: Setting, pins: Pins) -> Any:
    """Return the value that ``unset`` stores for ``spec``."""
    if spec.tunable or spec.key in CACHE_INVALIDATING - {"image_tag"}:
        return None
    if spec.key == "image_tag":
        return pins.synthorg.default_image_tag
    if spec.key in DEFAULT_PORTS:
        return DEFAULT_PORTS[spec.key]
    if spec.key in ENUM_DEFAULTS:
        return ENUM_DEFAULTS[spec.key]
    if spec.kind == "bool":
        return False
    return spec.default


def compose_changed_keys(old: Config, new: Config) -> list[str]:
    """Return the compose-affecting keys whose value differs between two configs."""
    changed = []
    for spec in SETTINGS:
        if spec.compose_affecting and getattr(old, spec.key) != getattr(new, spec.key):
            changed.append(spec.key)
    return changed


def _cache_keys_changed(old: Config, new: Config) -> bool:
    return any(getattr(old, key) != getattr(new, key) for key in CACHE_INVALIDATING)


def _invalid_change(exc: ConfigInvalid) -> UsageError:
    detail = exc.message.removeprefix("config: ")
    return UsageError(
        f"the change would make the configuration invalid: {detail}",
        hints=exc.hints,
    )


def write_change(
    old: Config,
    new: Config,
    lock: LifecycleLock,
    pins: Pins,
    *,
    invalidate: bool,
) -> ChangeResult:
    """Validate ``new``, write compose files when they change, save config.json.

    ``invalidate`` clears ``verified_digests`` and ``verified_image_tag``.
    Raises :class:`ConfigInvalid` before anything is written when ``new`` is
    not a valid configuration.
    """
    from synthorg_tasks.render.writer import render_files, write_rendered

    if invalidate:
        new = new.replace(verified_digests={}, verified_image_tag=None)
    validate_config(new)
    compose_path = new.data_dir / COMPOSE_FILE
    regenerate = False
    files = None
    if compose_path.exists() and (
        compose_changed_keys(old, new)
        or invalidate
        or old.bus_backend != new.bus_backend
    ):
        files = render_files(new, pins)
        try:
            regenerate = compose_path.read_bytes() != files.compose.encode("utf-8")
        except OSError:
            regenerate = True
        nats_path = new.data_dir / "nats.conf"
        if files.nats_conf is not None and not regenerate:
            try:
                regenerate = nats_path.read_bytes() != files.nats_conf.encode("utf-8")
            except OSError:
                regenerate = True
    else:
        # Rendering validates overrides more deeply than the model does.
        render_files(new, pins)
    if regenerate and files is not None:
        write_rendered(new.data_dir, files, lock)
    save_config(new, lock)
    return ChangeResult(new, compose_regenerated=regenerate, cache_cleared=invalidate)


def require_initialized(data_dir: Path) -> None:
    """Raise :class:`NotInitialized` when ``data_dir`` has no config.json."""
    path = config_path(data_dir)
    if not (path.exists() or path.is_symlink()):
        raise NotInitialized(
            f"not initialized: no configuration in {data_dir}; "
            "run 'synthorg init' first",
            hints=["synthorg init"],
        )


def lock_timeout_for(data_dir: Path, environ: Mapping[str, str] | None = None) -> float:
    """Return ``lock_timeout`` in seconds: env twin → stored value → 5s.

    The file is read without the lock and without coercion, so an invalid
    stored value falls back to the default here and is reported by the
    strict load that follows.
    """
    env = os.environ if environ is None else environ
    candidates = [env.get("SYNTHORG_LOCK_TIMEOUT", "").strip()]
    try:
        document = load_reinit(data_dir) or {}
    except SynthorgError:  # the strict load inside the lock reports it
        document = {}
    stored = document.get("lock_timeout")
    if isinstance(stored, str):
        candidates.append(stored)
    for text in candidates:
        if not text:
            continue
        try:
            return grammars.parse_duration(text)
        except ValueError:
            continue
    return 5.0


def _bind_warning(config: Config, keys: Sequence[str]) -> list[str]:
    from synthorg_tasks.lifecycle.init import bind_address_warning

    if "bind_address" not in keys:
        return []
    warning = bind_address_warning(config.bind_address)
    return [warning] if warning else []


def run_set(
    data_dir: Path,
    assignments: Sequence[tuple[str, str]],
    *,
    pins: Pins | None = None,
    environ: Mapping[str, str] | None = None,
) -> ChangeResult:
    """Apply every assignment or none of them (``config set``)."""
    values = parse_assignments(assignments)
    require_initialized(data_dir)
    pins = pins or load_pins()
    with LifecycleLock(data_dir, timeout=lock_timeout_for(data_dir, environ)) as lock:
        # NOTE: the strict load coerces an unknown bus_backend, channel or
        # log_level to its default, and this save then stores that default.
        old = load_strict(data_dir)
        _check_conditions(old, list(values))
        new = _with_values(old, values)
        try:
            result = write_change(
                old,
                new,
                lock,
                pins,
                invalidate=bool(set(values) & CACHE_INVALIDATING),
            )
        except ConfigInvalid as exc:
            raise _invalid_change(exc) from exc
    result.changes = [(key, format_value(value)) for key, value in values.items()]
    result.warnings = _bind_warning(result.config, list(values))
    _logger.info("config set %s", ", ".join(values))
    return result


def run_unset(
    data_dir: Path,
    key: str,
    *,
    pins: Pins | None = None,
    environ: Mapping[str, str] | None = None,
) -> ChangeResult:
    """Restore the default of one settable key (``config unset``)."""
    spec = require_settable(key)
    require_initialized(data_dir)
    pins = pins or load_pins()
    with LifecycleLock(data_dir, timeout=lock_timeout_for(data_dir, environ)) as lock:
        old = load_strict(data_dir)
        _check_conditions(old, [key])
        default = _default_for(spec, pins)
        new = _with_values(old, {key: default})
        try:
            result = write_change(
                old, new, lock, pins, invalidate=key in CACHE_INVALIDATING
            )
        except ConfigInvalid as exc:
            raise _invalid_change(exc) from exc
    shown = _stored_value(spec, result.config, pins)
    result.changes = [(key, format_value(shown))]
    result.warnings = _bind_warning(result.config, [key])
    _logger.info("config unset %s", key)
    return result


# ---------------------------------------------------------------------------
# Whole-file changes: edit and import


@dataclass
class ReplaceResult:
    """Outcome of one ``config edit`` or ``config import`` run."""

    changed: bool
    compose_regenerated: bool = False
    cache_cleared: bool = False
    warnings: list[str] = field(default_factory=list)


# Keys that init manages; a whole-file change of them can orphan the data
# volumes of the old project or lock PostgreSQL out.
_INIT_MANAGED = ("persistence_backend", "bus_backend", "project_name")


def _key_position(text: str, key: str) -> str:
    needle = json.dumps(key)
    offset = text.find(needle)
    if offset < 0:
        return ""
    from synthorg_tasks.state.config import line_column

    line, column = line_column(text, offset)
    return f" (line {line}, column {column})"


def _finding_key(message: str) -> str:
    detail = message.removeprefix("config: ")
    return detail.split(":", 1)[0].split("[", 1)[0]


def parse_candidate(data: bytes, data_dir: Path, pins: Pins, label: str) -> Config:
    """Strictly parse a whole candidate config.json; raise with the position.

    Validation runs without coercion, so an unknown enum value is an error
    rather than a silent replacement. ``label`` names the file in messages.
    """
    from synthorg_tasks.errors import ConfigMalformed
    from synthorg_tasks.render.writer import render_files
    from synthorg_tasks.state.config import document_loader

    try:
        candidate = document_loader(data_dir)(data)
        render_files(candidate, pins)
    except ConfigMalformed as exc:
        raise ConfigMalformed(
            exc.message.replace(str(config_path(data_dir)), label, 1),
            hints=exc.hints,
        ) from exc
    except ConfigInvalid as exc:
        text = data.decode("utf-8", errors="replace")
        position = _key_position(text, _finding_key(exc.message))
        raise ConfigInvalid(
            f"{label} is invalid{position}: {exc.message.removeprefix('config: ')}",
            hints=exc.hints,
        ) from exc
    return candidate


def replace_config(
    data_dir: Path,
    candidate: Config,
    expected: bytes,
    lock: LifecycleLock,
    pins: Pins,
    *,
    changed_elsewhere: str,
) -> ReplaceResult:
    """Swap ``candidate`` in when config.json still contains the ``expected`` bytes.

    ``changed_elsewhere`` is the message raised (exit 1) when another writer
    changed config.json since ``expected`` was read.
    """
    from synthorg_tasks.errors import ConfigError

    current = config_path(data_dir).read_bytes()
    if current != expected:
        raise ConfigError(changed_elsewhere)
    old = load_strict(data_dir)
    # The PostgreSQL volume keeps the password it was created with, so a new
    # password in config.json alone would lock the backend out.
    if (
        old.uses_postgres
        and candidate.uses_postgres
        and old.postgres_password != candidate.postgres_password
    ):
        raise ConfigInvalid(
            "postgres_password cannot be changed by editing or importing "
            "config.json: the PostgreSQL volume keeps the password it was created "
            "with; nothing was changed",
            hints=[
                "keep the stored postgres_password, or re-create the volume "
                "(synthorg stop --volumes) and run 'synthorg init'"
            ],
        )
    invalidate = _cache_keys_changed(old, candidate)
    result = write_change(old, candidate, lock, pins, invalidate=invalidate)
    warnings = [
        f"{key} changes from {getattr(old, key)} to {getattr(candidate, key)}; "
        "data in the volumes of the old setting is not carried over"
        for key in _INIT_MANAGED
        if getattr(old, key) != getattr(candidate, key)
    ]
    warnings += _bind_warning(
        candidate,
        ["bind_address"] if old.bind_address != candidate.bind_address else [],
    )
    return ReplaceResult(
        changed=old != result.config,
        compose_regenerated=result.compose_regenerated,
        cache_cleared=result.cache_cleared,
        warnings=warnings,
    )


def editor_argv(environ: Mapping[str, str]) -> list[str]:
    """Return the editor command: ``$VISUAL``, else ``$EDITOR``, else ``vi``.

    The value may carry arguments (``code --wait``) and is split like a shell
    word list, without running a shell.
    """
    import shlex

    for name in ("VISUAL", "EDITOR"):
        value = environ.get(name, "").strip()
        if value:
            try:
                argv = shlex.split(value)
            except ValueError as exc:
                raise UsageError(f"${name} {value!r} cannot be split: {exc}") from None
            if argv:
                return argv
    return ["vi"]


def _edit_copy(data_dir: Path, data: bytes) -> Path:
    import secrets

    path = data_dir / f"config.json.edit-{secrets.token_hex(4)}.json"
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def _run_editor(argv: list[str], path: Path) -> int:
    import subprocess

    try:
        completed = subprocess.run([*argv, str(path)], check=False)
    except OSError as exc:
        raise UsageError(
            f"cannot run the editor {argv[0]!r}: {exc.strerror or exc}",
            hints=["set VISUAL or EDITOR to an installed editor"],
        ) from exc
    return completed.returncode


def run_edit(
    data_dir: Path,
    *,
    pins: Pins | None = None,
    environ: Mapping[str, str] | None = None,
) -> ReplaceResult:
    """Edit a private copy of config.json, validate it, and swap it in."""
    from synthorg_tasks.errors import ConfigError

    env = os.environ if environ is None else environ
    require_initialized(data_dir)
    pins = pins or load_pins()
    load_strict(data_dir)
    original = config_path(data_dir).read_bytes()
    argv = editor_argv(env)
    copy = _edit_copy(data_dir, original)
    keep = f"your edit is in {copy}"
    status = _run_editor(argv, copy)
    if status != 0:
        raise ConfigError(
            f"the editor exited with status {status}; config.json was left "
            f"untouched and {keep}"
        )
    edited = copy.read_bytes()
    if edited == original:
        copy.unlink()
        return ReplaceResult(changed=False)
    try:
        candidate = parse_candidate(edited, data_dir, pins, str(copy))
    except ConfigError as exc:
        raise ConfigError(
            f"{exc.message}; config.json was left untouched and {keep}",
            hints=[f"fix it and run: synthorg config import {copy}"],
        ) from exc
    with LifecycleLock(data_dir, timeout=lock_timeout_for(data_dir, env)) as lock:
        result = replace_config(
            data_dir,
            candidate,
            original,
            lock,
            pins,
            changed_elsewhere=f"config.json changed while editing; {keep}",
        )
    copy.unlink()
    return result


def run_import(
    data_dir: Path,
    source: Path,
    *,
    pins: Pins | None = None,
    environ: Mapping[str, str] | None = None,
) -> ReplaceResult:
    """Validate a whole config.json from ``source`` and swap it in."""
    from synthorg_tasks.errors import ConfigError

    require_initialized(data_dir)
    pins = pins or load_pins()
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {source}: {exc.strerror or exc}",
            hints=["check the path and its permissions"],
        ) from exc
    candidate = parse_candidate(data, data_dir, pins, str(source))
    with LifecycleLock(data_dir, timeout=lock_timeout_for(data_dir, environ)) as lock:
        current = config_path(data_dir).read_bytes()
        return replace_config(
            data_dir,
            candidate,
            current,
            lock,
            pins,
            changed_elsewhere="config.json changed while importing",
        )
