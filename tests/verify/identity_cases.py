"""Signing identities the pinned policy must reject, with the reason it gives.

Each case changes one claim of an otherwise valid GitHub Actions certificate,
so a passing rejection proves that this one claim is checked.
"""

from __future__ import annotations

from tests.verify.sigstore_factory import Claims

WORKFLOWS = "https://github.com/Aureliolo/synthorg/.github/workflows/"

POLICY_REJECTS = {
    "another-workflow-file": (
        Claims(san_uri=WORKFLOWS + "release.yml@refs/heads/main"),
        "does not match the pinned workflow",
    ),
    "tag-ref": (
        Claims(san_uri=WORKFLOWS + "docker.yml@refs/tags/v0.7.0"),
        "does not match the pinned workflow",
    ),
    "another-branch": (
        Claims(san_uri=WORKFLOWS + "docker.yml@refs/heads/dev"),
        "does not match the pinned workflow",
    ),
    "fork-same-path": (
        Claims(
            san_uri="https://github.com/attacker/synthorg/.github/workflows/"
            "docker.yml@refs/heads/main",
            source_repository_uri="https://github.com/attacker/synthorg",
            source_repository_id="999",
        ),
        "does not match the pinned workflow",
    ),
    "branch-suffix": (
        Claims(san_uri=WORKFLOWS + "docker.yml@refs/heads/main.evil"),
        "does not match the pinned workflow",
    ),
    "look-alike-organisation": (
        Claims(
            san_uri="https://github.com/Aureliolo-evil/synthorg/.github/workflows/"
            "docker.yml@refs/heads/main"
        ),
        "does not match the pinned workflow",
    ),
    "email-identity": (
        Claims(san_uri=""),
        "no URI subject alternative name",
    ),
    "second-san-elsewhere": (
        Claims(extra_sans=("https://github.com/attacker/x/.github/workflows/a.yml",)),
        "does not match the pinned workflow",
    ),
    "wrong-issuer-v2": (
        Claims(issuer_v2="https://issuer.example.invalid"),
        r"issuer \(v2\)",
    ),
    "wrong-issuer-v1-only": (
        Claims(issuer_v1="https://issuer.example.invalid", issuer_v2=None),
        r"issuer \(v1\)",
    ),
    "wrong-issuer-v1-beside-v2": (
        Claims(issuer_v1="https://issuer.example.invalid"),
        r"issuer \(v1\)",
    ),
    "no-issuer": (
        Claims(issuer_v1=None, issuer_v2=None),
        "no OIDC issuer",
    ),
    "wrong-repository-uri": (
        Claims(source_repository_uri="https://github.com/attacker/synthorg"),
        "OIDCSourceRepositoryURI",
    ),
    "wrong-repository-id": (
        Claims(source_repository_id="42"),
        "OIDCSourceRepositoryIdentifier",
    ),
    "self-hosted-runner": (
        Claims(runner_environment="self-hosted"),
        "OIDCRunnerEnvironment",
    ),
    "missing-runner": (
        Claims(runner_environment=None),
        "OIDCRunnerEnvironment",
    ),
}
