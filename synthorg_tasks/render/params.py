"""``RenderParams``: everything the compose template needs, validated up front.

An invalid effective value never falls back to a default: rendering fails, so
a typo in an override cannot silently point the stack at another registry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from synthorg_tasks import __version__, grammars
from synthorg_tasks.errors import ConfigInvalid
from synthorg_tasks.ports import find_collision
from synthorg_tasks.render.natsconf import check_nats_limits
from synthorg_tasks.state.config import ENUMS, Config
from synthorg_tasks.state.secrets import percent_encode, register_secret
from synthorg_tasks.verify.pins import Pins

__all__ = [
    "OVERRIDE_ENV",
    "ImageSet",
    "RenderParams",
    "active_overrides",
    "effective_overrides",
    "pinned_values",
    "synthorg_group_current",
]

# Override key → its environment twin.
OVERRIDE_ENV = {
    "registry_host": "SYNTHORG_REGISTRY_HOST",
    "image_repo_prefix": "SYNTHORG_IMAGE_REPO_PREFIX",
    "dhi_registry": "SYNTHORG_DHI_REGISTRY",
    "postgres_image_tag": "SYNTHORG_POSTGRES_IMAGE_TAG",
    "nats_image_tag": "SYNTHORG_NATS_IMAGE_TAG",
    "data_init_image": "SYNTHORG_DATA_INIT_IMAGE",
}


def pinned_values(pins: Pins) -> dict[str, str]:
    """Return each override key's value as the pins define it."""
    return {
        "registry_host": pins.synthorg.registry,
        "image_repo_prefix": pins.synthorg.repository_prefix,
        "dhi_registry": pins.dhi.registry,
        "postgres_image_tag": pins.dhi.images["postgres"].tag,
        "nats_image_tag": pins.dhi.images["nats"].tag,
        "data_init_image": pins.data_init_image,
    }


