"""Every ``config.json`` setting, declared once.

Each :class:`Setting` names its key, its runtime environment twin, its value
grammar, its default, a one-sentence help text, whether ``config set`` may
change it, whether ``config get`` may show it, whether changing it changes
``compose.yml``, and the topology it needs. ``config list``, ``config get``,
``config set``/``unset`` and their help derive from :data:`SETTINGS`.

This module imports only the standard library and the product's grammars, so
``synthorg --help`` and ``config get`` stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from synthorg_tasks import grammars

__all__ = [
    "CACHE_INVALIDATING",
    "CONDITIONS",
    "SETTINGS",
    "Setting",
    "compose_affecting_keys",
    "gettable_keys",
    "is_secret_name",
    "parse_value",
    "settable_keys",
    "setting",
]

# Human text of each topology condition, as in "<key> only applies when ...".
CONDITIONS = {
    "postgres": "the persistence backend is postgres",
    "nats": "the bus is nats",
}

# Keys whose change makes the cached image digests meaningless: they decide
# which images the stack runs, so the next start must verify again.
OVERRIDE_KEYS = (
    "registry_host",
    "image_repo_prefix",
    "dhi_registry",
    "postgres_image_tag",
    "nats_image_tag",
    "data_init_image",
)
CACHE_INVALIDATING = frozenset({"image_tag", *OVERRIDE_KEYS})


@dataclass(frozen=True)
class Setting:
    """One ``config.json`` key and every fact the config commands need about it.

    ``kind`` names the value grammar (see :func:`parse_value`). ``default`` is
    the text shown when the key is unset; ``None`` means the default comes from
    the pins or the data dir and is computed by the caller. ``env`` is the
    runtime environment twin, which wins over the file on every read.
    """

    key: str
    kind: str
    help: str
    default: str | None = None
    env: str | None = None
    settable: bool = False
    gettable: bool = True
    compose_affecting: bool = False
    condition: str | None = None
    secret: bool = False
    tunable: bool = False


def _tunable(key: str, kind: str, default: str, help_text: str) -> Setting:
    return Setting(
        key,
        kind,
        help_text,
        default=default,
        env=f"SYNTHORG_{key.upper()}",
        settable=True,
        tunable=True,
    )


def _override(key: str, kind: str, help_text: str) -> Setting:
    return Setting(
        key,
        kind,
        help_text,
        env=f"SYNTHORG_{key.upper()}",
        settable=True,
        compose_affecting=True,
    )


SETTINGS: tuple[Setting, ...] = (
    Setting("schema_version", "int", "Version of the config.json format.", "1"),
    Setting("data_dir", "path", "Folder holding config.json and compose.yml."),
    Setting(
        "project_name",
        "project",
        "Compose project name; set by init and never changed afterwards.",
    ),
    Setting(
        "image_tag",
        "tag",
        "SynthOrg image tag the stack runs (default the pinned release).",
        settable=True,
        compose_affecting=True,
    ),
    Setting(
        "channel",
        "enum:stable,dev",
        "Update channel: stable follows the pinned release, dev follows the dev tag.",
        "stable",
        settable=True,
    ),
    Setting(
        "log_level",
        "enum:debug,info,warn,error",
        "Backend log level: debug, info, warn or error.",
        "info",
        settable=True,
        compose_affecting=True,
    ),
    Setting(
        "persistence_backend",
        "enum:sqlite,postgres",
        "Persistence backend, sqlite or postgres; changed only by init.",
        "sqlite",
    ),
    Setting(
        "memory_backend",
        "enum:sqlvector,composite,inmemory",
        "Memory backend of the backend service; read-only.",
        "sqlvector",
    ),
    Setting(
        "bus_backend",
        "enum:internal,nats",
        "Message bus, internal or nats; changed only by init.",
        "internal",
    ),
    Setting(
        "backend_port",
        "port",
        "Host port of the backend API, 1-65535.",
        "3001",
        settable=True,
        compose_affecting=True,
    ),
    Setting(
        "web_port",
        "port",
        "Host port of the web dashboard, 1-65535.",
        "3000",
        settable=True,
        compose_affecting=True,
    ),
    Setting(
        "bind_address",
        "bind",
        "Host address every port is published on; non-loopback prints a warning.",
        "127.0.0.1",
        settable=True,
        compose_affecting=True,
    ),
    Setting(
        "postgres_port",
        "port",
        "Host port of PostgreSQL, 1-65535.",
        "3002",
        settable=True,
        compose_affecting=True,
        condition="postgres",
    ),
    Setting(
        "postgres_password",
        "secret",
        "Password of the PostgreSQL role synthorg; always shown as ****.",
        condition="postgres",
        secret=True,
    ),
    Setting(
        "nats_client_port",
        "port",
        "Host port of the NATS client listener, 1-65535.",
        "3003",
        settable=True,
        compose_affecting=True,
        condition="nats",
    ),
    Setting(
        "verified_digests",
        "digests",
        "Cache of verified image digests, as JSON; cleared when images change.",
    ),
    Setting(
        "verified_image_tag",
        "tag",
        "Image tag the cached SynthOrg digests were verified for.",
    ),
    Setting(
        "auto_pull",
        "bool",
        "Whether update pulls without asking: true or false.",
        "false",
        env="SYNTHORG_AUTO_PULL",
        settable=True,
    ),
    Setting(
        "auto_restart",
        "bool",
        "Whether update restarts the stack without asking: true or false.",
        "false",
        env="SYNTHORG_AUTO_RESTART",
        settable=True,
    ),
    Setting(
        "auto_apply_compose",
        "bool",
        "Whether update applies compose.yml drift without asking: true or false.",
        "false",
        settable=True,
    ),
    _override(
        "registry_host", "registry", "Registry of the SynthOrg images (default pins)."
    ),
    _override(
        "image_repo_prefix",
        "prefix",
        "Repository prefix of the SynthOrg images (default pins).",
    ),
    _override("dhi_registry", "registry", "Registry of PostgreSQL and NATS images."),
    _override("postgres_image_tag", "tag", "PostgreSQL image tag (default pins)."),
    _override("nats_image_tag", "tag", "NATS image tag (default pins)."),
    _override("data_init_image", "image_ref", "Image of the data-init service."),
    Setting(
        "nats_max_payload",
        "nats_size",
        "Largest NATS message, such as 16MB (KB/MB/GB are powers of 1024).",
        "16MB",
        settable=True,
        compose_affecting=True,
        condition="nats",
    ),
    Setting(
        "nats_max_pending",
        "nats_size",
        "Largest NATS pending buffer per client; at least nats_max_payload.",
        "64MB",
        settable=True,
        compose_affecting=True,
        condition="nats",
    ),
    _tunable(
        "health_check_timeout", "duration", "5s", "Timeout of one readiness request."
    ),
    _tunable(
        "health_wait_timeout",
        "duration",
        "90s",
        "Budget of the readiness wait after start.",
    ),
    _tunable(
        "health_poll_interval", "duration", "2s", "Delay between readiness polls."
    ),
    _tunable(
        "health_initial_delay",
        "duration",
        "5s",
        "Delay before the first readiness poll.",
    ),
    _tunable(
        "image_verify_timeout",
        "duration_1s",
        "120s",
        "Budget of image verification, at least 1s.",
    ),
    _tunable(
        "dhi_verify_timeout", "duration", "120s", "Budget of the DHI verification."
    ),
    _tunable(
        "attestation_http_timeout",
        "duration",
        "30s",
        "Timeout of one request to a registry, GitHub or Rekor.",
    ),
    _tunable(
        "tuf_fetch_timeout",
        "duration",
        "30s",
        "Timeout of the Sigstore trust-root refresh.",
    ),
    _tunable(
        "image_pull_attempts",
        "attempts",
        "3",
        "Attempts per image pull, an integer from 1 to 100.",
    ),
    _tunable(
        "image_pull_retry_delay",
        "duration",
        "2s",
        "Delay before the first pull retry; doubles per retry.",
    ),
    _tunable(
        "status_docker_timeout",
        "duration",
        "15s",
        "Timeout of Docker engine requests made by status.",
    ),
    _tunable(
        "diagnostics_dial_timeout",
        "duration",
        "1s",
        "Timeout of each connection test made by doctor.",
    ),
    _tunable(
        "max_api_response_bytes",
        "bytes",
        "4MiB",
        "Largest backend API response read, at most 1GiB.",
    ),
    _tunable(
        "lock_timeout",
        "duration",
        "5s",
        "How long a command waits for another one holding the lifecycle lock.",
    ),
)

_BY_KEY = {s.key: s for s in SETTINGS}


def setting(key: str) -> Setting | None:
    """Return the declaration of ``key``, or ``None`` for an unknown key."""
    return _BY_KEY.get(key)


def settable_keys() -> tuple[str, ...]:
    """Return the keys ``config set`` and ``config unset`` accept."""
    return tuple(s.key for s in SETTINGS if s.settable)


def gettable_keys() -> tuple[str, ...]:
    """Return the keys ``config get`` and ``config list`` show."""
    return tuple(s.key for s in SETTINGS if s.gettable)


def compose_affecting_keys() -> frozenset[str]:
    """Return the keys whose change changes compose.yml or nats.conf."""
    return frozenset(s.key for s in SETTINGS if s.compose_affecting)


# Names of stored keys that hold secrets written by other programs, such as
# jwt_secret, settings_key, master_key or an API token.
_SECRET_NAME_RE = re.compile(
    r"(secret|password|passwd|token|credential|private|(^|_)key$|api_key|cert)",
    re.IGNORECASE,
)


def is_secret_name(key: str) -> bool:
    """Return whether a key name looks like it contains a secret."""
    return bool(_SECRET_NAME_RE.search(key))


# ---------------------------------------------------------------------------
# Value grammars for ``config set``


def _parse_port(text: str) -> int:
    return grammars.parse_port(text)


def _parse_bool(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError("exactly true or false")


def _parse_tag(text: str) -> str:
    if not grammars.TAG_RE.fullmatch(text):
        raise ValueError(
            "an image tag: letters, digits, '.', '_' and '-', starting with a "
            "letter or digit, at most 128 characters"
        )
    return text


def _parse_registry(text: str) -> str:
    valid = len(text) <= grammars.REGISTRY_MAX and bool(
        grammars.REGISTRY_RE.fullmatch(text)
    )
    if valid and ":" in text:
        valid = 1 <= int(text.rsplit(":", 1)[1]) <= 65535
    if not valid:
        raise ValueError("a registry host such as ghcr.io or 127.0.0.1:5000")
    return text


def _parse_prefix(text: str) -> str:
    if not (
        grammars.REPO_PREFIX_RE.fullmatch(text)
        and len(text) <= grammars.REPO_PREFIX_MAX
    ):
        raise ValueError(
            "a repository prefix: lowercase letters, digits, '.', '_', '/' and '-', "
            "at most 255 characters"
        )
    return text


def _parse_image_ref(text: str) -> str:
    if not grammars.IMAGE_REF_RE.fullmatch(text):
        raise ValueError("an image reference such as busybox:1.38-musl@sha256:<hex>")
    return text


def _parse_nats_size(text: str) -> str:
    from synthorg_tasks.render.natsconf import parse_nats_size

    parse_nats_size(text)
    return text


def _parse_duration(text: str) -> str:
    grammars.parse_duration(text)
    return text


def _parse_duration_1s(text: str) -> str:
    if grammars.parse_duration(text) < 1.0:
        raise ValueError("a duration of at least 1s")
    return text


def _parse_attempts(text: str) -> str:
    if not (text.isdigit() and 1 <= int(text) <= 100):
        raise ValueError("an integer from 1 to 100")
    return str(int(text))


def _parse_bytes(text: str) -> str:
    grammars.parse_byte_size(text)
    return text


_PARSERS: dict[str, Callable[[str], Any]] = {
    "port": _parse_port,
    "bind": grammars.parse_bind_address,
    "bool": _parse_bool,
    "tag": _parse_tag,
    "registry": _parse_registry,
    "prefix": _parse_prefix,
    "image_ref": _parse_image_ref,
    "nats_size": _parse_nats_size,
    "duration": _parse_duration,
    "duration_1s": _parse_duration_1s,
    "attempts": _parse_attempts,
    "bytes": _parse_bytes,
}


def parse_value(spec: Setting, text: str) -> Any:
    """Parse ``text`` by the grammar of ``spec``; raise ``ValueError`` with the rule.

    Enumerations accept exactly one of their listed words; booleans accept
    exactly ``true`` or ``false``.
    """
    if spec.kind.startswith("enum:"):
        allowed = spec.kind.split(":", 1)[1].split(",")
        if text not in allowed:
            raise ValueError(f"allowed: {', '.join(allowed)}")
        return text
    parser = _PARSERS.get(spec.kind)
    if parser is None:
        raise ValueError(f"{spec.key} has no text grammar")
    return parser(text)
