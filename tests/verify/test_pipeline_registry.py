"""Both pipelines against a real docker-registry on 127.0.0.1.

Images, Sigstore bundles, DHI attestations and signatures are pushed by the
tests. The registry has no referrers API, so the referrers-tag fallback of
the registry client is what finds every signature here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from synthorg_tasks.errors import VerificationError
from synthorg_tasks.state.config import Config
from synthorg_tasks.verify.pipeline import TrustSettings, verify_images_with_cache
from tests.verify.factories import TrustKeys
from tests.verify.http_stub import GitHubStub, run_stub
from tests.verify.registry_release import LocalRelease, publish_local_release
from tests.verify.sigstore_factory import SigstoreFactory

pytestmark = pytest.mark.registry


@pytest.fixture
def release(
    docker_registry: str,
    tmp_path: Path,
    trust_keys: TrustKeys,
) -> Iterator[tuple[LocalRelease, SigstoreFactory, GitHubStub]]:
    sigstore = SigstoreFactory(tmp_path)
    config = Config(
        data_dir=tmp_path,
        project_name="registry",
        image_tag=f"t{tmp_path.name[-20:].replace('_', '-')}",
        persistence_backend="postgres",
        bus_backend="nats",
    )
    with run_stub() as github_stub:
        local = publish_local_release(
            docker_registry, sigstore, github_stub, trust_keys, config
        )
        yield local, sigstore, github_stub


def run(local: LocalRelease, sigstore: SigstoreFactory, config: Config) -> object:
    return verify_images_with_cache(
        config,
        local.pins,
        target_tag=config.image_tag,
        platform="linux/amd64",
        trust=TrustSettings(trusted_root_path=sigstore.trusted_root_path),
        registry_factory=local.registry_factory,
        deadline=60,
        attestations_client=local.attestations,
    )


def test_four_images_verify_then_cache(
    release: tuple[LocalRelease, SigstoreFactory, GitHubStub],
) -> None:
    local, sigstore, github_stub = release
    first = run(local, sigstore, local.config)
    assert first.groups == {"synthorg": "verified", "dhi": "verified"}  # type: ignore[attr-defined]
    digests = first.verified_digests  # type: ignore[attr-defined]
    ref = f"{local.host}/nats:2.14-debian13"
    assert digests[f"dhi:{ref}"] == local.dhi["nats"].index_digest
    assert digests[f"dhi:{ref}:signature"] == local.dhi["nats"].signature_digest
    assert local.session.count > 0

    before_registry = local.session.count
    before_api = len(github_stub.requests)
    saved = local.config.replace(
        verified_digests=digests,
        verified_image_tag=first.verified_image_tag,  # type: ignore[attr-defined]
    )
    second = run(local, sigstore, saved)
    assert second.groups == {"synthorg": "cached", "dhi": "cached"}  # type: ignore[attr-defined]
    assert local.session.count == before_registry
    assert len(github_stub.requests) == before_api


def test_unsigned_tag_fails_against_registry(
    release: tuple[LocalRelease, SigstoreFactory, GitHubStub],
) -> None:
    local, sigstore, _ = release
    writer_client = local.registry_factory(local.host)
    config = local.config.replace(image_tag="unsigned")
    from tests.verify.registry_release import RegistryWriter

    writer = RegistryWriter(writer_client)
    for name in ("backend", "web"):
        writer.push_image(f"aureliolo/synthorg-{name}", "unsigned", name.encode())
    with pytest.raises(VerificationError, match="no signature bundle found for"):
        run(local, sigstore, config)
