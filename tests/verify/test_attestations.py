"""The GitHub attestations client and the SLSA provenance step."""

from __future__ import annotations

import hashlib
import json

import cramjam
import pytest
from sigstore.models import TrustedRoot

from synthorg_tasks.errors import AIR_GAPPED_HINT, TransportError, VerificationError
from synthorg_tasks.verify import attestations as att
from synthorg_tasks.verify import keyless
from synthorg_tasks.verify.pins import Pins
from tests.verify.http_stub import GitHubStub, Route
from tests.verify.memory_registry import MemoryRegistry
from tests.verify.publishing import ATTESTATIONS_PATH, Publisher
from tests.verify.sigstore_factory import Claims, SigstoreFactory, in_toto_statement

DIGEST = "sha256:" + hashlib.sha256(b"backend image").hexdigest()
REF = "registry.test.invalid/aureliolo/synthorg-backend:0.7.0"


def provenance(
    client: att.AttestationsClient, sigstore: SigstoreFactory, pins: Pins
) -> None:
    root = TrustedRoot.from_file(str(sigstore.trusted_root_path))
    att.verify_provenance(
        client,
        DIGEST,
        ref=REF,
        verifier=keyless.build_verifier(root),
        policy=keyless.identity_policy(pins.synthorg.identity),
    )


def slsa_bundle(sigstore: SigstoreFactory, **kwargs: object) -> str:
    claims = kwargs.pop("claims", None)
    payload = in_toto_statement(DIGEST.removeprefix("sha256:"), **kwargs)  # type: ignore[arg-type]
    return sigstore.dsse_bundle(payload, claims=claims)  # type: ignore[arg-type]


HOSTS = {
    "blob-subdomain": ("productionresultssa1.blob.core.windows.net", True),
    "blob-apex": ("blob.core.windows.net", False),
    "githubusercontent": ("objects.githubusercontent.com", True),
    "github-apex": ("github.com", True),
    "github-subdomain": ("api.github.com", True),
    "look-alike-apex": ("evilgithub.com", False),
    "suffix-attack": ("github.com.evil.invalid", False),
    "trailing-dot": ("github.com.", True),
    "upper-case": ("GitHub.com", True),
}


@pytest.mark.parametrize(("host", "allowed"), HOSTS.values(), ids=HOSTS.keys())
def test_production_host_list(host: str, allowed: bool) -> None:
    assert att.host_allowed(host, att.PRODUCTION_BUNDLE_HOSTS) is allowed


def test_production_defaults_are_exact() -> None:
    client = att.AttestationsClient("https://api.github.com/repos/a/b/attestations")
    assert client.allowed_bundle_hosts == (
        "*.blob.core.windows.net",
        "*.githubusercontent.com",
        "github.com",
        "*.github.com",
    )


def test_plain_http_api_outside_loopback_is_rejected() -> None:
    with pytest.raises(VerificationError, match="must use https"):
        att.AttestationsClient("http://api.github.com/repos/a/b/attestations")


def test_inline_bundle_verifies(
    attestations: att.AttestationsClient,
    sigstore: SigstoreFactory,
    pins: Pins,
    publish: Publisher,
) -> None:
    publish.provenance(DIGEST, [slsa_bundle(sigstore)])
    provenance(attestations, sigstore, pins)


def test_first_valid_entry_wins(
    attestations: att.AttestationsClient,
    sigstore: SigstoreFactory,
    pins: Pins,
    publish: Publisher,
) -> None:
    bad = slsa_bundle(sigstore, predicate_type="https://spdx.dev/Document")
    publish.provenance(DIGEST, [bad, slsa_bundle(sigstore)])
    provenance(attestations, sigstore, pins)


def test_token_goes_to_api_host_only(
    attestations: att.AttestationsClient,
    sigstore: SigstoreFactory,
    pins: Pins,
    publish: Publisher,
    github_stub: GitHubStub,
) -> None:
    github_stub.routes["/bundle"] = Route(200, slsa_bundle(sigstore).encode())
    publish.attestation_entries(
        DIGEST, [{"bundle_url": github_stub.url("/bundle", "localhost")}]
    )
    provenance(attestations, sigstore, pins)
    api, download = github_stub.requests
    assert api.headers.get("Authorization") == "Bearer test-token-not-a-secret"
    assert api.headers.get("X-GitHub-Api-Version") == "2022-11-28"
    assert api.headers.get("Accept") == "application/vnd.github+json"
    assert download.path == "/bundle"
    assert "Authorization" not in download.headers


