"""start's verification step: cache saved, compose.yml pinned, no second request."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthorg_tasks.lifecycle.init import InitRequest, run_init
from synthorg_tasks.lifecycle.start import StartRequest, _verify
from synthorg_tasks.output import Output
from synthorg_tasks.state.config import load_strict
from synthorg_tasks.state.lock import LifecycleLock
from synthorg_tasks.verify.pipeline import TrustSettings
from synthorg_tasks.verify.rekor import RekorClient
from tests.verify.stack import Stack


@dataclass
class _Engine:
    os: str = "linux"
    arch: str = "amd64"


@dataclass
class _Api:
    engine: _Engine


@dataclass
class _Session:
    api: _Api


def _options(stack: Stack) -> dict[str, Any]:
    return {
        "trust": TrustSettings(
            trusted_root_path=stack.sigstore.trusted_root_path, dhi_timeout=30
        ),
        "registry_factory": stack.registry_factory,
        "rekor_client": RekorClient(stack.dhi_stub.url, timeout=5),
        "attestations_client": stack.attestations,
    }


def test_start_pins_compose_and_second_start_is_cached(
    stack: Stack, tmp_path: Path
) -> None:
    data = tmp_path / "install"
    request = InitRequest(backend="postgres", bus="nats", image_tag="0.7.0", environ={})
    run_init(request, data, Output(), pins=stack.pins)
    session: Any = _Session(_Api(_Engine()))
    config = load_strict(data)

    with LifecycleLock(data) as lock:
        verified, files, groups = _verify(
            config,
            stack.pins,
            StartRequest(),
            session,
            lock,
            Output(),
            pipeline_options=_options(stack),
        )
    assert groups == {"synthorg": "verified", "dhi": "verified"}
    assert files is not None
    compose = (data / "compose.yml").read_text()
    digest = verified.verified_digests["backend"]
    assert f"synthorg-backend@{digest}" in compose
    stored = json.loads((data / "config.json").read_text())
    assert stored["verified_digests"] == verified.verified_digests
    assert stored["verified_image_tag"] == "0.7.0"

    before = stack.request_count()
    with LifecycleLock(data) as lock:
        _again, files_again, groups_again = _verify(
            load_strict(data),
            stack.pins,
            StartRequest(),
            session,
            lock,
            Output(),
            pipeline_options=_options(stack),
        )
    assert groups_again == {"synthorg": "cached", "dhi": "cached"}
    assert files_again is None
    assert stack.request_count() == before
