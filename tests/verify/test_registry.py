"""The OCI registry client against a loopback stub registry.

The stub can lie (bytes that do not match their digest, disagreeing digest
headers, oversized bodies), require token auth, and switch its referrers
API off, so every check of the client can fail here on purpose.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from synthorg_tasks.errors import AIR_GAPPED_HINT, TransportError, VerificationError
from synthorg_tasks.verify.registry import (
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryAuthError,
    RegistryClient,
    RegistryNotFound,
    is_loopback_host,
    sha256_digest,
)
from tests.verify.factories import (
    EMPTY_CONFIG,
    EMPTY_MEDIA_TYPE,
    TrustKeys,
    build_dhi_image,
    canonical,
    descriptor,
    oci_manifest,
)
from tests.verify.stub_server import StubServer

REPO = "library/demo"


def _push_manifest(client: RegistryClient, tag: str = "v1") -> tuple[str, bytes]:
    client.push_blob(REPO, EMPTY_CONFIG)
    layer = b"layer bytes"
    client.push_blob(REPO, layer)
    raw = canonical(oci_manifest([descriptor("text/plain", layer)]))
    return client.push_manifest(REPO, tag, raw, OCI_MANIFEST), raw


# -- hosts and schemes -------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("[::1]:5000", True),
        ("dhi.io", False),
        ("128.0.0.1:5000", False),
        ("localhost.example.com", False),
        ("[::2]:5000", False),
    ],
    ids=str,
)
def test_loopback_host_detection(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
    expected = "http" if loopback else "https"
    assert RegistryClient(host).base_url == f"{expected}://{host}"


@pytest.mark.parametrize("host", ["", "dhi.io/path", "http://dhi.io", "a b"])
def test_invalid_host_rejected(host: str) -> None:
    with pytest.raises(ValueError, match="is not a host"):
        RegistryClient(host)


@pytest.mark.parametrize(
    "reference", ["UPPER/Case", "../etc", "a//b", "-leading"], ids=str
)
def test_invalid_repository_rejected(reference: str) -> None:
    with pytest.raises(ValueError, match="repository"):
        RegistryClient("127.0.0.1:9").get_manifest(reference, "latest")


# -- manifests and tags ------------------------------------------------------


def test_manifest_round_trip(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest, raw = _push_manifest(client)
    manifest = client.get_manifest(REPO, digest)
    assert manifest.digest == digest
    assert manifest.raw == raw
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.document == json.loads(raw)
    assert client.resolve_tag(REPO, "v1") == digest


def test_manifest_request_accepts_all_four_types(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest, _raw = _push_manifest(client)
    stub.state.log.clear()
    client.get_manifest(REPO, digest)
    assert len(stub.state.log) == 1
    assert len(MANIFEST_ACCEPT) == 4


def test_resolve_tag_falls_back_to_get(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest, _raw = _push_manifest(client)
    stub.state.digest_headers[f"/v2/{REPO}/manifests/v1"] = ""
    assert client.resolve_tag(REPO, "v1") == digest
    methods = [method for method, path, _auth in stub.state.log if "v1" in path]
    assert methods[-2:] == ["HEAD", "GET"]


def test_resolve_tag_after_head_405(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest, _raw = _push_manifest(client)
    stub.state.status[f"/v2/{REPO}/manifests/v1"] = 405
    with pytest.raises(VerificationError, match="unexpected HTTP 405"):
        client.resolve_tag(REPO, "v1")
    assert stub.state.log[-1][0] == "GET"
    del stub.state.status[f"/v2/{REPO}/manifests/v1"]
    assert client.resolve_tag(REPO, "v1") == digest


def test_disagreeing_digest_header_rejected(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    _push_manifest(client)
    stub.state.digest_headers[f"/v2/{REPO}/manifests/v1"] = "sha256:" + "0" * 64
    with pytest.raises(VerificationError, match="disagrees with the SHA-256"):
        client.get_manifest(REPO, "v1")


def test_manifest_bytes_must_match_digest(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest, raw = _push_manifest(client)
    stub.state.corrupt[f"/v2/{REPO}/manifests/{digest}"] = raw + b" "
    with pytest.raises(VerificationError, match="not to the requested digest"):
        client.get_manifest(REPO, digest)


def test_manifest_over_cap_rejected(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest, raw = _push_manifest(client)
    with pytest.raises(VerificationError, match="exceed the limit of 10 bytes"):
        client.get_manifest(REPO, digest, max_bytes=10)
    assert client.get_manifest(REPO, digest, max_bytes=len(raw)).raw == raw


def test_malformed_manifest_rejected(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    client.push_manifest(REPO, "broken", b"{not json", OCI_MANIFEST)
    with pytest.raises(VerificationError, match="is not valid JSON"):
        client.get_manifest(REPO, "broken")


def test_missing_manifest_is_not_found(stub: StubServer) -> None:
    with pytest.raises(RegistryNotFound, match="MANIFEST_UNKNOWN"):
        RegistryClient(stub.host).get_manifest(REPO, "absent")


# -- blobs -------------------------------------------------------------------


def test_blob_round_trip(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest = client.push_blob(REPO, b"payload")
    assert digest == sha256_digest(b"payload")
    assert client.get_blob(REPO, digest, max_bytes=7) == b"payload"


@pytest.mark.parametrize(
    "declared_length", [True, False], ids=["content-length", "streamed"]
)
def test_blob_over_cap_rejected(stub: StubServer, declared_length: bool) -> None:
    client = RegistryClient(stub.host)
    data = b"x" * 200_000
    digest = client.push_blob(REPO, data)
    if not declared_length:
        stub.state.omit_length.add(f"/v2/{REPO}/blobs/{digest}")
    with pytest.raises(VerificationError, match="limit of 199999 bytes"):
        client.get_blob(REPO, digest, max_bytes=199_999)
    assert client.get_blob(REPO, digest, max_bytes=200_000) == data


def test_blob_bytes_must_match_digest(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest = client.push_blob(REPO, b"payload")
    stub.state.corrupt[f"/v2/{REPO}/blobs/{digest}"] = b"paylOad"
    with pytest.raises(VerificationError, match="not to the requested digest"):
        client.get_blob(REPO, digest, max_bytes=100)


# -- token auth --------------------------------------------------------------


def _docker_config(folder: Path, host: str, user: str, password: str) -> None:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {host: {"auth": token}}}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


def test_token_auth_with_docker_credentials(
    stub: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub.state.token_auth = True
    stub.state.credentials = ("robot", "s3cret-pass")
    _docker_config(tmp_path, stub.host, "robot", "s3cret-pass")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    client = RegistryClient(stub.host)
    digest = client.push_blob(REPO, b"secret layer")
    stub.state.log.clear()

    assert client.get_blob(REPO, digest, max_bytes=100) == b"secret layer"

    log = stub.state.log
    assert len(log) == 3
    assert log[0][2] is None
    assert log[1][1].startswith("/token?")
    assert "scope=repository%3Alibrary%2Fdemo%3Apull" in log[1][1]
    assert "service=stub" in log[1][1]
    assert log[1][2] == "Basic " + base64.b64encode(b"robot:s3cret-pass").decode()
    assert log[2][2] == f"Bearer {stub.state.token}"


def test_identity_token_exchanged_by_post(
    stub: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest, _raw = _push_manifest(RegistryClient(stub.host))
    stub.state.token_auth = True
    stub.state.identity_token = "refresh-token-from-docker-login"
    config = {"auths": {stub.host: {"identitytoken": stub.state.identity_token}}}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    stub.state.log.clear()

    assert RegistryClient(stub.host).resolve_tag(REPO, "v1") == digest

    token_requests = [
        entry for entry in stub.state.log if entry[1].startswith("/token")
    ]
    assert len(token_requests) == 1
    method, path, _auth = token_requests[0]
    assert method == "POST"
    assert "grant_type=refresh_token" in path
    assert "scope=repository%3Alibrary%2Fdemo%3Apull" in path
    assert stub.state.log[-1][2] == f"Bearer {stub.state.token}"


def test_token_reused_then_renewed(
    stub: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    stub.state.token_auth = True
    client = RegistryClient(stub.host)
    digest = client.push_blob(REPO, b"layer")
    client.get_blob(REPO, digest, max_bytes=100)
    stub.state.log.clear()

    client.get_blob(REPO, digest, max_bytes=100)
    assert [auth for _method, _path, auth in stub.state.log] == [
        f"Bearer {stub.state.token}"
    ]

    old_token, stub.state.token = stub.state.token, "rotated-token-value"
    stub.state.log.clear()
    client.get_blob(REPO, digest, max_bytes=100)
    assert [auth for _method, _path, auth in stub.state.log] == [
        f"Bearer {old_token}",
        None,
        "Bearer rotated-token-value",
    ]


def test_anonymous_token_when_no_credentials(
    stub: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    digest, _raw = _push_manifest(RegistryClient(stub.host))
    stub.state.token_auth = True
    stub.state.log.clear()
    assert RegistryClient(stub.host).resolve_tag(REPO, "v1") == digest
    assert [auth for _method, _path, auth in stub.state.log] == [
        None,
        None,
        f"Bearer {stub.state.token}",
    ]


def test_token_refused_raises_auth_error(
    stub: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub.state.token_auth = True
    stub.state.credentials = ("robot", "right-password")
    _docker_config(tmp_path, stub.host, "robot", "wrong-password")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    with pytest.raises(
        RegistryAuthError, match="refused the Docker credentials"
    ) as raised:
        RegistryClient(stub.host).get_manifest(REPO, "v1")
    assert raised.value.status == 401
    assert "wrong-password" not in str(raised.value)


def test_token_realm_must_be_https_or_loopback(stub: StubServer) -> None:
    stub.state.status[f"/v2/{REPO}/manifests/v1"] = 401
    stub.state.headers[f"/v2/{REPO}/manifests/v1"] = {
        "WWW-Authenticate": 'Bearer realm="http://auth.example.test/token"'
    }
    with pytest.raises(
        VerificationError, match=re.escape("rejected http://auth.example.test")
    ):
        RegistryClient(stub.host).get_manifest(REPO, "v1")


def test_basic_challenge_raises_auth_error(stub: StubServer) -> None:
    stub.state.status[f"/v2/{REPO}/manifests/v1"] = 401
    stub.state.headers[f"/v2/{REPO}/manifests/v1"] = {
        "WWW-Authenticate": 'Basic realm="registry"'
    }
    with pytest.raises(RegistryAuthError, match="without offering a Bearer token"):
        RegistryClient(stub.host).get_manifest(REPO, "v1")


# -- redirects and transport -------------------------------------------------


def test_redirect_to_plain_http_host_rejected(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest = client.push_blob(REPO, b"payload")
    path = f"/v2/{REPO}/blobs/{digest}"
    stub.state.status[path] = 307
    stub.state.headers[path] = {"Location": "http://storage.example.test/blob"}
    with pytest.raises(
        VerificationError, match=re.escape("rejected http://storage.example.test")
    ):
        client.get_blob(REPO, digest, max_bytes=100)


def test_redirect_within_loopback_followed(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    digest = client.push_blob(REPO, b"payload")
    client.push_blob("mirror/demo", b"payload")
    path = f"/v2/{REPO}/blobs/{digest}"
    stub.state.status[path] = 307
    stub.state.headers[path] = {"Location": f"/v2/mirror/demo/blobs/{digest}"}
    assert client.get_blob(REPO, digest, max_bytes=100) == b"payload"


def test_server_error_is_transport_error(stub: StubServer) -> None:
    stub.state.status[f"/v2/{REPO}/manifests/v1"] = 503
    with pytest.raises(TransportError, match="HTTP 503") as raised:
        RegistryClient(stub.host).get_manifest(REPO, "v1")
    assert AIR_GAPPED_HINT in raised.value.hints


def test_closed_port_is_transport_error() -> None:
    with pytest.raises(
        TransportError, match=re.escape("cannot connect to 127.0.0.1:9")
    ) as raised:
        RegistryClient("127.0.0.1:9", timeout=2).get_manifest(REPO, "v1")
    assert raised.value.hints == [AIR_GAPPED_HINT]
    assert raised.value.__cause__ is not None


# -- referrers ---------------------------------------------------------------


def test_referrers_api_and_tag_fallback_agree(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys)
    client = RegistryClient(stub.host)
    image.publish(client)
    subjects = [image.platform_digest, image.attestation_digest]

    from_api = [client.referrers("postgres", digest) for digest in subjects]
    stub.state.referrers_api = False
    from_tag = [client.referrers("postgres", digest) for digest in subjects]

    assert from_api == from_tag
    assert [d.digest for d in from_api[0]] == [image.attestation_digest]
    assert [d.digest for d in from_api[1]] == [image.signature_digest]


@pytest.mark.parametrize("server_filters", [True, False], ids=["server", "client"])
def test_referrers_artifact_type_filter(
    stub: StubServer, trust_keys: TrustKeys, server_filters: bool
) -> None:
    image = build_dhi_image(trust_keys)
    client = RegistryClient(stub.host)
    image.publish(client)
    stub.state.filter_on_server = server_filters
    subject = image.attestation_digest
    wanted = "application/vnd.dev.cosign.artifact.sig.v1+json"
    assert len(client.referrers("postgres", subject, artifact_type=wanted)) == 1
    assert client.referrers("postgres", subject, artifact_type="application/x") == []


def test_referrers_405_without_index_falls_back(
    stub: StubServer, trust_keys: TrustKeys
) -> None:
    image = build_dhi_image(trust_keys)
    client = RegistryClient(stub.host)
    image.publish(client)
    stub.state.status[f"/v2/postgres/referrers/{image.platform_digest}"] = 405
    found = client.referrers("postgres", image.platform_digest)
    assert [d.digest for d in found] == [image.attestation_digest]


def test_referrers_none_without_api_or_tag(stub: StubServer) -> None:
    stub.state.referrers_api = False
    assert RegistryClient(stub.host).referrers(REPO, "sha256:" + "1" * 64) == []


def test_referrers_tag_must_be_an_index(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    subject = "sha256:" + "2" * 64
    client.push_blob(REPO, EMPTY_CONFIG)
    raw = canonical(oci_manifest([descriptor(EMPTY_MEDIA_TYPE, EMPTY_CONFIG)]))
    client.push_manifest(REPO, subject.replace(":", "-"), raw, OCI_MANIFEST)
    stub.state.referrers_api = False
    with pytest.raises(VerificationError, match="not an OCI index"):
        client.referrers(REPO, subject)


def test_referrers_malformed_descriptor_rejected(stub: StubServer) -> None:
    client = RegistryClient(stub.host)
    subject = "sha256:" + "3" * 64
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": "md5:00", "size": 1}],
    }
    client.push_manifest(REPO, subject.replace(":", "-"), canonical(index), OCI_INDEX)
    stub.state.referrers_api = False
    with pytest.raises(VerificationError, match="is not sha256:<64 hex>"):
        client.referrers(REPO, subject)


def test_import_loads_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "import synthorg_tasks.verify.dhi, synthorg_tasks.verify.registry\n"
        "import synthorg_tasks.verify.rekor, synthorg_tasks.lifecycle.pins\n"
        "heavy = ('requests', 'cryptography', 'docker', 'rfc8785', 'tomlkit')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.strip() == ""
