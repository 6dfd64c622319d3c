"""verify_images_with_cache: which groups are verified, and what it returns."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from synthorg_tasks.errors import TransportError, VerificationError
from synthorg_tasks.state.config import Config
from synthorg_tasks.verify.pipeline import (
    SKIP_VERIFY_WARNING,
    TrustSettings,
    override_warning,
    skip_verification_warning,
)
from tests.verify.publishing import TEST_REGISTRY
from tests.verify.stack import Stack


def test_first_call_verifies_both_groups(stack: Stack) -> None:
    outcome = stack.run()
    assert outcome.groups == {"synthorg": "verified", "dhi": "verified"}
    assert outcome.verified_image_tag == "0.7.0"
    assert outcome.changed
    digests = outcome.verified_digests
    backend = stack.memory.tags[("aureliolo/synthorg-backend", "0.7.0")]
    assert digests["backend"] == backend
    postgres = stack.dhi["postgres"]
    ref = f"{stack.dhi_stub.host}/postgres:18-debian13"
    assert digests[f"dhi:{ref}"] == postgres.index_digest
    assert digests[f"dhi:{ref}:platform"] == postgres.platform_digest
    assert digests[f"dhi:{ref}:attestation"] == postgres.attestation_digest
    assert digests[f"dhi:{ref}:signature"] == postgres.signature_digest
    assert len(digests) == 2 + 4 + 4
    assert [(i.service, i.cached) for i in outcome.images] == [
        ("backend", False),
        ("web", False),
        ("postgres", False),
        ("nats", False),
    ]


def test_second_call_makes_no_request(stack: Stack) -> None:
    first = stack.run()
    before = stack.request_count()
    events: list[tuple[str, str]] = []
    second = stack.run(stack.saved(first), progress=lambda s, e: events.append((s, e)))
    assert stack.request_count() == before
    assert second.groups == {"synthorg": "cached", "dhi": "cached"}
    assert second.verified_digests == first.verified_digests
    assert not second.changed
    assert all(image.cached for image in second.images)
    assert events == [
        ("backend", "cached"),
        ("web", "cached"),
        ("postgres", "cached"),
        ("nats", "cached"),
    ]


def test_cached_call_without_any_server(stack: Stack) -> None:
    saved = stack.saved(stack.run())

    def no_registry(host: str) -> Any:
        raise AssertionError(f"registry {host} was contacted")

    outcome = stack.run(
        saved,
        registry_factory=no_registry,
        rekor_client=None,
        attestations_client=None,
        trust=TrustSettings(trusted_root_path=None, tuf_fetch_timeout=0.01),
    )
    assert outcome.groups == {"synthorg": "cached", "dhi": "cached"}


def test_changed_tag_reverifies_synthorg_only(stack: Stack) -> None:
    saved = stack.saved(stack.run())
    for name in ("backend", "web"):
        stack.publish.release(name, "0.8.0")
    dhi_before = len(stack.dhi_stub.state.log)
    outcome = stack.run(saved, target_tag="0.8.0")
    assert outcome.groups == {"synthorg": "verified", "dhi": "cached"}
    assert len(stack.dhi_stub.state.log) == dhi_before
    assert outcome.verified_image_tag == "0.8.0"
    new_backend = stack.memory.tags[("aureliolo/synthorg-backend", "0.8.0")]
    assert outcome.verified_digests["backend"] == new_backend
    dhi_keys = {k: v for k, v in saved.verified_digests.items() if k.startswith("dhi:")}
    assert {
        k: v for k, v in outcome.verified_digests.items() if k.startswith("dhi:")
    } == (dhi_keys)


def test_bumped_dhi_pin_reverifies_dhi_only(stack: Stack) -> None:
    saved = stack.saved(stack.run())
    stack.publish_dhi("nats", "2.14-debian13")
    stack.pins = stack.make_pins()
    synthorg_before = len(stack.memory.requests) + len(stack.github_stub.requests)
    outcome = stack.run(saved)
    assert outcome.groups == {"synthorg": "cached", "dhi": "verified"}
    after = len(stack.memory.requests) + len(stack.github_stub.requests)
    assert after == synthorg_before
    ref = f"{stack.dhi_stub.host}/nats:2.14-debian13"
    assert outcome.verified_digests[f"dhi:{ref}"] == stack.dhi["nats"].index_digest
    assert outcome.verified_digests["backend"] == saved.verified_digests["backend"]


def test_force_reverifies_current_groups(stack: Stack) -> None:
    saved = stack.saved(stack.run())
    outcome = stack.run(saved, force=True)
    assert outcome.groups == {"synthorg": "verified", "dhi": "verified"}
    assert not outcome.changed


def test_stale_dhi_keys_are_replaced_wholesale(stack: Stack) -> None:
    stale_ref = "dhi:old.example.invalid/postgres:17"
    config = stack.config.replace(
        verified_digests={
            stale_ref: "sha256:" + "9" * 64,
            "sandbox": "sha256:" + "8" * 64,
        }
    )
    outcome = stack.run(config)
    assert stale_ref not in outcome.verified_digests
    assert "sandbox" not in outcome.verified_digests


def test_failed_verification_returns_nothing(stack: Stack) -> None:
    stack.publish.image("web", "0.9.0")
    stack.publish.release("backend", "0.9.0")
    saved = stack.saved(stack.run())
    snapshot = dict(saved.verified_digests)
    with pytest.raises(VerificationError) as caught:
        stack.run(saved, target_tag="0.9.0")
    assert caught.value.message == (
        "verifying registry.test.invalid/aureliolo/synthorg-web:0.9.0: signature: "
        "no signature bundle found for "
        "registry.test.invalid/aureliolo/synthorg-web:0.9.0"
    )
    assert saved.verified_digests == snapshot
    assert saved.verified_image_tag == "0.7.0"


def test_dhi_failure_fails_the_call(stack: Stack) -> None:
    stack.dhi["postgres"] = dataclasses.replace(
        stack.dhi["postgres"], index_digest="sha256:" + "e" * 64
    )
    stack.pins = stack.make_pins()
    with pytest.raises(VerificationError, match="postgres"):
        stack.run()


def test_sqlite_internal_verifies_no_dhi_image(stack: Stack) -> None:
    config = stack.config.replace(persistence_backend="sqlite", bus_backend="internal")
    outcome = stack.run(config)
    assert stack.dhi_stub.state.log == []
    assert [i.service for i in outcome.images] == ["backend", "web"]
    assert not any(k.startswith("dhi:") for k in outcome.verified_digests)


def test_whole_call_deadline_is_enforced(stack: Stack) -> None:
    def slow_factory(host: str) -> Any:
        time.sleep(3)
        return stack.registry_factory(host)

    started = time.monotonic()
    with pytest.raises(TransportError, match=r"did not finish within 0\.5s"):
        stack.run(registry_factory=slow_factory, deadline=0.5)
    assert time.monotonic() - started < 2.5


def test_dhi_deadline_is_enforced(stack: Stack) -> None:
    def slow_dhi(host: str) -> Any:
        if host != TEST_REGISTRY:
            time.sleep(3)
        return stack.registry_factory(host)

    trust = TrustSettings(
        trusted_root_path=stack.sigstore.trusted_root_path, dhi_timeout=0.5
    )
    with pytest.raises(TransportError, match=r"did not finish within 0\.5s"):
        stack.run(registry_factory=slow_dhi, trust=trust)


def test_images_verify_concurrently(stack: Stack) -> None:
    def slow_factory(host: str) -> Any:
        time.sleep(0.4)
        return stack.registry_factory(host)

    started = time.monotonic()
    stack.run(registry_factory=slow_factory)
    assert time.monotonic() - started < 4 * 0.4


def test_progress_reports_checks(stack: Stack) -> None:
    events: list[tuple[str, str]] = []
    stack.run(progress=lambda service, event: events.append((service, event)))
    for service in ("backend", "web"):
        assert (service, "sig") in events
        assert (service, "slsa") in events
    for service in ("postgres", "nats"):
        assert [e for s, e in events if s == service] == ["sig", "slsa", "rekor"]


def test_warnings_are_unsuppressible(capsys: pytest.CaptureFixture[str]) -> None:
    skip_verification_warning()
    override_warning(["registry_host", "nats_image_tag"])
    err = capsys.readouterr().err.splitlines()
    assert err == [
        SKIP_VERIFY_WARNING,
        "WARNING: registry_host, nats_image_tag override the pinned registry or "
        "tags; image verification is OFF",
    ]
    assert SKIP_VERIFY_WARNING == (
        "WARNING: --skip-verify is set; images will be pulled WITHOUT signature "
        "or provenance checks"
    )


def test_digest_of_unrelated_bytes_is_not_cached(stack: Stack) -> None:
    other = "sha256:" + hashlib.sha256(b"unrelated").hexdigest()
    outcome = stack.run()
    assert other not in outcome.verified_digests.values()


def test_trust_settings_from_config(tmp_path: Path) -> None:
    config = Config(
        data_dir=tmp_path,
        project_name="test",
        image_tag="0.7.0",
        tunables={"tuf_fetch_timeout": "5s", "dhi_verify_timeout": "3m"},
    )
    environ = {
        "SYNTHORG_SIGSTORE_TRUSTED_ROOT": "/etc/sigstore/root.json",
        "SYNTHORG_ATTESTATION_HTTP_TIMEOUT": "10s",
    }
    trust = TrustSettings.from_config(config, None, environ)
    assert trust.trusted_root_path == Path("/etc/sigstore/root.json")
    assert trust.tuf_fetch_timeout == 5.0
    assert trust.http_timeout == 10.0
    assert trust.dhi_timeout == 180.0
    flagged = TrustSettings.from_config(config, "/tmp/flag.json", environ)
    assert flagged.trusted_root_path == Path("/tmp/flag.json")
    assert TrustSettings.from_config(config, None, {}).trusted_root_path is None
