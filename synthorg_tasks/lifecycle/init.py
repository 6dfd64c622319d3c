"""``init``: resolve the settings, then write config.json, compose.yml and nats.conf.

The steps run in this order and nothing is written until every step before
the lock succeeded:

1. resolve and validate every value (flag → env twin → stored value →
   interactive choice → default) and the port collision matrix;
2. on re-init, load the stored document and confirm the overwrite;
3. keep the stored PostgreSQL password, or check that no data volume of this
   project exists and generate one;
4. build the config, render both files in memory and load the config back;
5. create the data dir and, under the lifecycle lock, write the files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthorg_tasks import grammars
from synthorg_tasks.errors import (
    ConfigError,
    ConfigInvalid,
    ConfigTooNew,
    SynthorgError,
    UsageError,
)
from synthorg_tasks.logging import get_logger
from synthorg_tasks.output import Output
from synthorg_tasks.ports import find_collision
from synthorg_tasks.prompts import ask_choice, confirm, stdin_is_tty
from synthorg_tasks.render.writer import RenderedFiles, render_files, write_rendered
from synthorg_tasks.state.config import (
    DEFAULT_PORTS,
    ENUMS,
    SCHEMA_VERSION,
    Config,
    config_path,
    document_loader,
    load_reinit,
    read_config_bytes,
    save_config,
    serialise_config,
)
from synthorg_tasks.state.lock import LifecycleLock
from synthorg_tasks.state.paths import (
    COMPOSE_FILE,
    NATS_CONF_FILE,
    check_data_dir_owner,
    make_parent_dirs,
)
from synthorg_tasks.state.secrets import generate_password, register_secret
from synthorg_tasks.verify.pins import Pins, load_pins

__all__ = [
    "InitRequest",
    "InitResult",
    "VolumeProbe",
    "bind_address_warning",
    "run_init",
]

_logger = get_logger("init")

PGDATA_VOLUME = "synthorg-pgdata"

# A function that looks up a project's PostgreSQL volume: its name (or True)
# when it exists, False when it does not, None when the engine could not be asked.
VolumeProbe = Callable[[str], "str | bool | None"]
# A function that reports whether any container of a project exists.
ContainerProbe = Callable[[str], "bool | None"]


@dataclass
class InitRequest:
    """The flags of one ``init`` call, as typed by the user (all text)."""

    backend: str | None = None
    persistence_backend: str | None = None
    bus: str | None = None
    bus_backend: str | None = None
    backend_port: str | None = None
    web_port: str | None = None
    postgres_port: str | None = None
    nats_port: str | None = None
    bind_address: str | None = None
    project_name: str | None = None
    image_tag: str | None = None
    channel: str | None = None
    log_level: str | None = None
    yes: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class InitResult:
    """The config and files that one ``init`` run wrote."""

    config: Config
    files: list[str]
    reinit: bool
    warnings: list[str]


# ---------------------------------------------------------------------------
# Step 1: resolve and validate every value


def _alias(flag: str | None, alias: str | None, names: tuple[str, str]) -> str | None:
    if flag is not None and alias is not None and flag != alias:
        raise UsageError(
            f"{names[0]} {flag!r} and {names[1]} {alias!r} disagree; "
            "they are two spellings of one flag",
            hints=[f"pass only {names[0]}"],
        )
    return flag if flag is not None else alias


def _env(req: InitRequest, name: str) -> str | None:
    value = req.environ.get(name, "").strip()
    return value or None


def _parse_port_flag(flag: str, value: str) -> int:
    try:
        return grammars.parse_port(value)
    except ValueError:
        raise UsageError(
            f"{flag} {value!r} is invalid (a port is an integer from 1 to 65535)",
            hints=[f"pass {flag} with a free port such as 3005"],
        ) from None


def _parse_enum(flag: str, value: str, key: str) -> str:
    if value not in ENUMS[key]:
        allowed = ", ".join(ENUMS[key])
        raise UsageError(
            f"{flag} {value!r} is invalid (allowed: {allowed})",
            hints=[f"pass {flag} with one of: {allowed}"],
        )
    return value


def _parse_bind(value: str) -> str:
    try:
        return grammars.parse_bind_address(value)
    except ValueError as exc:
        raise UsageError(
            f"--bind-address {value!r} is invalid ({exc})",
            hints=["pass --bind-address 127.0.0.1 (the default) or another address"],
        ) from None


def _parse_project(value: str) -> str:
    if not (grammars.PROJECT_NAME_RE.fullmatch(value) and len(value) <= 63):
        raise UsageError(
            f"--project-name {value!r} is invalid (lowercase letters, digits, "
            "'_' and '-', starting with a letter or digit, at most 63 characters)",
            hints=["pass --project-name such as synthorg-dev"],
        )
    return value


def _parse_tag(flag: str, value: str) -> str:
    if not grammars.TAG_RE.fullmatch(value):
        raise UsageError(
            f"{flag} {value!r} is invalid (an image tag: letters, digits, '.', "
            "'_' and '-', starting with a letter or digit, at most 128 characters)",
            hints=[f"pass {flag} such as 0.7.0"],
        )
    return value


@dataclass
class _Resolved:
    """Values after step 1; ``None`` means not given by flag or env.

    ``sources`` maps each given key to the flag or environment variable it
    came from, so that later errors name what the user typed.
    """

    backend: str | None
    bus: str | None
    ports: dict[str, int]
    bind_address: str | None
    project_name: str | None
    image_tag: str | None
    channel: str | None
    log_level: str | None
    sources: dict[str, str]


_PORT_FLAGS = {
    "web_port": "--web-port",
    "backend_port": "--backend-port",
    "postgres_port": "--postgres-port",
    "nats_client_port": "--nats-port",
}
_PORT_ENV = {"web_port": "SYNTHORG_WEB_PORT", "backend_port": "SYNTHORG_BACKEND_PORT"}


def _flag_or_env(
    req: InitRequest, flag_value: str | None, flag: str, env: str
) -> tuple[str | None, str]:
    if flag_value is not None:
        return flag_value, flag
    return _env(req, env), env


def _resolve_flags(req: InitRequest) -> _Resolved:
    backend = _alias(
        req.backend, req.persistence_backend, ("--backend", "--persistence-backend")
    )
    bus = _alias(req.bus, req.bus_backend, ("--bus", "--bus-backend"))
    sources: dict[str, str] = {}
    ports: dict[str, int] = {}
    for key, flag in _PORT_FLAGS.items():
        value = getattr(req, "nats_port" if key == "nats_client_port" else key)
        if value is not None:
            ports[key] = _parse_port_flag(flag, value)
            sources[key] = flag
        elif key in _PORT_ENV and _env(req, _PORT_ENV[key]) is not None:
            env_value = _env(req, _PORT_ENV[key])
            assert env_value is not None
            ports[key] = _parse_port_flag(_PORT_ENV[key], env_value)
            sources[key] = _PORT_ENV[key]
    channel, channel_source = _flag_or_env(
        req, req.channel, "--channel", "SYNTHORG_CHANNEL"
    )
    log_level, level_source = _flag_or_env(
        req, req.log_level, "--log-level", "SYNTHORG_LOG_LEVEL"
    )
    tag, tag_source = _flag_or_env(
        req, req.image_tag, "--image-tag", "SYNTHORG_IMAGE_TAG"
    )
    return _Resolved(
        backend=_parse_enum("--backend", backend, "persistence_backend")
        if backend is not None
        else None,
        bus=_parse_enum("--bus", bus, "bus_backend") if bus is not None else None,
        ports=ports,
        bind_address=_parse_bind(req.bind_address)
        if req.bind_address is not None
        else None,
        project_name=_parse_project(req.project_name)
        if req.project_name is not None
        else None,
        image_tag=_parse_tag(tag_source, tag) if tag is not None else None,
        channel=_parse_enum(channel_source, channel, "channel")
        if channel is not None
        else None,
        log_level=_parse_enum(level_source, log_level, "log_level")
        if log_level is not None
        else None,
        sources=sources,
    )


def _check_port_gating(resolved: _Resolved, backend: str, bus: str) -> None:
    if "postgres_port" in resolved.ports and backend != "postgres":
        raise UsageError(
            "--postgres-port only applies when the persistence backend is postgres",
            hints=["drop --postgres-port, or pass --backend postgres"],
        )
    if "nats_client_port" in resolved.ports and bus != "nats":
        raise UsageError(
            "--nats-port only applies when the bus is nats",
            hints=["drop --nats-port, or pass --bus nats"],
        )


def _check_collisions(ports: dict[str, Any], sources: dict[str, str]) -> None:
    typed = {
        key: value
        for key, value in ports.items()
        if isinstance(value, int) and not isinstance(value, bool)
    }
    collision = find_collision(typed)
    if collision is None:
        return
    # Name what the user typed: the given key if only one side was given.
    given = [k for k in (collision.key, collision.other) if k in sources]
    key = given[0] if given else collision.key
    other = collision.other if key == collision.key else collision.key
    named = sources.get(key, f"the stored {key}")
    raise UsageError(
        f"{named} {typed[key]} is already used by {other}; two services cannot "
        "share a host port",
        hints=[f"pass {_PORT_FLAGS[key]} with another port"],
    )


# ---------------------------------------------------------------------------
# Steps 2-4: the document, the password and the rendering


def _stored_str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


def _effective_ports(
    resolved: _Resolved, stored: Mapping[str, Any], backend: str, bus: str
) -> dict[str, Any]:
    """Return the ports to write: flag, else the stored value as is, else default.

    A stored value of the wrong type is carried forward unchanged, so that the
    load-back check rejects it instead of silently resetting it to a default.
    """
    ports: dict[str, Any] = {}
    wanted = ["web_port", "backend_port"]
    if backend == "postgres":
        wanted.append("postgres_port")
    if bus == "nats":
        wanted.append("nats_client_port")
    for key in wanted:
        if key in resolved.ports:
            ports[key] = resolved.ports[key]
            continue
        keep_stored = key != "postgres_port" or stored.get("persistence_backend") == (
            "postgres"
        )
        if keep_stored and key in stored:
            ports[key] = stored[key]
        else:
            ports[key] = DEFAULT_PORTS[key]
    return ports


def bind_address_warning(address: str) -> str | None:
    """Return the unsuppressible warning for a non-loopback bind address, if any."""
    if grammars.is_loopback(address):
        return None
    if grammars.is_wildcard(address):
        return (
            f"WARNING: binding to {address} publishes every port -- including "
            "PostgreSQL (password only, TLS disabled) and NATS (no authentication) "
            "-- on all network interfaces"
        )
    return (
        f"WARNING: binding to {address} publishes every port -- including "
        "PostgreSQL (password only, TLS disabled) and NATS (no authentication) "
        f"-- to every host that can reach {address}"
    )


def _changes(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, value in new.items():
        if key in ("postgres_password", "data_dir", "schema_version"):
            continue
        old = stored.get(key)
        if old != value:
            lines.append(f"  {key}: {old!r} -> {value!r}")
    return lines


def _ensure_data_dir(data_dir: Path, out: Output) -> None:
    try:
        make_parent_dirs(data_dir)
        data_dir.mkdir(mode=0o700, exist_ok=True)
        mode = stat.S_IMODE(data_dir.stat().st_mode)
        if mode & 0o077:
            os.chmod(data_dir, 0o700)
            out.warn(
                f"data dir {data_dir} was accessible to group or others "
                f"(mode {mode:04o}); tightened to 0700"
            )
        elif mode != 0o700:
            os.chmod(data_dir, 0o700)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the data dir {data_dir}: {exc.strerror}"
        ) from exc


def _check_stored_schema(stored: Mapping[str, Any], path: Path) -> None:
    if "schema_version" not in stored:
        return
    version = stored["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigInvalid(
            f"config: schema_version: {version!r} is invalid (an integer); "
            f"{path} was left untouched",
        )
    if version > SCHEMA_VERSION:
        raise ConfigTooNew(
            f"config.json schema_version {version} is newer than this toolkit "
            f"supports ({SCHEMA_VERSION})",
            hints=["upgrade synthorg-tasks"],
        )


def _lock_timeout(req: InitRequest, stored: Mapping[str, Any]) -> float:
    raw = _env(req, "SYNTHORG_LOCK_TIMEOUT") or stored.get("lock_timeout") or "5s"
    try:
        return grammars.parse_duration(str(raw))
    except ValueError:
        raise UsageError(
            f"lock_timeout {raw!r} is invalid (a duration such as 5s)",
            hints=["set SYNTHORG_LOCK_TIMEOUT=5s or fix lock_timeout in config.json"],
        ) from None


def run_init(
    req: InitRequest,
    data_dir: Path,
    out: Output,
    *,
    pins: Pins | None = None,
    volume_probe: VolumeProbe | None = None,
    container_probe: ContainerProbe | None = None,
    compose_check: Callable[[], str | None] | None = None,
    lock_timeout: float | None = None,
) -> InitResult:
    """Run ``init`` for ``data_dir``; raise a :class:`SynthorgError` on any failure."""
    pins = pins or load_pins()
    warnings: list[str] = []

    # Step 1: every flag value is checked before anything else happens.
    resolved = _resolve_flags(req)
    check_data_dir_owner(data_dir)
    # A Compose too old for service_completed_successfully fails now; none at
    # all only warns, because start is the command that needs it.
    if compose_check is not None:
        missing = compose_check()
        if missing:
            warnings.append(missing)
    for existing in (COMPOSE_FILE, NATS_CONF_FILE, "config.json"):
        if (data_dir / existing).is_symlink():
            raise ConfigError(
                f"{data_dir / existing} is a symbolic link; "
                "refusing to write through it",
                hints=["replace the link with a regular file or remove it"],
            )

    # Step 2: a stored config is carried forward, never silently replaced.
    stored_bytes = read_config_bytes(config_path(data_dir))
    stored = load_reinit(data_dir) if stored_bytes is not None else None
    reinit = stored is not None
    stored_doc: dict[str, Any] = dict(stored or {})
    _check_stored_schema(stored_doc, config_path(data_dir))
    interactive = (
        stdin_is_tty()
        and not req.yes
        and (resolved.backend is None or resolved.bus is None)
    )
    if reinit and not req.yes and not stdin_is_tty():
        raise UsageError(
            f"{config_path(data_dir)} already exists; "
            "re-run with --yes to overwrite it",
            hints=["add --yes to the same command"],
        )

    backend = resolved.backend or _stored_str(stored_doc, "persistence_backend")
    bus = resolved.bus or _stored_str(stored_doc, "bus_backend")
    if interactive and not reinit:
        if backend is None:
            backend = ask_choice(
                "Persistence backend", ENUMS["persistence_backend"], "postgres"
            )
        if bus is None:
            bus = ask_choice("Message bus", ENUMS["bus_backend"], "nats")
    backend = backend or "sqlite"
    bus = bus or "internal"
    _check_port_gating(resolved, backend, bus)
    ports = _effective_ports(resolved, stored_doc, backend, bus)
    _check_collisions(ports, resolved.sources)

    project = resolved.project_name or _stored_str(stored_doc, "project_name")
    project = project or grammars.derive_project_name(data_dir.name)
    image_tag = (
        resolved.image_tag
        or _stored_str(stored_doc, "image_tag")
        or pins.synthorg.default_image_tag
    )
    doc: dict[str, Any] = dict(stored_doc)
    doc.update(
        {
            "schema_version": SCHEMA_VERSION,
            "data_dir": str(data_dir),
            "project_name": project,
            "image_tag": image_tag,
            "persistence_backend": backend,
            "bus_backend": bus,
            **ports,
        }
    )
    for key, value in (
        ("bind_address", resolved.bind_address),
        ("channel", resolved.channel),
        ("log_level", resolved.log_level),
    ):
        if value is not None:
            doc[key] = value
    doc.setdefault("bind_address", "127.0.0.1")
    doc.pop("verified_digests", None)
    doc.pop("verified_image_tag", None)
    if bus != "nats":
        doc.pop("nats_client_port", None)

    old_project = _stored_str(stored_doc, "project_name")
    if reinit and old_project and old_project != project:
        if container_probe is not None and container_probe(old_project):
            raise SynthorgError(
                f"containers of project {old_project} exist; stop the stack first "
                "before changing --project-name",
                hints=["synthorg stop"],
            )
        warnings.append(
            f"the project name changes from {old_project} to {project}; the volumes "
            f"of {old_project} are not reused"
        )

    # Step 3: the password survives re-init; a new one is made only when no
    # data volume could be locked out by it. A stored password of the wrong
    # type is carried as is, so the load-back check rejects it.
    stays_postgres = stored_doc.get("persistence_backend") == "postgres"
    if backend == "postgres":
        if stays_postgres and "postgres_password" in stored_doc:
            doc["postgres_password"] = stored_doc["postgres_password"]
            if isinstance(doc["postgres_password"], str):
                register_secret(doc["postgres_password"])
        else:
            _reject_existing_volume(project, volume_probe, warnings)
            doc["postgres_password"] = generate_password()
            register_secret(doc["postgres_password"])
    else:
        if stays_postgres:
            warnings.append(
                "switching to sqlite: the PostgreSQL volume is kept and its data "
                "is not migrated"
            )
        doc.pop("postgres_password", None)
        doc.pop("postgres_port", None)

    if interactive or (reinit and stdin_is_tty() and not req.yes):
        _confirm_write(doc, stored_doc, reinit, req, out)

    # Step 4: render in memory and prove the result loads back strictly.
    config, files = _build_and_render(doc, data_dir, pins)
    warning = bind_address_warning(config.bind_address)
    if warning:
        warnings.append(warning)

    # Step 5: write nats.conf, compose.yml, then config.json, under the lock.
    # The stored file is read again inside the lock: another init or config
    # write that finished meanwhile must not be overwritten unseen.
    _ensure_data_dir(data_dir, out)
    timeout = (
        lock_timeout if lock_timeout is not None else _lock_timeout(req, stored_doc)
    )
    with LifecycleLock(data_dir, timeout=timeout) as lock:
        if read_config_bytes(config_path(data_dir)) != stored_bytes:
            raise SynthorgError(
                f"{config_path(data_dir)} changed while init was running; "
                "nothing was written",
                hints=["re-run the same command (with --yes to overwrite)"],
            )
        write_rendered(data_dir, files, lock)
        save_config(config, lock)
    written = [str(data_dir / COMPOSE_FILE), str(config.config_path)]
    if files.nats_conf is not None:
        written.insert(0, str(data_dir / NATS_CONF_FILE))
    _logger.info("init wrote %s", ", ".join(written))
    return InitResult(config, written, reinit, warnings)


def _reject_existing_volume(
    project: str, volume_probe: VolumeProbe | None, warnings: list[str]
) -> None:
    found = volume_probe(project) if volume_probe is not None else None
    name = found if isinstance(found, str) else f"{project}_{PGDATA_VOLUME}"
    if found:
        raise SynthorgError(
            f"a PostgreSQL data volume {name} already exists for project {project} "
            "but no matching password is stored; restore the config.json that "
            "created it, choose another --project-name, or remove the volume "
            "(synthorg stop --volumes)",
        )
    if found is None:
        warnings.append(
            f"the Docker engine could not be asked whether volume {name} exists; "
            "the check was skipped ('synthorg status' reports a password mismatch)"
        )


def _confirm_write(
    doc: Mapping[str, Any],
    stored: Mapping[str, Any],
    reinit: bool,
    req: InitRequest,
    out: Output,
) -> None:
    if reinit:
        changes = _changes(stored, doc) or ["  (no changes)"]
        out.info("Changes to the stored configuration:\n" + "\n".join(changes))
        out.info("Running containers pick them up on 'synthorg start'.")
        question, default = "Overwrite the configuration?", False
    else:
        keys = (
            "persistence_backend",
            "bus_backend",
            "project_name",
            "image_tag",
            "bind_address",
            *(key for key in DEFAULT_PORTS if key in doc),
        )
        summary = [f"  {key}: {doc[key]}" for key in keys]
        out.info("Configuration to write:\n" + "\n".join(summary))
        question, default = "Write this configuration?", True
    if not confirm(
        question, action="write the configuration", yes=req.yes, default=default
    ):
        raise UsageError("init cancelled; nothing was written")


def _build_and_render(
    doc: Mapping[str, Any], data_dir: Path, pins: Pins
) -> tuple[Config, RenderedFiles]:
    loader = document_loader(data_dir)
    try:
        config = loader(_json_bytes(doc))
        files = render_files(config, pins)
        # The bytes that will be saved must load back to the same config.
        again = loader(serialise_config(config))
    except ConfigInvalid as exc:
        raise ConfigInvalid(
            f"the new config would not load back: {exc.message}; nothing was written",
            hints=exc.hints,
        ) from exc
    if again != config:
        raise ConfigInvalid(
            "the new config would not load back unchanged; nothing was written"
        )
    return config, files


def _json_bytes(doc: Mapping[str, Any]) -> bytes:
    import json

    return json.dumps(dict(doc)).encode("utf-8")
