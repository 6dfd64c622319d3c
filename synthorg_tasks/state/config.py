"""The ``config.json`` model: defaults, loaders, coercion, validation, serialisation.

A config is a frozen :class:`Config`, and four loaders read the file. Each
treats an unparseable file as a hard error that names the file and the
position and leaves it untouched. So no loader mistakes a truncated file for
a missing one and regenerates the secrets it contained.

| loader   | coercion | validation            | missing file        |
| -------- | -------- | --------------------- | ------------------- |
| strict   | yes      | full, raises          | NotInitialized      |
| tolerant | yes      | findings, defaults    | defaults            |
| reinit   | no       | none                  | None                |
| teardown | yes      | data_dir, project     | NotInitialized      |
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthorg_tasks import grammars
from synthorg_tasks.errors import (
    ConfigError,
    ConfigInvalid,
    ConfigMalformed,
    ConfigTooNew,
    NotInitialized,
)
from synthorg_tasks.logging import get_logger
from synthorg_tasks.options import OVERRIDE_KEYS
from synthorg_tasks.state.atomic import atomic_write
from synthorg_tasks.state.lock import LifecycleLock
from synthorg_tasks.state.paths import CONFIG_FILE
from synthorg_tasks.state.secrets import MASK, mask, register_secret

__all__ = [
    "COERCIBLE_ENUMS",
    "DEFAULT_PORTS",
    "ENUMS",
    "KEY_ORDER",
    "NON_COERCIBLE_ENUMS",
    "SCHEMA_VERSION",
    "TUNABLES",
    "Config",
    "Finding",
    "LoadResult",
    "Tunable",
    "config_path",
    "line_column",
    "load_reinit",
    "load_strict",
    "load_teardown",
    "load_tolerant",
    "parse_config_bytes",
    "read_config_bytes",
    "save_config",
    "serialise_config",
    "validate_config",
]

_logger = get_logger("state")

SCHEMA_VERSION = 1

DEFAULT_PORTS = {
    "web_port": 3000,
    "backend_port": 3001,
    "postgres_port": 3002,
    "nats_client_port": 3003,
}

ENUMS: dict[str, tuple[str, ...]] = {
    "persistence_backend": ("sqlite", "postgres"),
    "memory_backend": ("sqlvector", "composite", "inmemory"),
    "bus_backend": ("internal", "nats"),
    "channel": ("stable", "dev"),
    "log_level": ("debug", "info", "warn", "error"),
}
# An unknown persistence or memory backend would point the backend at an empty
# store if replaced silently, so only these three are coerced to their default.
COERCIBLE_ENUMS = ("bus_backend", "channel", "log_level")
NON_COERCIBLE_ENUMS = ("persistence_backend", "memory_backend")
ENUM_DEFAULTS = {
    "persistence_backend": "sqlite",
    "memory_backend": "sqlvector",
    "bus_backend": "internal",
    "channel": "stable",
    "log_level": "info",
}

BOOL_KEYS = ("auto_pull", "auto_restart", "auto_apply_compose")
PASSWORD_MIN, PASSWORD_MAX = 32, 1024


@dataclass(frozen=True)
class Tunable:
    """A runtime setting resolved as env twin → config.json → default."""

    key: str
    env: str
    default: str
    kind: str  # "duration", "attempts" or "bytes"
    minimum_seconds: float = 0.0


TUNABLES: tuple[Tunable, ...] = (
    Tunable("health_check_timeout", "SYNTHORG_HEALTH_CHECK_TIMEOUT", "5s", "duration"),
    Tunable("health_wait_timeout", "SYNTHORG_HEALTH_WAIT_TIMEOUT", "90s", "duration"),
    Tunable("health_poll_interval", "SYNTHORG_HEALTH_POLL_INTERVAL", "2s", "duration"),
    Tunable("health_initial_delay", "SYNTHORG_HEALTH_INITIAL_DELAY", "5s", "duration"),
    Tunable(
        "image_verify_timeout",
        "SYNTHORG_IMAGE_VERIFY_TIMEOUT",
        "120s",
        "duration",
        minimum_seconds=1.0,
    ),
    Tunable("dhi_verify_timeout", "SYNTHORG_DHI_VERIFY_TIMEOUT", "120s", "duration"),
    Tunable(
        "attestation_http_timeout",
        "SYNTHORG_ATTESTATION_HTTP_TIMEOUT",
        "30s",
        "duration",
    ),
    Tunable("tuf_fetch_timeout", "SYNTHORG_TUF_FETCH_TIMEOUT", "30s", "duration"),
    Tunable("image_pull_attempts", "SYNTHORG_IMAGE_PULL_ATTEMPTS", "3", "attempts"),
    Tunable(
        "image_pull_retry_delay", "SYNTHORG_IMAGE_PULL_RETRY_DELAY", "2s", "duration"
    ),
    Tunable(
        "status_docker_timeout", "SYNTHORG_STATUS_DOCKER_TIMEOUT", "15s", "duration"
    ),
    Tunable(
        "diagnostics_dial_timeout",
        "SYNTHORG_DIAGNOSTICS_DIAL_TIMEOUT",
        "1s",
        "duration",
    ),
    Tunable(
        "max_api_response_bytes", "SYNTHORG_MAX_API_RESPONSE_BYTES", "4MiB", "bytes"
    ),
    Tunable("lock_timeout", "SYNTHORG_LOCK_TIMEOUT", "5s", "duration"),
)
TUNABLE_KEYS = tuple(t.key for t in TUNABLES)

KEY_ORDER: tuple[str, ...] = (
    "schema_version",
    "data_dir",
    "project_name",
    "image_tag",
    "channel",
    "log_level",
    "persistence_backend",
    "memory_backend",
    "bus_backend",
    "backend_port",
    "web_port",
    "bind_address",
    "postgres_port",
    "postgres_password",
    "nats_client_port",
    "verified_digests",
    "verified_image_tag",
    *BOOL_KEYS,
    *OVERRIDE_KEYS,
    "nats_max_payload",
    "nats_max_pending",
    *TUNABLE_KEYS,
)
_KNOWN_KEYS = frozenset(KEY_ORDER)


@dataclass(frozen=True)
class Config:
    """One install's settings, as stored in ``config.json``.

    ``None`` for an override means the pins' value is used. ``tunables`` contains
    only the tunables stored in the file. ``extra`` contains unknown keys in
    their stored order, preserved on every save and never rendered.
    """

    data_dir: Path
    project_name: str
    image_tag: str
    schema_version: int = SCHEMA_VERSION
    channel: str = "stable"
    log_level: str = "info"
    persistence_backend: str = "sqlite"
    memory_backend: str = "sqlvector"
    bus_backend: str = "internal"
    backend_port: int = 3001
    web_port: int = 3000
    bind_address: str = "127.0.0.1"
    postgres_port: int | None = None
    postgres_password: str | None = field(default=None, repr=False)
    nats_client_port: int | None = None
    verified_digests: dict[str, str] = field(default_factory=dict)
    verified_image_tag: str | None = None
    auto_pull: bool = False
    auto_restart: bool = False
    auto_apply_compose: bool = False
    registry_host: str | None = None
    image_repo_prefix: str | None = None
    dhi_registry: str | None = None
    postgres_image_tag: str | None = None
    nats_image_tag: str | None = None
    data_init_image: str | None = None
    nats_max_payload: str = "16MB"
    nats_max_pending: str = "64MB"
    tunables: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_postgres(self) -> bool:
        """Whether persistence is PostgreSQL."""
        return self.persistence_backend == "postgres"

    @property
    def uses_nats(self) -> bool:
        """Whether the message bus is NATS."""
        return self.bus_backend == "nats"

    @property
    def config_path(self) -> Path:
        """The ``config.json`` of this install."""
        return self.data_dir / CONFIG_FILE

    def replace(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def ports(self) -> dict[str, int]:
        """Return the host ports of the enabled services, by config key."""
        ports = {"web_port": self.web_port, "backend_port": self.backend_port}
        if self.uses_postgres and self.postgres_port is not None:
            ports["postgres_port"] = self.postgres_port
        if self.uses_nats and self.nats_client_port is not None:
            ports["nats_client_port"] = self.nats_client_port
        return ports

    def tunable(self, key: str, environ: Mapping[str, str] | None = None) -> Any:
        """Return a tunable's effective raw value: env twin → config → default."""
        spec = _TUNABLE_BY_KEY[key]
        env = os.environ if environ is None else environ
        from_env = env.get(spec.env, "").strip()
        if from_env:
            return from_env
        return self.tunables.get(key, spec.default)

    def tunable_seconds(
        self, key: str, environ: Mapping[str, str] | None = None
    ) -> float:
        """Return a duration tunable in seconds, validated."""
        value = self.tunable(key, environ)
        try:
            return grammars.parse_duration(str(value))
        except ValueError as exc:
            spec = _TUNABLE_BY_KEY[key]
            env = os.environ if environ is None else environ
            if env.get(spec.env, "").strip():
                raise ConfigInvalid(
                    f"{spec.env}: {value!r} is invalid ({exc})",
                    hints=[f"fix or unset {spec.env}, e.g. {spec.env}={spec.default}"],
                ) from None
            raise ConfigInvalid(
                f"config: {key}: {value!r} is invalid ({exc})",
                hints=[f"fix it with: synthorg config set {key} {spec.default}"],
            ) from None