def effective_overrides(
    config: Config, pins: Pins, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return each override's effective value: env twin → config → pins."""
    env = os.environ if environ is None else environ
    values = pinned_values(pins)
    for key, env_name in OVERRIDE_ENV.items():
        from_env = env.get(env_name, "").strip()
        stored = getattr(config, key)
        if from_env:
            values[key] = from_env
        elif stored is not None:
            values[key] = stored
    return values


def active_overrides(
    config: Config, pins: Pins, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Return the override keys whose effective value differs from the pins."""
    pinned = pinned_values(pins)
    effective = effective_overrides(config, pins, environ)
    return [key for key in OVERRIDE_ENV if effective[key] != pinned[key]]


def synthorg_group_current(config: Config, pins: Pins, target_tag: str) -> bool:
    """Return whether the cached SynthOrg digests were verified for ``target_tag``."""
    from synthorg_tasks.verify import cache

    return cache.synthorg_group_current(
        config.verified_digests,
        config.verified_image_tag,
        target_tag,
        pins.synthorg.images,
    )


@dataclass(frozen=True)
class ImageSet:
    """The image reference of every service, as written into compose.yml."""

    data_init: str
    backend: str
    web: str
    postgres: str | None = None
    nats: str | None = None

    def by_service(self) -> dict[str, str]:
        """Return the references of the enabled services in compose order."""
        refs = {"data-init": self.data_init}
        if self.postgres is not None:
            refs["postgres"] = self.postgres
        if self.nats is not None:
            refs["nats"] = self.nats
        refs["backend"] = self.backend
        refs["web"] = self.web
        return refs


@dataclass(frozen=True)
class RenderParams:
    """Validated inputs of compose.yml.j2 and nats.conf.j2."""

    version: str
    project_name: str
    bind_address: str
    web_port: int
    backend_port: int
    postgres_port: int | None
    nats_client_port: int | None
    persistence_backend: str
    bus_backend: str
    memory_backend: str
    log_level: str
    images: ImageSet
    nats_max_payload: str
    nats_max_pending: str
    postgres_password: str | None = field(default=None, repr=False)
    overrides: tuple[str, ...] = ()

    @property
    def uses_postgres(self) -> bool:
        """Whether the stack has a PostgreSQL service."""
        return self.persistence_backend == "postgres"

    @property
    def uses_nats(self) -> bool:
        """Whether the stack has a NATS service."""
        return self.bus_backend == "nats"

    @property
    def port_host(self) -> str:
        """The bind address as written in a port mapping (IPv6 in brackets)."""
        if ":" in self.bind_address:
            return f"[{self.bind_address}]"
        return self.bind_address

    @property
    def database_url(self) -> str | None:
        """The backend's URL to PostgreSQL on the project network, password encoded."""
        if self.postgres_password is None:
            return None
        encoded = percent_encode(self.postgres_password)
        return f"postgresql://synthorg:{encoded}@postgres:5432/synthorg"

    @classmethod
    def from_config(
        cls,
        config: Config,
        pins: Pins,
        *,
        environ: Mapping[str, str] | None = None,
        version: str = __version__,
    ) -> RenderParams:
        """Build and validate the parameters; the first invalid value raises."""
        effective = effective_overrides(config, pins, environ)
        overrides = active_overrides(config, pins, environ)
        _validate(config, effective)
        images = _resolve_images(config, pins, effective, bool(overrides))
        if config.postgres_password is not None:
            register_secret(config.postgres_password)
        return cls(
            version=version,
            project_name=config.project_name,
            bind_address=config.bind_address,
            web_port=config.web_port,
            backend_port=config.backend_port,
            postgres_port=config.postgres_port if config.uses_postgres else None,
            nats_client_port=config.nats_client_port if config.uses_nats else None,
            persistence_backend=config.persistence_backend,
            bus_backend=config.bus_backend,
            memory_backend=config.memory_backend,
            log_level=config.log_level,
            images=images,
            nats_max_payload=config.nats_max_payload,
            nats_max_pending=config.nats_max_pending,
            postgres_password=config.postgres_password
            if config.uses_postgres
            else None,
            overrides=tuple(overrides),
        )


def _invalid(key: str, value: object, rule: str) -> ConfigInvalid:
    return ConfigInvalid(f"{key}: {value!r} is invalid ({rule}); nothing was rendered")


def _validate(config: Config, effective: Mapping[str, str]) -> None:
    # Tags, then registry hosts, prefix and the data-init image.
    for key, value in (
        ("image_tag", config.image_tag),
        ("postgres_image_tag", effective["postgres_image_tag"]),
        ("nats_image_tag", effective["nats_image_tag"]),
    ):
        if not grammars.TAG_RE.fullmatch(value):
            raise _invalid(key, value, "an image tag")
    for key in ("registry_host", "dhi_registry"):
        if not grammars.REGISTRY_RE.fullmatch(effective[key]):
            raise _invalid(key, effective[key], "a registry host")
    if not grammars.REPO_PREFIX_RE.fullmatch(effective["image_repo_prefix"]):
        raise _invalid("image_repo_prefix", effective["image_repo_prefix"], "a prefix")
    if not grammars.IMAGE_REF_RE.fullmatch(effective["data_init_image"]):
        raise _invalid(
            "data_init_image", effective["data_init_image"], "an image reference"
        )
    if config.log_level not in ENUMS["log_level"]:
        raise _invalid("log_level", config.log_level, "debug, info, warn or error")
    try:
        grammars.parse_bind_address(config.bind_address)
    except ValueError as exc:
        raise _invalid("bind_address", config.bind_address, str(exc)) from None
    collision = find_collision(dict(config.ports()))
    if collision is not None:
        raise ConfigInvalid(collision.message)
    for key in ("persistence_backend", "bus_backend", "memory_backend"):
        if getattr(config, key) not in ENUMS[key]:
            raise _invalid(key, getattr(config, key), ", ".join(ENUMS[key]))
    if config.uses_nats:
        try:
            check_nats_limits(config.nats_max_payload, config.nats_max_pending)
        except ValueError as exc:
            raise ConfigInvalid(f"nats_max_payload: {exc}") from None
    if config.uses_postgres and not config.postgres_password:
        raise ConfigInvalid("postgres_password is required with postgres")
    for key in sorted(config.verified_digests):
        if not grammars.DIGEST_RE.fullmatch(config.verified_digests[key]):
            raise _invalid(f"verified_digests[{key}]", "<digest>", "sha256 digest")


def _resolve_images(
    config: Config, pins: Pins, effective: Mapping[str, str], override_active: bool
) -> ImageSet:
    registry = effective["registry_host"]
    prefix = effective["image_repo_prefix"]
    pinned = not override_active and synthorg_group_current(
        config, pins, config.image_tag
    )

    def synthorg_ref(name: str) -> str:
        base = f"{registry}/{prefix}{name}"
        if pinned:
            return f"{base}@{config.verified_digests[name]}"
        return f"{base}:{config.image_tag}"

    def dhi_ref(name: str, tag_key: str) -> str:
        pin = pins.dhi.images[name]
        base = f"{effective['dhi_registry']}/{pin.repository}:{effective[tag_key]}"
        if override_active:
            return base
        return f"{base}@{pin.index_digest}"

    return ImageSet(
        data_init=effective["data_init_image"],
        backend=synthorg_ref("backend"),
        web=synthorg_ref("web"),
        postgres=dhi_ref("postgres", "postgres_image_tag")
        if config.uses_postgres
        else None,
        nats=dhi_ref("nats", "nats_image_tag") if config.uses_nats else None,
    )
