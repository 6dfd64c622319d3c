"""The verify command: refusal on overrides, saving, and its JSON document."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from synthorg_tasks.errors import UsageError, VerificationError
from synthorg_tasks.lifecycle.verify import (
    VerifyRequest,
    resolve_platform,
    run_verify,
    verify_document,
)
from synthorg_tasks.render.writer import write_compose_files
from synthorg_tasks.state.config import Config, load_strict, save_config
from synthorg_tasks.state.lock import LifecycleLock
from tests.conftest import run_synthorg
from tests.verify.identity_cases import POLICY_REJECTS
from tests.verify.sigstore_factory import Claims
from tests.verify.stack import Stack


def install(stack: Stack, *, compose: bool = True, **changes: object) -> Path:
    config = stack.config.replace(**changes)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with LifecycleLock(config.data_dir) as lock:
        save_config(config, lock)
        if compose:
            write_compose_files(config, stack.pins, lock)
    return config.data_dir


def run(stack: Stack, data_dir: Path, request: VerifyRequest | None = None) -> object:
    return run_verify(
        data_dir,
        request or VerifyRequest(trusted_root=str(stack.sigstore.trusted_root_path)),
        pins=stack.pins,
        registry_factory=stack.registry_factory,
        attestations_client=stack.attestations,
        rekor_client=None,
        platform="linux/amd64",
        environ={},
    )


def test_verify_saves_cache_and_pins_compose(stack: Stack) -> None:
    data_dir = install(stack)
    report = run(stack, data_dir)
    assert report.saved  # type: ignore[attr-defined]
    stored = load_strict(data_dir)
    backend = stack.memory.tags[("aureliolo/synthorg-backend", "0.7.0")]
    assert stored.verified_digests["backend"] == backend
    assert stored.verified_image_tag == "0.7.0"
    compose = (data_dir / "compose.yml").read_text(encoding="utf-8")
    assert f"registry.test.invalid/aureliolo/synthorg-backend@{backend}" in compose


def test_no_save_leaves_config_untouched(stack: Stack) -> None:
    data_dir = install(stack)
    before = (data_dir / "config.json").read_bytes()
    request = VerifyRequest(
        no_save=True, trusted_root=str(stack.sigstore.trusted_root_path)
    )
    report = run(stack, data_dir, request)
    assert not report.saved  # type: ignore[attr-defined]
    assert (data_dir / "config.json").read_bytes() == before


def test_other_tag_is_verified_but_not_saved(stack: Stack) -> None:
    for name in ("backend", "web"):
        stack.publish.release(name, "0.8.0")
    data_dir = install(stack)
    before = (data_dir / "config.json").read_bytes()
    request = VerifyRequest(
        image_tag="0.8.0", trusted_root=str(stack.sigstore.trusted_root_path)
    )
    report = run(stack, data_dir, request)
    assert report.target_tag == "0.8.0"  # type: ignore[attr-defined]
    assert not report.saved  # type: ignore[attr-defined]
    assert (data_dir / "config.json").read_bytes() == before


def test_failed_verification_saves_nothing(stack: Stack) -> None:
    stack.memory.tags.pop(("aureliolo/synthorg-web", "0.7.0"))
    data_dir = install(stack)
    before = (data_dir / "config.json").read_bytes()
    with pytest.raises(VerificationError, match=r"synthorg-web:0\.7\.0: digest"):
        run(stack, data_dir)
    assert (data_dir / "config.json").read_bytes() == before


def test_active_override_is_refused(stack: Stack) -> None:
    data_dir = install(stack, compose=False, registry_host="mirror.example.invalid")
    with pytest.raises(VerificationError) as caught:
        run(stack, data_dir)
    assert caught.value.message == (
        "verification is disabled because registry_host override the pinned "
        "registry or tags"
    )
    assert stack.request_count() == 0


def test_short_verify_timeout_is_a_usage_error(stack: Stack) -> None:
    data_dir = install(stack, compose=False)
    request = VerifyRequest(verify_timeout="500ms")
    with pytest.raises(UsageError, match="at least 1s"):
        run(stack, data_dir, request)


def test_json_document_shape(stack: Stack) -> None:
    data_dir = install(stack, compose=False)
    document = verify_document(run(stack, data_dir))  # type: ignore[arg-type]
    assert document["saved"] is True
    assert [image["service"] for image in document["images"]] == [
        "backend",
        "web",
        "postgres",
        "nats",
    ]
    first = document["images"][0]
    assert set(first) == {"service", "ref", "digest", "checks", "cached"}
    assert first["checks"] == ["sig", "slsa"]
    assert first["cached"] is False
    assert document["images"][2]["checks"] == ["sig", "slsa", "rekor"]
    json.dumps(document)


def test_unreachable_engine_falls_back_to_host(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("synthorg"), "propagate", True)
    with caplog.at_level(logging.DEBUG, logger="synthorg.verify"):
        platform = resolve_platform(lambda: None)
    assert platform.startswith("linux/")
    assert "Docker engine unreachable" in caplog.text


def test_engine_platform_wins() -> None:
    assert resolve_platform(lambda: "linux/arm64") == "linux/arm64"


def test_program_refuses_override_with_exit_1(tmp_path: Path) -> None:
    data_dir = tmp_path / "install"
    data_dir.mkdir()
    config = Config(
        data_dir=data_dir,
        project_name="install",
        image_tag="0.7.0",
        nats_image_tag="2.15-debian13",
    )
    with LifecycleLock(data_dir) as lock:
        save_config(config, lock)
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "verify", "--json", f"--data-dir={data_dir}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["exit_code"] == 1
    assert document["error"]["message"] == (
        "verification is disabled because nats_image_tag override the pinned "
        "registry or tags"
    )


STALE = {"backend": "sha256:" + "1" * 64, "web": "sha256:" + "2" * 64}


def _publish_bad_backend(stack: Stack, claims: Claims, step: str) -> None:
    digest = stack.publish.image("backend", "0.8.0")
    signer = claims if step == "signature" else Claims()
    stack.publish.dsse_signature("backend", digest, signer)
    stack.publish.provenance(digest, claims=claims)
    stack.publish.release("web", "0.8.0")


@pytest.mark.parametrize("step", ["signature", "provenance"])
@pytest.mark.parametrize(
    "claims",
    [claims for claims, _ in POLICY_REJECTS.values()],
    ids=list(POLICY_REJECTS),
)
def test_rejected_identity_leaves_config(
    stack: Stack, claims: Claims, step: str
) -> None:
    _publish_bad_backend(stack, claims, step)
    data_dir = install(
        stack,
        image_tag="0.8.0",
        verified_digests=STALE,
        verified_image_tag="0.7.0",
    )
    config_before = (data_dir / "config.json").read_bytes()
    compose_before = (data_dir / "compose.yml").read_bytes()
    with pytest.raises(VerificationError) as caught:
        run(stack, data_dir)
    ref = "registry.test.invalid/aureliolo/synthorg-backend:0.8.0"
    assert caught.value.message.startswith(f"verifying {ref}: {step}: ")
    assert (data_dir / "config.json").read_bytes() == config_before
    assert (data_dir / "compose.yml").read_bytes() == compose_before


@pytest.fixture
def injected(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """Point the task's verification at the test servers and test pins."""
    import synthorg_tasks.lifecycle.verify as lifecycle

    real_run_verify = lifecycle.run_verify

    def run_with_test_servers(
        data_dir: Path, request: VerifyRequest, **kwargs: object
    ) -> object:
        return real_run_verify(
            data_dir,
            dataclasses.replace(
                request, trusted_root=str(stack.sigstore.trusted_root_path)
            ),
            pins=stack.pins,
            registry_factory=stack.registry_factory,
            attestations_client=stack.attestations,
            platform="linux/amd64",
            progress=kwargs.get("progress"),  # type: ignore[arg-type]
            environ={},
        )

    monkeypatch.setattr(lifecycle, "run_verify", run_with_test_servers)
    return stack