_TUNABLE_BY_KEY = {t.key: t for t in TUNABLES}


@dataclass(frozen=True)
class Finding:
    """One validation problem: the key, the message and the level."""

    key: str
    message: str
    level: str = "error"


@dataclass(frozen=True)
class LoadResult:
    """The tolerant loader's result: a usable config and the problems found in it."""

    config: Config
    initialized: bool
    findings: tuple[Finding, ...] = ()
    coerced: tuple[str, ...] = ()


def config_path(data_dir: Path) -> Path:
    """Return the ``config.json`` path of a data dir."""
    return data_dir / CONFIG_FILE


# ---------------------------------------------------------------------------
# Parsing


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def line_column(text: str, offset: int) -> tuple[int, int]:
    """Return the 1-based line and column of ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _malformed(path: Path, where: str, detail: str) -> ConfigMalformed:
    return ConfigMalformed(
        f"config file {path} is not valid JSON ({where}: {detail}); it was left "
        "untouched -- fix it or move it away and run 'synthorg init'",
    )


def parse_config_bytes(data: bytes, path: Path) -> dict[str, Any]:
    """Parse ``config.json`` bytes into a dict, or raise :class:`ConfigMalformed`.

    Empty files, invalid UTF-8, invalid JSON, duplicate keys and a top level
    that is not an object are all errors that name the position.
    """
    if not data.strip():
        raise _malformed(path, "byte offset 0", "the file is empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(path, f"byte offset {exc.start}", "invalid UTF-8") from None
    try:
        document = json.loads(text, object_pairs_hook=_reject_duplicates)
    except _DuplicateKey as exc:
        # json reports no position for a hook failure: find the second occurrence.
        needle = json.dumps(exc.key)
        first = text.find(needle)
        second = text.find(needle, first + 1)
        line, column = line_column(text, max(second, 0))
        raise _malformed(
            path, f"line {line}, column {column}", f"duplicate key {needle}"
        ) from None
    except json.JSONDecodeError as exc:
        raise _malformed(
            path, f"line {exc.lineno}, column {exc.colno}", exc.msg
        ) from None
    except RecursionError:
        raise _malformed(path, "line 1, column 1", "nested too deeply") from None
    except ValueError as exc:
        # Python refuses integers of more than 4300 digits.
        raise _malformed(path, "a number", str(exc)) from None
    if not isinstance(document, dict):
        raise _malformed(path, "line 1, column 1", "the top level is not an object")
    return document


def read_config_bytes(path: Path) -> bytes | None:
    """Return the bytes of ``config.json``, or ``None`` when it does not exist.

    Only a regular file is read: a symlink is rejected, and a FIFO or device
    is rejected before it could block the read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if path.is_symlink():
            raise ConfigError(
                f"{path} is a symbolic link; refusing to read it",
                hints=["replace the link with the regular file it points to"],
            ) from None
        raise ConfigError(
            f"cannot read {path}: {exc.strerror}", hints=["check file permissions"]
        ) from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"{path} is not a regular file; refusing to read it",
                hints=["move it away and run 'synthorg init'"],
            )
        try:
            data = handle.read()
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror}", hints=["check file permissions"]
            ) from exc
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        _logger.warning(
            "%s is readable by group or others (mode %04o) and contains secrets",
            path,
            mode,
        )
    return data