def test_snappy_bundle_url_is_decoded(
    attestations: att.AttestationsClient,
    sigstore: SigstoreFactory,
    pins: Pins,
    publish: Publisher,
    github_stub: GitHubStub,
) -> None:
    body = bytes(cramjam.snappy.compress_raw(slsa_bundle(sigstore).encode()))
    github_stub.routes["/bundle"] = Route(
        200, body, {"Content-Type": "application/x-snappy"}
    )
    publish.attestation_entries(
        DIGEST, [{"bundle_url": github_stub.url("/bundle", "localhost")}]
    )
    provenance(attestations, sigstore, pins)


def test_redirect_within_allowed_hosts_is_followed(
    attestations: att.AttestationsClient,
    sigstore: SigstoreFactory,
    pins: Pins,
    publish: Publisher,
    github_stub: GitHubStub,
) -> None:
    github_stub.routes["/first"] = Route(302, headers={"Location": "/bundle"})
    github_stub.routes["/bundle"] = Route(200, slsa_bundle(sigstore).encode())
    publish.attestation_entries(
        DIGEST, [{"bundle_url": github_stub.url("/first", "localhost")}]
    )
    provenance(attestations, sigstore, pins)
    assert [r.path for r in github_stub.requests[1:]] == ["/first", "/bundle"]


def _reject_case(case: str, sigstore: SigstoreFactory, github_stub: GitHubStub) -> None:
    routes = github_stub.routes
    api = f"{ATTESTATIONS_PATH}/{DIGEST}"

    def entries(*items: dict[str, object]) -> None:
        body = json.dumps({"attestations": list(items)}).encode()
        routes[api] = Route(200, body, {"Content-Type": "application/json"})

    if case == "api-404":
        return
    if case == "empty-list":
        entries()
    elif case == "non-slsa-predicate":
        bundle = slsa_bundle(sigstore, predicate_type="https://spdx.dev/Document")
        entries({"bundle": json.loads(bundle)})
    elif case == "subject-mismatch":
        payload = in_toto_statement(hashlib.sha256(b"other").hexdigest())
        entries({"bundle": json.loads(sigstore.dsse_bundle(payload))})
    elif case == "wrong-payload-type":
        payload = in_toto_statement(DIGEST.removeprefix("sha256:"))
        bundle = sigstore.dsse_bundle(payload, payload_type="text/plain")
        entries({"bundle": json.loads(bundle)})
    elif case == "self-hosted-identity":
        bundle = slsa_bundle(sigstore, claims=Claims(runner_environment="self-hosted"))
        entries({"bundle": json.loads(bundle)})
    elif case == "message-signature-bundle":
        bundle = sigstore.message_bundle(DIGEST.removeprefix("sha256:"))
        entries({"bundle": json.loads(bundle)})
    elif case == "host-outside-list":
        entries({"bundle_url": "https://attestations.example.invalid/bundle"})
    elif case == "redirect-outside-list":
        routes["/hop"] = Route(
            302, headers={"Location": "https://attestations.example.invalid/b"}
        )
        entries({"bundle_url": github_stub.url("/hop", "localhost")})
    elif case == "redirect-to-api-host":
        routes["/hop"] = Route(302, headers={"Location": github_stub.url("/bundle")})
        entries({"bundle_url": github_stub.url("/hop", "localhost")})
    elif case == "too-many-redirects":
        routes["/loop"] = Route(302, headers={"Location": "/loop"})
        entries({"bundle_url": github_stub.url("/loop", "localhost")})
    elif case == "oversize-api-response":
        routes[api] = Route(200, b" " * (att.MAX_API_RESPONSE_BYTES + 1))
    elif case == "oversize-unannounced-download":
        routes["/bundle"] = Route(
            200, b" " * (att.MAX_BUNDLE_DOWNLOAD_BYTES + 1), send_length=False
        )
        entries({"bundle_url": github_stub.url("/bundle", "localhost")})
    elif case == "snappy-bomb":
        bomb = bytes(cramjam.snappy.compress_raw(b"\0" * (17 * 1024 * 1024)))
        assert len(bomb) < att.MAX_BUNDLE_DOWNLOAD_BYTES
        routes["/bundle"] = Route(200, bomb, {"Content-Type": "application/x-snappy"})
        entries({"bundle_url": github_stub.url("/bundle", "localhost")})
    elif case == "neither-bundle-nor-url":
        entries({"repository_id": 1})
    else:
        raise AssertionError(case)