def test_task_prints_rows_then_cached_groups(injected: Stack) -> None:
    data_dir = install(injected)
    first = run_synthorg("verify", f"--data-dir={data_dir}")
    assert first.code == 0, first.stderr
    rows = first.stdout.splitlines()
    assert [row.split()[0] for row in rows] == ["backend", "web", "postgres", "nats"]
    assert rows[0].endswith("sig \u2713 slsa \u2713  verified")
    assert rows[2].endswith("sig \u2713 slsa \u2713 rekor \u2713  verified")
    assert "backend: sig \u2713" in first.stderr
    assert "verified digests saved to config.json" in first.stderr

    second = run_synthorg("verify", "--plain", f"--data-dir={data_dir}")
    assert second.code == 0, second.stderr
    assert second.stderr.count("SynthOrg images (cached)") == 1
    assert second.stderr.count("DHI images (cached)") == 1
    assert all(row.endswith("cached") for row in second.stdout.splitlines())
    assert "sig ok slsa ok" in second.stdout


def test_task_json_document(injected: Stack) -> None:
    data_dir = install(injected)
    result = run_synthorg("verify", "--json", f"--data-dir={data_dir}")
    assert result.code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["saved"] is True
    assert [image["cached"] for image in document["images"]] == [False] * 4


def test_task_failure_exits_1(injected: Stack) -> None:
    injected.memory.tags.pop(("aureliolo/synthorg-backend", "0.7.0"))
    data_dir = install(injected)
    result = run_synthorg("verify", "--json", f"--data-dir={data_dir}")
    assert result.code == 1
    document = json.loads(result.stdout)
    assert document["error"]["code"] == "verification_failed"
    assert document["error"]["message"].startswith(
        "verifying registry.test.invalid/aureliolo/synthorg-backend:0.7.0: digest: "
    )