def _read_document(path: Path) -> dict[str, Any] | None:
    """Return the parsed file, or ``None`` when it does not exist."""
    data = read_config_bytes(path)
    if data is None:
        return None
    return parse_config_bytes(data, path)


# ---------------------------------------------------------------------------
# Building a Config from a document


class _Builder:
    """Turns a raw document into a Config, collecting findings in rule order."""

    def __init__(self, data_dir: Path, *, strict: bool, coerce: bool) -> None:
        self.data_dir = data_dir
        self.strict = strict
        self.coerce = coerce
        self.findings: list[Finding] = []
        self.coerced: list[str] = []

    def problem(self, key: str, value: object, rule: str) -> None:
        shown = MASK if key == "postgres_password" else mask(repr(value))
        finding = Finding(key, f"{key}: {shown} is invalid ({rule})")
        if self.strict:
            raise ConfigInvalid(f"config: {finding.message}")
        self.findings.append(finding)

    def typed(self, doc: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
        if key not in doc:
            return default
        value = doc[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            self.problem(key, value, f"expected a JSON {_JSON_TYPE_NAMES[kind]}")
            return default
        return value


_JSON_TYPE_NAMES = {int: "integer", str: "string", bool: "boolean", dict: "object"}


def _coerce_enum(builder: _Builder, key: str, value: str) -> str:
    allowed = ENUMS[key]
    if value in allowed:
        return value
    if key in COERCIBLE_ENUMS and builder.coerce:
        default = ENUM_DEFAULTS[key]
        shown = value if len(value) <= 64 else value[:64] + "..."
        line = (
            f'{key}: unknown value "{shown}" replaced by "{default}" for this run '
            f"(allowed: {', '.join(allowed)})"
        )
        # Coercions are unsuppressible: they change what this run does.
        print(mask(line), file=sys.stderr)
        builder.coerced.append(key)
        return default
    builder.problem(key, value, f"allowed: {', '.join(allowed)}")
    return ENUM_DEFAULTS[key]


def _build(
    doc: Mapping[str, Any],
    data_dir: Path,
    *,
    strict: bool,
    coerce: bool,
    default_tag: str,
) -> tuple[Config, list[Finding], list[str]]:
    b = _Builder(data_dir, strict=strict, coerce=coerce)

    # 1. schema_version.
    version = b.typed(doc, "schema_version", int, 0)
    if version > SCHEMA_VERSION:
        raise ConfigTooNew(
            f"config.json schema_version {version} is newer than this toolkit "
            f"supports ({SCHEMA_VERSION})",
            hints=["upgrade synthorg-tasks"],
        )
    if version < 0:
        b.problem("schema_version", version, "0 or 1")

    # The password is registered before anything can echo a stored value, so
    # a password pasted into another field is masked in every message.
    stored_password = doc.get("postgres_password")
    if isinstance(stored_password, str):
        register_secret(stored_password)

    # 2. Types of every known key.
    values: dict[str, Any] = {}
    for key in ("project_name", "image_tag", "bind_address", "postgres_password"):
        values[key] = b.typed(doc, key, str, None)
    for key in ENUMS:
        values[key] = b.typed(doc, key, str, ENUM_DEFAULTS[key])
    for key in DEFAULT_PORTS:
        values[key] = b.typed(doc, key, int, None)
    for key in BOOL_KEYS:
        values[key] = b.typed(doc, key, bool, False)
    for key in OVERRIDE_KEYS:
        values[key] = b.typed(doc, key, str, None)
    for key in ("nats_max_payload", "nats_max_pending", "verified_image_tag"):
        values[key] = b.typed(doc, key, str, None)
    digests = b.typed(doc, "verified_digests", dict, {})
    tunables: dict[str, Any] = {}
    for spec in TUNABLES:
        if spec.key in doc:
            raw = doc[spec.key]
            allowed_types: tuple[type, ...] = (str,)
            if spec.kind == "bytes":
                allowed_types = (str, int)
            if isinstance(raw, bool) or not isinstance(raw, allowed_types):
                b.problem(spec.key, raw, "expected a JSON string")
            else:
                tunables[spec.key] = raw

    # 3. Ports.
    for key in DEFAULT_PORTS:
        if values[key] is not None:
            try:
                grammars.parse_port(values[key])
            except ValueError as exc:
                b.problem(key, values[key], str(exc))
                values[key] = None

    # 4. bind_address.
    if values["bind_address"] is not None:
        try:
            values["bind_address"] = grammars.parse_bind_address(values["bind_address"])
        except ValueError as exc:
            b.problem("bind_address", values["bind_address"], str(exc))
            values["bind_address"] = None

    # 5. project_name (absent: derived from the data dir, as the reference did).
    project = values["project_name"]
    if project is None:
        project = grammars.derive_project_name(data_dir.name)
    elif not _valid_project_name(project):
        b.problem("project_name", project, "^[a-z0-9][a-z0-9_-]*$, at most 63")
        project = grammars.derive_project_name(data_dir.name)

    # 6. Enums: required ones first, then the coercible ones.
    for key in (*NON_COERCIBLE_ENUMS, *COERCIBLE_ENUMS):
        values[key] = _coerce_enum(b, key, values[key])

    # 7. Image tags and references.
    for key in ("image_tag", "postgres_image_tag", "nats_image_tag"):
        value = values[key]
        if value is not None and not grammars.TAG_RE.fullmatch(value):
            b.problem(key, value, "an image tag: ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
            values[key] = None
    if values["data_init_image"] is not None and not grammars.IMAGE_REF_RE.fullmatch(
        values["data_init_image"]
    ):
        b.problem("data_init_image", values["data_init_image"], "an image reference")
        values["data_init_image"] = None

    # 8. Registry host, repository prefix, DHI registry.
    for key in ("registry_host", "dhi_registry"):
        value = values[key]
        if value is not None and not _valid_registry(value):
            b.problem(key, value, "a registry host such as ghcr.io or 127.0.0.1:5000")
            values[key] = None
    prefix = values["image_repo_prefix"]
    if prefix is not None and not (
        grammars.REPO_PREFIX_RE.fullmatch(prefix)
        and len(prefix) <= grammars.REPO_PREFIX_MAX
    ):
        b.problem("image_repo_prefix", prefix, "^[a-z0-9][a-z0-9._/-]*$, at most 255")
        values["image_repo_prefix"] = None

    # 9. PostgreSQL block.
    postgres = values["persistence_backend"] == "postgres"
    password = values["postgres_password"]
    if postgres:
        if password is None:
            b.problem("postgres_password", password, "required with postgres")
        elif not _valid_password(password):
            b.problem(
                "postgres_password",
                password,
                f"{PASSWORD_MIN}-{PASSWORD_MAX} characters without NUL, CR, LF or TAB",
            )
        if values["postgres_port"] is None:
            values["postgres_port"] = DEFAULT_PORTS["postgres_port"]
    if password is not None:
        register_secret(password)

    # 10. NATS block.
    nats = values["bus_backend"] == "nats"
    payload = values["nats_max_payload"] or "16MB"
    pending = values["nats_max_pending"] or "64MB"
    if nats:
        if values["nats_client_port"] is None:
            values["nats_client_port"] = DEFAULT_PORTS["nats_client_port"]
        from synthorg_tasks.render.natsconf import check_nats_limits

        try:
            check_nats_limits(payload, pending)
        except ValueError as exc:
            b.problem("nats_max_payload", payload, str(exc))
            payload, pending = "16MB", "64MB"

    # 11. Collision matrix.
    from synthorg_tasks.ports import find_collision

    ports = {
        "web_port": values["web_port"] or DEFAULT_PORTS["web_port"],
        "backend_port": values["backend_port"] or DEFAULT_PORTS["backend_port"],
    }
    if postgres:
        ports["postgres_port"] = values["postgres_port"]
    if nats:
        ports["nats_client_port"] = values["nats_client_port"]
    collision = find_collision(ports)
    if collision is not None:
        b.problem(collision.key, collision.port, collision.message)

    # 12. verified_digests and verified_image_tag.
    clean_digests: dict[str, str] = {}
    for key, value in digests.items():
        if not isinstance(value, str) or not grammars.DIGEST_RE.fullmatch(value):
            b.problem(f"verified_digests[{key}]", value, "sha256: and 64 lowercase hex")
            clean_digests = {}
            break
        clean_digests[key] = value
    verified_tag = values["verified_image_tag"]
    if verified_tag is not None and not grammars.TAG_RE.fullmatch(verified_tag):
        b.problem("verified_image_tag", verified_tag, "an image tag")
        verified_tag = None

    # 13. Tunables.
    for spec in TUNABLES:
        if spec.key in tunables:
            problem = _tunable_problem(spec, tunables[spec.key])
            if problem:
                b.problem(spec.key, tunables[spec.key], problem)
                del tunables[spec.key]

    data_dir_value = doc.get("data_dir")
    if data_dir_value is not None and not isinstance(data_dir_value, str):
        b.problem("data_dir", data_dir_value, "expected a JSON string")
    elif isinstance(data_dir_value, str) and not os.path.isabs(data_dir_value):
        b.problem("data_dir", data_dir_value, "an absolute path")

    extra = {k: v for k, v in doc.items() if k not in _KNOWN_KEYS}
    config = Config(
        data_dir=data_dir,
        project_name=project,
        image_tag=values["image_tag"] or default_tag,
        channel=values["channel"],
        log_level=values["log_level"],
        persistence_backend=values["persistence_backend"],
        memory_backend=values["memory_backend"],
        bus_backend=values["bus_backend"],
        backend_port=values["backend_port"] or DEFAULT_PORTS["backend_port"],
        web_port=values["web_port"] or DEFAULT_PORTS["web_port"],
        bind_address=values["bind_address"] or "127.0.0.1",
        postgres_port=values["postgres_port"] if postgres else None,
        postgres_password=password if postgres else None,
        nats_client_port=values["nats_client_port"] if nats else None,
        verified_digests=clean_digests,
        verified_image_tag=verified_tag,
        auto_pull=values["auto_pull"],
        auto_restart=values["auto_restart"],
        auto_apply_compose=values["auto_apply_compose"],
        registry_host=values["registry_host"],
        image_repo_prefix=values["image_repo_prefix"],
        dhi_registry=values["dhi_registry"],
        postgres_image_tag=values["postgres_image_tag"],
        nats_image_tag=values["nats_image_tag"],
        data_init_image=values["data_init_image"],
        nats_max_payload=payload,
        nats_max_pending=pending,
        tunables=tunables,
        extra=extra,
    )
    return config, b.findings, b.coerced


def _valid_project_name(name: str) -> bool:
    return bool(grammars.PROJECT_NAME_RE.fullmatch(name)) and len(name) <= 63


def _valid_registry(host: str) -> bool:
    if len(host) > grammars.REGISTRY_MAX or not grammars.REGISTRY_RE.fullmatch(host):
        return False
    if ":" in host:
        port = int(host.rsplit(":", 1)[1])
        return 1 <= port <= 65535
    return True


def _valid_password(password: str) -> bool:
    return PASSWORD_MIN <= len(password) <= PASSWORD_MAX and not any(
        c in password for c in "\0\r\n\t"
    )


def _tunable_problem(spec: Tunable, value: Any) -> str | None:
    try:
        if spec.kind == "duration":
            seconds = grammars.parse_duration(value)
            if seconds < spec.minimum_seconds:
                return f"at least {spec.minimum_seconds:g}s"
        elif spec.kind == "attempts":
            if not (
                isinstance(value, str) and value.isdigit() and 1 <= int(value) <= 100
            ):
                return "an integer from 1 to 100, written as a string"
        else:
            grammars.parse_byte_size(value)
    except ValueError as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------
# Validation of a built Config (used before every save)


def validate_config(config: Config, default_tag: str | None = None) -> None:
    """Raise :class:`ConfigInvalid` when ``config`` would not load back strictly."""
    document = _to_document(config)
    _build(
        document,
        config.data_dir,
        strict=True,
        coerce=False,
        default_tag=default_tag or config.image_tag,
    )
    if config.image_tag is None or not grammars.TAG_RE.fullmatch(config.image_tag):
        raise ConfigInvalid(f"config: image_tag: {config.image_tag!r} is invalid")


# ---------------------------------------------------------------------------
# Loaders


def _default_tag() -> str:
    from synthorg_tasks.verify.pins import load_pins

    return load_pins().synthorg.default_image_tag


def load_strict(data_dir: Path, *, default_tag: str | None = None) -> Config:
    """Load and fully validate; used by commands that act on the stack."""
    path = config_path(data_dir)
    document = _read_document(path)
    if document is None:
        raise NotInitialized(
            f"no configuration in {data_dir}; run 'synthorg init' first",
            hints=["synthorg init"],
        )
    config, _, _ = _build(
        document,
        data_dir,
        strict=True,
        coerce=True,
        default_tag=default_tag or _stored_tag_or_default(document),
    )
    return config


def _stored_tag_or_default(document: Mapping[str, Any]) -> str:
    tag = document.get("image_tag")
    if isinstance(tag, str) and tag:
        return tag
    return _default_tag()


def load_tolerant(data_dir: Path, *, default_tag: str | None = None) -> LoadResult:
    """Load for views and diagnostics: invalid fields fall back to defaults."""
    path = config_path(data_dir)
    document = _read_document(path)
    tag = default_tag or (
        _stored_tag_or_default(document) if document else _default_tag()
    )
    if document is None:
        fresh = Config(
            data_dir=data_dir,
            project_name=grammars.derive_project_name(data_dir.name),
            image_tag=tag,
        )
        return LoadResult(fresh, initialized=False)
    config, findings, coerced = _build(
        document, data_dir, strict=False, coerce=True, default_tag=tag
    )
    return LoadResult(config, True, tuple(findings), tuple(coerced))


def load_reinit(data_dir: Path) -> dict[str, Any] | None:
    """Return the stored document as is for ``init``, or ``None`` when absent.

    No coercion and no validation: init decides what to carry forward and
    validates the result.
    """
    return _read_document(config_path(data_dir))


def load_teardown(data_dir: Path) -> Config:
    """Load for ``stop``: only the data dir and project name must be valid."""
    path = config_path(data_dir)
    try:
        document = _read_document(path)
    except ConfigMalformed as exc:
        name = grammars.derive_project_name(data_dir.name)
        raise ConfigMalformed(
            exc.message,
            hints=[
                "to stop containers without it: docker compose -p "
                f"{name} -f {data_dir}/compose.yml down"
            ],
        ) from exc
    if document is None:
        raise NotInitialized(
            f"no configuration in {data_dir}; run 'synthorg init' first",
            hints=["synthorg init"],
        )
    tag = _stored_tag_or_default(document)
    config, findings, _ = _build(
        document, data_dir, strict=False, coerce=True, default_tag=tag
    )
    for finding in findings:
        if finding.key in ("data_dir", "project_name"):
            raise ConfigInvalid(f"config: {finding.message}")
    return config


# ---------------------------------------------------------------------------
# Serialisation and saving


def _to_document(config: Config) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "data_dir": str(config.data_dir),
        "project_name": config.project_name,
        "image_tag": config.image_tag,
        "channel": config.channel,
        "log_level": config.log_level,
        "persistence_backend": config.persistence_backend,
        "memory_backend": config.memory_backend,
        "bus_backend": config.bus_backend,
        "backend_port": config.backend_port,
        "web_port": config.web_port,
        "bind_address": config.bind_address,
    }
    if config.uses_postgres:
        doc["postgres_port"] = config.postgres_port
        doc["postgres_password"] = config.postgres_password
    if config.uses_nats:
        doc["nats_client_port"] = config.nats_client_port
    if config.verified_digests:
        doc["verified_digests"] = dict(sorted(config.verified_digests.items()))
    if config.verified_image_tag is not None:
        doc["verified_image_tag"] = config.verified_image_tag
    for key in BOOL_KEYS:
        if getattr(config, key):
            doc[key] = True
    for key in OVERRIDE_KEYS:
        if getattr(config, key) is not None:
            doc[key] = getattr(config, key)
    if config.nats_max_payload != "16MB":
        doc["nats_max_payload"] = config.nats_max_payload
    if config.nats_max_pending != "64MB":
        doc["nats_max_pending"] = config.nats_max_pending
    for spec in TUNABLES:
        if spec.key in config.tunables:
            doc[spec.key] = config.tunables[spec.key]
    for key, value in config.extra.items():
        if key not in doc:
            doc[key] = value
    return doc


def serialise_config(config: Config) -> bytes:
    """Return the exact bytes written to ``config.json`` (2-space JSON + LF)."""
    text = json.dumps(_to_document(config), indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def save_config(config: Config, lock: LifecycleLock) -> None:
    """Validate and atomically write ``config.json`` (mode 0600) under ``lock``."""
    if not lock.held:
        raise RuntimeError("save_config needs the lifecycle lock")
    validate_config(config)
    atomic_write(config.config_path, serialise_config(config), mode=0o600)
    _logger.info("saved %s", config.config_path)


def document_loader(
    data_dir: Path,
) -> Callable[[bytes], Config]:
    """Return a function that strictly parses config bytes for ``data_dir``."""

    def load(data: bytes) -> Config:
        document = parse_config_bytes(data, config_path(data_dir))
        config, _, _ = _build(
            document,
            data_dir,
            strict=True,
            coerce=False,
            default_tag=_stored_tag_or_default(document),
        )
        return config

    return load
