"""An in-memory OCI registry for the offline verification tests.

It implements the read interface of the product's registry client
(``resolve_tag``, ``get_manifest``, ``get_blob``, ``referrers``), content
addresses everything it stores, enforces the size caps the caller passes, and
counts every read so that tests can assert that a cached verification made no
request at all.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from synthorg_tasks.errors import VerificationError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    raw: bytes
    document: dict[str, Any]


class MemoryRegistry:
    """Blobs, manifests, tags and subject-linked referrers for one host."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.tags: dict[tuple[str, str], str] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self._lock:
            self.requests.append(what)

    # -- writes (test setup only) ------------------------------------------

    def push_blob(self, data: bytes) -> str:
        digest = sha256(data)
        self.blobs[digest] = data
        return digest

    def push_manifest(
        self, repository: str, document: dict[str, Any], tag: str | None = None
    ) -> str:
        raw = json.dumps(document, separators=(",", ":")).encode()
        digest = sha256(raw)
        media_type = document.get("mediaType", OCI_MANIFEST)
        self.manifests[digest] = (media_type, raw)
        if tag is not None:
            self.tags[(repository, tag)] = digest
        return digest

    def push_image(self, repository: str, tag: str, content: bytes) -> str:
        """Store a one-layer image under ``tag`` and return its manifest digest."""
        config = self.push_blob(EMPTY_CONFIG)
        layer = self.push_blob(content)
        return self.push_manifest(
            repository,
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": 2},
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer,
                        "size": len(content),
                    }
                ],
            },
            tag=tag,
        )

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
        """Store an artifact manifest whose ``subject`` is ``subject``."""
        config = self.push_blob(EMPTY_CONFIG)
        layer = self.push_blob(payload)
        subject_media, subject_raw = self.manifests[subject]
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": manifest_artifact_type or artifact_type,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": 2},
            "layers": [
                {"mediaType": layer_media_type, "digest": layer, "size": len(payload)}
            ],
            "subject": {
                "mediaType": subject_media,
                "digest": subject,
                "size": len(subject_raw),
            },
            "annotations": {"listed.artifact.type": artifact_type},
        }
        return self.push_manifest(repository, document)

    # -- the registry client's read interface -------------------------------

    def resolve_tag(self, repository: str, tag: str) -> str:
        self._count(f"resolve {repository}:{tag}")
        try:
            return self.tags[(repository, tag)]
        except KeyError:
            raise VerificationError(
                f"{self.host}/{repository}:{tag} not found"
            ) from None

    def get_manifest(
        self, repository: str, reference: str, *, max_bytes: int
    ) -> Manifest:
        self._count(f"manifest {repository}@{reference}")
        digest = self.tags.get((repository, reference), reference)
        if digest not in self.manifests:
            raise VerificationError(f"{self.host}/{repository}@{reference} not found")
        media_type, raw = self.manifests[digest]
        if len(raw) > max_bytes:
            raise VerificationError(f"manifest {digest} exceeds {max_bytes} bytes")
        return Manifest(digest, media_type, raw, json.loads(raw))

    def get_blob(self, repository: str, digest: str, *, max_bytes: int) -> bytes:
        self._count(f"blob {repository}@{digest}")
        data = self.blobs.get(digest)
        if data is None:
            raise VerificationError(f"blob {digest} not found")
        if len(data) > max_bytes:
            raise VerificationError(f"blob {digest} exceeds {max_bytes} bytes")
        return data

    def referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> list[Descriptor]:
        self._count(f"referrers {repository}@{digest}")
        found = []
        for manifest_digest, (media_type, raw) in self.manifests.items():
            document = json.loads(raw)
            if document.get("subject", {}).get("digest") != digest:
                continue
            listed = document.get("annotations", {}).get("listed.artifact.type")
            descriptor = Descriptor(media_type, manifest_digest, len(raw), listed)
            if artifact_type is None or descriptor.artifact_type == artifact_type:
                found.append(descriptor)
        return found
