"""The rules of the verified-digest cache."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from synthorg_tasks.state.config import Config
from synthorg_tasks.verify import cache
from synthorg_tasks.verify.pins import Pins

BACKEND = "sha256:" + "b" * 64
WEB = "sha256:" + "c" * 64
OTHER = "sha256:" + "0" * 64


def config(tmp_path: Path, **changes: object) -> Config:
    base = Config(data_dir=tmp_path, project_name="test", image_tag="0.7.0")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


SYNTHORG_CURRENT = {
    "current": ({"backend": BACKEND, "web": WEB}, "0.7.0", "0.7.0", True),
    "tag-differs": ({"backend": BACKEND, "web": WEB}, "0.6.0", "0.7.0", False),
    "target-differs": ({"backend": BACKEND, "web": WEB}, "0.7.0", "0.8.0", False),
    "empty-map": ({}, "0.7.0", "0.7.0", False),
    "image-missing": ({"backend": BACKEND}, "0.7.0", "0.7.0", False),
    "only-dhi-keys": ({"dhi:x/y:z": OTHER}, "0.7.0", "0.7.0", False),
    "never-verified": ({"backend": BACKEND, "web": WEB}, None, "0.7.0", False),
}


@pytest.mark.parametrize(
    ("digests", "verified_tag", "target", "current"),
    SYNTHORG_CURRENT.values(),
    ids=SYNTHORG_CURRENT.keys(),
)
def test_synthorg_group_current(
    digests: dict[str, str], verified_tag: str | None, target: str, current: bool
) -> None:
    result = cache.synthorg_group_current(
        digests, verified_tag, target, ("backend", "web")
    )
    assert result is current


def test_dhi_images_follow_backends(tmp_path: Path, packaged_pins: Pins) -> None:
    assert cache.dhi_images(config(tmp_path), packaged_pins) == ()
    both = config(tmp_path, persistence_backend="postgres", bus_backend="nats")
    images = cache.dhi_images(both, packaged_pins)
    assert [i.service for i in images] == ["postgres", "nats"]
    assert images[0].ref == "dhi.io/postgres:18-debian13"
    assert images[0].index_digest == packaged_pins.dhi.images["postgres"].index_digest
    nats_only = config(tmp_path, bus_backend="nats")
    assert [i.service for i in cache.dhi_images(nats_only, packaged_pins)] == ["nats"]


def test_dhi_group_current_needs_pinned_digest(
    tmp_path: Path, packaged_pins: Pins
) -> None:
    both = config(tmp_path, persistence_backend="postgres", bus_backend="nats")
    images = cache.dhi_images(both, packaged_pins)
    digests = {cache.dhi_key(i.ref): i.index_digest for i in images}
    assert cache.dhi_group_current(digests, images)
    bumped = {**digests, cache.dhi_key(images[1].ref): OTHER}
    assert not cache.dhi_group_current(bumped, images)
    missing = {cache.dhi_key(images[0].ref): images[0].index_digest}
    assert not cache.dhi_group_current(missing, images)


def test_dhi_entries_keys() -> None:
    entries = cache.dhi_entries(
        "dhi.io/nats:2.14-debian13",
        index_digest="sha256:" + "1" * 64,
        platform_digest="sha256:" + "2" * 64,
        attestation_digest="sha256:" + "3" * 64,
        signature_digest="sha256:" + "4" * 64,
    )
    assert list(entries) == [
        "dhi:dhi.io/nats:2.14-debian13",
        "dhi:dhi.io/nats:2.14-debian13:platform",
        "dhi:dhi.io/nats:2.14-debian13:attestation",
        "dhi:dhi.io/nats:2.14-debian13:signature",
    ]


MIXED = {
    "backend": OTHER,
    "sandbox": OTHER,
    "dhi:dhi.io/postgres:18": OTHER,
    "dhi:dhi.io/postgres:18:platform": OTHER,
}


def test_synthorg_replacement_keeps_dhi_keys() -> None:
    result = cache.replace_synthorg_group(MIXED, {"backend": BACKEND, "web": WEB})
    assert result == {
        "backend": BACKEND,
        "web": WEB,
        "dhi:dhi.io/postgres:18": OTHER,
        "dhi:dhi.io/postgres:18:platform": OTHER,
    }


def test_dhi_replacement_keeps_bare_keys() -> None:
    result = cache.replace_dhi_group(MIXED, {"dhi:dhi.io/nats:2": BACKEND})
    assert result == {"backend": OTHER, "sandbox": OTHER, "dhi:dhi.io/nats:2": BACKEND}


INVALIDATING = {
    "image-tag": (["image_tag"], True),
    "registry-host": (["registry_host"], True),
    "repo-prefix": (["image_repo_prefix"], True),
    "dhi-registry": (["dhi_registry"], True),
    "postgres-tag": (["postgres_image_tag"], True),
    "nats-tag": (["nats_image_tag"], True),
    "data-init": (["data_init_image"], True),
    "port-only": (["web_port"], False),
    "port-and-tag": (["web_port", "image_tag"], True),
    "nothing": ([], False),
}


@pytest.mark.parametrize(
    ("keys", "clears"), INVALIDATING.values(), ids=INVALIDATING.keys()
)
def test_config_change_invalidation(
    tmp_path: Path, keys: list[str], clears: bool
) -> None:
    stored = config(
        tmp_path,
        verified_digests={"backend": BACKEND, "web": WEB},
        verified_image_tag="0.7.0",
    )
    result = cache.clear_cache_if_invalidated(stored, keys)
    assert cache.invalidates_cache(keys) is clears
    if clears:
        assert result.verified_digests == {}
        assert result.verified_image_tag is None
    else:
        assert result is stored
