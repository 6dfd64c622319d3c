"""Publish a complete SynthOrg and DHI release to a real registry.

``RegistryWriter`` gives the product's registry client the write methods the
:class:`~tests.verify.publishing.Publisher` uses, and keeps an OCI referrers
index under the ``sha256-<hex>`` tag of each subject, because Debian's
docker-registry (distribution 2.8) has no referrers API.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from typing import Any

import requests

from synthorg_tasks.state.config import Config
from synthorg_tasks.verify.attestations import AttestationsClient
from synthorg_tasks.verify.pins import Pins
from synthorg_tasks.verify.registry import RegistryClient
from tests.verify.factories import (
    DhiImage,
    DhiOptions,
    LayerOptions,
    TrustKeys,
    build_dhi_image,
    make_pins,
)
from tests.verify.http_stub import GitHubStub
from tests.verify.memory_registry import (
    EMPTY_CONFIG,
    EMPTY_MEDIA_TYPE,
    OCI_INDEX,
    OCI_MANIFEST,
)
from tests.verify.publishing import ATTESTATIONS_PATH, Publisher
from tests.verify.sigstore_factory import SigstoreFactory


class CountingSession(requests.Session):
    """A session that counts every request it sends, from any thread."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self._lock = threading.Lock()

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        with self._lock:
            self.count += 1
        return super().request(*args, **kwargs)


class RegistryWriter:
    """Pushes images and referrers through the product's registry client."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self._manifests: dict[str, tuple[str, int]] = {}
        self._referrers: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def _push_manifest(
        self, repository: str, document: dict[str, Any], tag: str | None = None
    ) -> str:
        raw = json.dumps(document, separators=(",", ":")).encode()
        media_type = document["mediaType"]
        digest = self.client.push_manifest(
            repository, tag or _digest_of(raw), raw, media_type
        )
        self._manifests[digest] = (media_type, len(raw))
        return digest

    def _config_descriptor(self, repository: str) -> dict[str, Any]:
        digest = self.client.push_blob(repository, EMPTY_CONFIG)
        return {"mediaType": EMPTY_MEDIA_TYPE, "digest": digest, "size": 2}

    def push_image(self, repository: str, tag: str, content: bytes) -> str:
        layer = self.client.push_blob(repository, content)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self._config_descriptor(repository),
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer,
                    "size": len(content),
                }
            ],
        }
        return self._push_manifest(repository, document, tag)

    def push_referrer(
        self,
        repository: str,
        subject: str,
        payload: bytes,
        *,
        artifact_type: str,
        layer_media_type: str,
        manifest_artifact_type: str | None = None,
    ) -> str:
        layer = self.client.push_blob(repository, payload)
        subject_media, subject_size = self._manifests[subject]
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": manifest_artifact_type or artifact_type,
            "config": self._config_descriptor(repository),
            "layers": [
                {"mediaType": layer_media_type, "digest": layer, "size": len(payload)}
            ],
            "subject": {
                "mediaType": subject_media,
                "digest": subject,
                "size": subject_size,
            },
        }
        digest = self._push_manifest(repository, document)
        listed = self._referrers.setdefault((repository, subject), [])
        listed.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": self._manifests[digest][1],
                "artifactType": artifact_type,
            }
        )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed}
        tag = "sha256-" + subject.removeprefix("sha256:")
        self._push_manifest(repository, index, tag)
        return digest


def _digest_of(raw: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass
class LocalRelease:
    """Four published images and what a verification call against them needs."""

    host: str
    pins: Pins
    config: Config
    attestations: AttestationsClient
    session: CountingSession
    dhi: dict[str, DhiImage]

    def registry_factory(self, host: str) -> RegistryClient:
        assert host == self.host
        return RegistryClient(host, timeout=10, session=self.session)


def publish_local_release(
    host: str,
    sigstore: SigstoreFactory,
    github_stub: GitHubStub,
    trust_keys: TrustKeys,
    config: Config,
) -> LocalRelease:
    """Publish backend, web, postgres and nats to the registry at ``host``."""
    writer = RegistryWriter(RegistryClient(host, timeout=10))
    publisher = Publisher(writer, sigstore, github_stub)  # type: ignore[arg-type]
    for name in ("backend", "web"):
        publisher.release(name, config.image_tag)
    dhi: dict[str, DhiImage] = {}
    for service, tag in (("postgres", "18-debian13"), ("nats", "2.14-debian13")):
        options = DhiOptions(
            repository=service, tag=tag, layers=[LayerOptions(embed_proof=True)]
        )
        image = build_dhi_image(trust_keys, options)
        image.publish(writer.client)
        dhi[service] = image
    pins = make_pins(
        trust_keys, {name: image.pin for name, image in dhi.items()}, registry=host
    )
    synthorg = dataclasses.replace(pins.synthorg, registry=host)
    pins = dataclasses.replace(pins, synthorg=synthorg)
    attestations = AttestationsClient(
        github_stub.base + ATTESTATIONS_PATH,
        timeout=10,
        allowed_bundle_hosts=("localhost",),
    )
    return LocalRelease(host, pins, config, attestations, CountingSession(), dhi)
