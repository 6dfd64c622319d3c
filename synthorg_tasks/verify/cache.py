"""The verified-digest cache stored in config.json as ``verified_digests``.

Two groups share the map, and each is replaced wholesale when it is verified
again:

- SynthOrg: one bare-name key per image (``backend``, ``web``) whose value is
  the verified image digest. ``verified_image_tag`` records the tag they were
  verified for.
- DHI: ``dhi:<dhi_registry>/<repository>:<tag>`` is the pinned index digest,
  with ``:platform``, ``:attestation`` and ``:signature`` siblings for the
  digests found while verifying it.

A group is current when its entries still describe what would be verified now;
a current group is trusted without contacting any registry. There is no TTL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from synthorg_tasks.options import OVERRIDE_KEYS

if TYPE_CHECKING:
    from synthorg_tasks.verify.pins import Pins

__all__ = [
    "DHI_KEY_PREFIX",
    "DHI_SIBLINGS",
    "INVALIDATING_KEYS",
    "DhiImage",
    "VerifyConfig",
    "clear_cache_if_invalidated",
    "dhi_entries",
    "dhi_group_current",
    "dhi_images",
    "dhi_key",
    "invalidates_cache",
    "replace_dhi_group",
    "replace_synthorg_group",
    "synthorg_group_current",
    "synthorg_images",
]

DHI_KEY_PREFIX = "dhi:"
DHI_SIBLINGS = ("platform", "attestation", "signature")

# Keys whose change makes every cached digest meaningless: they select which
# images (and which registry) the digests were verified for.
INVALIDATING_KEYS = frozenset({"image_tag", *OVERRIDE_KEYS})


class VerifyConfig(Protocol):
    """The config.json fields that image verification reads."""

    @property
    def image_tag(self) -> str: ...
    @property
    def persistence_backend(self) -> str: ...
    @property
    def bus_backend(self) -> str: ...
    @property
    def registry_host(self) -> str | None: ...
    @property
    def image_repo_prefix(self) -> str | None: ...
    @property
    def dhi_registry(self) -> str | None: ...
    @property
    def postgres_image_tag(self) -> str | None: ...
    @property
    def nats_image_tag(self) -> str | None: ...
    @property
    def data_init_image(self) -> str | None: ...
    @property
    def verified_digests(self) -> Mapping[str, str]: ...
    @property
    def verified_image_tag(self) -> str | None: ...


@dataclass(frozen=True)
class DhiImage:
    """An enabled DHI image: its service name, cache reference and pinned digest."""

    service: str
    ref: str
    index_digest: str


def synthorg_images(pins: Pins) -> tuple[str, ...]:
    """Return the SynthOrg images to verify, by service name."""
    return tuple(pins.synthorg.images)


def dhi_images(config: VerifyConfig, pins: Pins) -> tuple[DhiImage, ...]:
    """Return the DHI images the configured backends enable."""
    enabled: list[str] = []
    if config.persistence_backend == "postgres":
        enabled.append("postgres")
    if config.bus_backend == "nats":
        enabled.append("nats")
    images = []
    for service in enabled:
        pin = pins.dhi.images[service]
        ref = f"{pins.dhi.registry}/{pin.repository}:{pin.tag}"
        images.append(DhiImage(service, ref, pin.index_digest))
    return tuple(images)


def dhi_key(ref: str, sibling: str | None = None) -> str:
    """Return the cache key of a DHI reference, or of one of its siblings."""
    return (
        f"{DHI_KEY_PREFIX}{ref}"
        if sibling is None
        else f"{DHI_KEY_PREFIX}{ref}:{sibling}"
    )


def dhi_entries(
    ref: str,
    *,
    index_digest: str,
    platform_digest: str,
    attestation_digest: str,
    signature_digest: str,
) -> dict[str, str]:
    """Return the four cache entries of one verified DHI image."""
    return {
        dhi_key(ref): index_digest,
        dhi_key(ref, "platform"): platform_digest,
        dhi_key(ref, "attestation"): attestation_digest,
        dhi_key(ref, "signature"): signature_digest,
    }


def synthorg_group_current(
    digests: Mapping[str, str],
    verified_image_tag: str | None,
    target_tag: str,
    images: Iterable[str],
) -> bool:
    """Whether the SynthOrg entries are complete and verified for ``target_tag``."""
    if verified_image_tag != target_tag or not digests:
        return False
    return all(name in digests for name in images)


def dhi_group_current(digests: Mapping[str, str], images: Iterable[DhiImage]) -> bool:
    """Whether every enabled DHI image is cached at its pinned index digest."""
    return all(
        digests.get(dhi_key(image.ref)) == image.index_digest for image in images
    )


def replace_synthorg_group(
    digests: Mapping[str, str], entries: Mapping[str, str]
) -> dict[str, str]:
    """Return ``digests`` with every bare-name key replaced by ``entries``."""
    kept = {k: v for k, v in digests.items() if k.startswith(DHI_KEY_PREFIX)}
    return {**dict(entries), **kept}


def replace_dhi_group(
    digests: Mapping[str, str], entries: Mapping[str, str]
) -> dict[str, str]:
    """Return ``digests`` with every ``dhi:`` key replaced by ``entries``."""
    kept = {k: v for k, v in digests.items() if not k.startswith(DHI_KEY_PREFIX)}
    return {**kept, **dict(entries)}


def invalidates_cache(changed_keys: Iterable[str]) -> bool:
    """Whether setting or unsetting ``changed_keys`` must clear the cache.

    When it returns true, the caller stores an empty ``verified_digests`` and
    no ``verified_image_tag``, so the next start verifies both groups again.
    """
    return any(key in INVALIDATING_KEYS for key in changed_keys)


ConfigT = TypeVar("ConfigT")


def clear_cache_if_invalidated(config: ConfigT, changed_keys: Iterable[str]) -> ConfigT:
    """Return ``config`` (a dataclass), its cache cleared when a change invalidates it.

    ``config.set`` and ``config.unset`` call this with the keys they changed.
    """
    if not invalidates_cache(changed_keys):
        return config
    changes: dict[str, Any] = {"verified_digests": {}, "verified_image_tag": None}
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]
