"""DHI verification against a loopback registry and Rekor stub, offline.

Each tampering case changes one thing about an otherwise valid image and
must fail closed with a message naming the image and the failed step.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from synthorg_tasks.errors import AIR_GAPPED_HINT, TransportError, VerificationError
from synthorg_tasks.verify.dhi import DhiResult, verify_dhi_image
from synthorg_tasks.verify.pins import DhiImagePin, Pins
from synthorg_tasks.verify.registry import RegistryClient
from synthorg_tasks.verify.rekor import RekorClient
from tests.verify.dhi_cases import CASES, OTHER_DIGEST, OTHER_KEY, Case
from tests.verify.factories import (
    NOW,
    DhiImage,
    DhiOptions,
    LayerOptions,
    TrustKeys,
    build_dhi_image,
    make_pins,
)
from tests.verify.stub_server import StubServer


def publish(stub: StubServer, image: DhiImage) -> RegistryClient:
    client = RegistryClient(stub.host, timeout=5)
    image.publish(client)
    for entry in image.rekor_entries:
        stub.state.rekor_entries[entry.log_index] = entry.document
    return client


def verify(
    stub: StubServer,
    image: DhiImage,
    pins: Pins,
    *,
    pin: DhiImagePin | None = None,
    platform: str = "linux/amd64",
    rekor_url: str | None = None,
) -> DhiResult:
    return verify_dhi_image(
        "postgres",
        pin or image.pin,
        pins=pins,
        platform=platform,
        registry=RegistryClient(stub.host, timeout=5),
        rekor_client=RekorClient(rekor_url or stub.url, timeout=5),
        clock=lambda: NOW,
    )


# -- passing images ----------------------------------------------------------


@pytest.mark.parametrize("referrers_api", [True, False], ids=["api", "tag-fallback"])
@pytest.mark.parametrize("embed_proof", [False, True], ids=["rekor-api", "embedded"])
def test_valid_image_verifies(
    stub: StubServer, trust_keys: TrustKeys, referrers_api: bool, embed_proof: bool
) -> None:
    image = build_dhi_image(
        trust_keys, DhiOptions(layers=[LayerOptions(embed_proof=embed_proof)])
    )
    publish(stub, image)
    stub.state.referrers_api = referrers_api
    result = verify(stub, image, make_pins(trust_keys, {"postgres": image.pin}))
    assert result.index_digest == image.index_digest
    assert result.platform == "linux/amd64"
    assert result.platform_digest == image.platform_digest
    assert result.attestation_digest == image.attestation_digest
    assert result.signature_digest == image.signature_digest
    assert result.rekor_log_index == image.rekor_entries[0].log_index
    assert result.ref == f"{stub.host}/postgres:18-debian13"


def test_embedded_proof_needs_no_log_api(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(
        trust_keys, DhiOptions(layers=[LayerOptions(embed_proof=True)])
    )
    publish(stub, image)
    stub.state.rekor_entries.clear()
    result = verify(
        stub, image, make_pins(trust_keys, {}), rekor_url="http://127.0.0.1:9"
    )
    assert result.rekor_log_index == image.rekor_entries[0].log_index


def test_second_platform_is_chosen(stub: StubServer, trust_keys: TrustKeys) -> None:
    image = build_dhi_image(trust_keys, DhiOptions(target_platform="linux/arm64"))
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}), platform="linux/arm64")
    assert result.platform_digest == image.platform_digest


def test_platform_variant_is_matched(stub: StubServer, trust_keys: TrustKeys) -> None:
    options = DhiOptions(
        platforms=("linux/arm/v6", "linux/arm/v7"), target_platform="linux/arm/v7"
    )
    image = build_dhi_image(trust_keys, options)
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}), platform="linux/arm/v7")
    assert result.platform_digest == image.platform_digest
    with pytest.raises(VerificationError, match="no linux/arm/v5 manifest"):
        verify(stub, image, make_pins(trust_keys, {}), platform="linux/arm/v5")


def test_invalid_first_layer_valid_second_passes(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    layers = [LayerOptions(signing_key=OTHER_KEY), LayerOptions()]
    image = build_dhi_image(trust_keys, DhiOptions(layers=layers))
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}))
    assert result.rekor_log_index == image.rekor_entries[1].log_index


def test_dsse_attestation_layer_verifies(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys, DhiOptions(dsse=True))
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}))
    assert result.attestation_digest == image.attestation_digest


def test_invalid_first_attestation_valid_second_passes(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys, DhiOptions(decoy_attestation=True))
    publish(stub, image)
    result = verify(stub, image, make_pins(trust_keys, {}))
    assert result.attestation_digest == image.attestation_digest


def test_all_attestations_invalid_lists_each(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    options = DhiOptions(
        decoy_attestation=True, layers=[LayerOptions(signing_key=OTHER_KEY)]
    )
    image = build_dhi_image(trust_keys, options)
    publish(stub, image)
    with pytest.raises(VerificationError) as raised:
        verify(stub, image, make_pins(trust_keys, {}))
    message = raised.value.message
    assert message.startswith(
        f"verifying {stub.host}/postgres:18-debian13: attestation: none of the 2 "
        "SLSA v1 attestations passed: "
    )
    assert "attestation: predicateType 'https://slsa.dev/provenance/v0.2'" in message
    assert f"{image.attestation_digest}: signature: no valid DHI signature" in message


def test_pinned_builder_id_matches(stub: StubServer, trust_keys: TrustKeys) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    pins = make_pins(trust_keys, {}, builder_ids=("https://dhi.docker.com/builder",))
    assert verify(stub, image, pins).attestation_digest == image.attestation_digest


def test_moved_tag_verifies_pinned_index(
    stub: StubServer, trust_keys: TrustKeys, caplog: pytest.LogCaptureFixture
) -> None:
    old = build_dhi_image(trust_keys)
    publish(stub, old)
    publish(stub, build_dhi_image(trust_keys))
    with caplog.at_level("INFO", logger="synthorg.verify.dhi"):
        result = verify(stub, old, make_pins(trust_keys, {}))
    assert result.index_digest == old.index_digest
    assert "now names" in caplog.text


# -- tampering cases ---------------------------------------------------------


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_tampered_image_fails_closed(
    stub: StubServer, trust_keys: TrustKeys, case: Case
) -> None:
    image = build_dhi_image(trust_keys, case.options)
    publish(stub, image)
    stub.state.referrers_api = case.referrers_api
    if case.tamper is not None:
        case.tamper(stub, image)
    pins = (case.pins or (lambda keys, _image: make_pins(keys, {})))(trust_keys, image)
    pin = case.pin(image) if case.pin is not None else None

    with pytest.raises(VerificationError) as raised:
        verify(stub, image, pins, pin=pin, platform=case.platform)

    message = raised.value.message
    prefix = f"verifying {stub.host}/postgres:18-debian13: {case.step}: "
    assert message.startswith(prefix), message
    assert re.search(case.reason, message), message
    assert not isinstance(raised.value, TransportError)
    assert AIR_GAPPED_HINT not in raised.value.hints


# -- access and transport failures -------------------------------------------


def test_login_refused_names_docker_login(
    stub: StubServer,
    trust_keys: TrustKeys,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    stub.state.token_auth = True
    stub.state.credentials = ("user", "secret-password")

    with pytest.raises(VerificationError) as raised:
        verify(stub, image, make_pins(trust_keys, {}))

    assert f"refused anonymous access; run: docker login {stub.host}" in str(
        raised.value
    )
    assert ": login: " in str(raised.value)
    assert AIR_GAPPED_HINT not in raised.value.hints


def test_login_with_docker_credentials_verifies(
    stub: StubServer,
    trust_keys: TrustKeys,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    auth = base64.b64encode(b"user:secret-password").decode()
    (tmp_path / "config.json").write_text(
        json.dumps({"auths": {stub.host: {"auth": auth}}}), encoding="utf-8"
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    stub.state.token_auth = True
    stub.state.credentials = ("user", "secret-password")

    result = verify(stub, image, make_pins(trust_keys, {}))

    assert result.signature_digest == image.signature_digest
    token_requests = [
        path for _m, path, _a in stub.state.log if path.startswith("/token")
    ]
    assert len(token_requests) == 1


def test_unreachable_registry_has_air_gapped_hint(trust_keys: TrustKeys) -> None:
    pin = DhiImagePin("postgres", "18-debian13", OTHER_DIGEST)
    with pytest.raises(TransportError) as raised:
        verify_dhi_image(
            "postgres",
            pin,
            pins=make_pins(trust_keys, {}),
            platform="linux/amd64",
            registry=RegistryClient("127.0.0.1:9", timeout=2),
            clock=lambda: NOW,
        )
    assert "127.0.0.1:9 unreachable" in str(raised.value)
    assert raised.value.hints.count(AIR_GAPPED_HINT) == 1


def test_unreachable_rekor_api_has_air_gapped_hint(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    with pytest.raises(TransportError) as raised:
        verify(stub, image, make_pins(trust_keys, {}), rekor_url="http://127.0.0.1:9")
    assert str(raised.value).startswith(f"verifying {stub.host}/postgres:18-debian13: ")
    assert raised.value.hints.count(AIR_GAPPED_HINT) == 1


def test_rekor_entry_missing_from_log(stub: StubServer, trust_keys: TrustKeys) -> None:
    image = build_dhi_image(trust_keys)
    publish(stub, image)
    stub.state.rekor_entries.clear()
    with pytest.raises(VerificationError, match="the log has no such entry"):
        verify(stub, image, make_pins(trust_keys, {}))


def test_platform_must_name_os_and_arch(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys)
    with pytest.raises(ValueError, match="os/arch"):
        verify(stub, image, make_pins(trust_keys, {}), platform="amd64")