REJECTS = {
    "api-404": "no provenance attestation found for " + REF,
    "empty-list": "no provenance attestation found for " + REF,
    "non-slsa-predicate": "is not SLSA provenance",
    "subject-mismatch": "no subject with digest",
    "wrong-payload-type": "DSSE payload type",
    "self-hosted-identity": "OIDCRunnerEnvironment",
    "message-signature-bundle": "no DSSE envelope",
    "host-outside-list": "not an allowed attestation host",
    "redirect-outside-list": "not an allowed attestation host",
    "redirect-to-api-host": "not an allowed attestation host",
    "too-many-redirects": "more than 5 redirects",
    "oversize-api-response": "byte limit",
    "oversize-unannounced-download": "exceeds the 5242880 byte limit",
    "snappy-bomb": "decodes to 17825792 bytes",
    "neither-bundle-nor-url": "neither bundle nor bundle_url",
}


@pytest.mark.parametrize(("case", "reason"), REJECTS.items(), ids=REJECTS.keys())
def test_provenance_rejects(
    attestations: att.AttestationsClient,
    sigstore: SigstoreFactory,
    pins: Pins,
    github_stub: GitHubStub,
    case: str,
    reason: str,
) -> None:
    _reject_case(case, sigstore, github_stub)
    with pytest.raises(VerificationError, match=reason) as caught:
        provenance(attestations, sigstore, pins)
    assert not isinstance(caught.value, TransportError)
    hosts = {r.host.split(":")[0] for r in github_stub.requests}
    assert hosts <= {"127.0.0.1", "localhost"}


def test_server_error_is_transport_error(
    attestations: att.AttestationsClient,
    sigstore: SigstoreFactory,
    pins: Pins,
    github_stub: GitHubStub,
) -> None:
    github_stub.routes[f"{ATTESTATIONS_PATH}/{DIGEST}"] = Route(503, b"busy")
    with pytest.raises(TransportError, match="HTTP 503") as caught:
        provenance(attestations, sigstore, pins)
    assert AIR_GAPPED_HINT in caught.value.hints


def test_unreachable_api_is_transport_error(
    sigstore: SigstoreFactory, pins: Pins, github_stub: GitHubStub
) -> None:
    client = att.AttestationsClient(
        "http://127.0.0.1:9/repos/a/b/attestations", timeout=2.0
    )
    with pytest.raises(TransportError, match=r"request to 127\.0\.0\.1:9 failed"):
        provenance(client, sigstore, pins)


def test_provenance_failure_names_image_and_step(
    pins: Pins,
    registry: MemoryRegistry,
    sigstore: SigstoreFactory,
    attestations: att.AttestationsClient,
    publish: Publisher,
) -> None:
    digest = publish.image("backend", "0.7.0")
    publish.dsse_signature("backend", digest)
    root = TrustedRoot.from_file(str(sigstore.trusted_root_path))
    with pytest.raises(VerificationError) as caught:
        keyless.verify_synthorg_image(
            "backend",
            "0.7.0",
            pins=pins,
            registry=registry,
            verifier=keyless.build_verifier(root),
            policy=keyless.identity_policy(pins.synthorg.identity),
            attestations=attestations,
        )
    assert caught.value.message == (
        f"verifying {REF}: provenance: no provenance attestation found for {REF}"
    )


SNAPPY = {
    "declared-too-large": (b"\xff\xff\xff\xff\x0f", "more than the"),
    "truncated-length": (b"\xff", "empty or truncated"),
    "corrupt-body": (b"\x05\xff\xff", "corrupt"),
}


@pytest.mark.parametrize(("body", "reason"), SNAPPY.values(), ids=SNAPPY.keys())
def test_snappy_decoder_rejects(body: bytes, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        att.decode_snappy(body)


def test_environment_token_is_sent_and_masked(
    monkeypatch: pytest.MonkeyPatch,
    sigstore: SigstoreFactory,
    pins: Pins,
    publish: Publisher,
    github_stub: GitHubStub,
) -> None:
    from synthorg_tasks.state.secrets import mask

    token = "ghp_" + "t" * 36
    monkeypatch.setenv("GITHUB_TOKEN", token)
    client = att.AttestationsClient(github_stub.base + ATTESTATIONS_PATH, timeout=5.0)
    publish.provenance(DIGEST, [slsa_bundle(sigstore)])
    provenance(client, sigstore, pins)
    assert github_stub.requests[0].headers.get("Authorization") == f"Bearer {token}"
    assert token not in mask(f"token {token} leaked")


def test_no_token_sends_no_authorization(
    monkeypatch: pytest.MonkeyPatch,
    sigstore: SigstoreFactory,
    pins: Pins,
    publish: Publisher,
    github_stub: GitHubStub,
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    client = att.AttestationsClient(github_stub.base + ATTESTATIONS_PATH, timeout=5.0)
    publish.provenance(DIGEST, [slsa_bundle(sigstore)])
    provenance(client, sigstore, pins)
    assert "Authorization" not in github_stub.requests[0].headers
