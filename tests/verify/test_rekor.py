"""Merkle inclusion proofs, checkpoints and Rekor bundles, checked offline."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthorg_tasks.errors import AIR_GAPPED_HINT, TransportError, VerificationError
from synthorg_tasks.verify._crypto import load_p256_pem
from synthorg_tasks.verify.rekor import (
    RekorClient,
    leaf_hash,
    parse_bundle,
    root_from_inclusion_proof,
    verify_checkpoint,
    verify_inclusion,
    verify_log_entry,
)
from tests.verify.factories import (
    LOG_KEY_VALID_FROM,
    NOW,
    MerkleTree,
    SigningKey,
    TrustKeys,
    build_dhi_image,
    hashedrekord_body,
    make_checkpoint,
    make_pins,
    sign_set,
)
from tests.verify.stub_server import StubServer

LOG_KEY = SigningKey.generate()


def _flip(data: bytes, position: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([data[position] ^ 0x80]) + data[position + 1 :]


def _key(signing: SigningKey):  # type: ignore[no-untyped-def]
    return load_p256_pem(signing.public_pem.encode(), "test key")


# -- Merkle inclusion proofs -------------------------------------------------


@st.composite
def trees(draw: st.DrawFn) -> tuple[MerkleTree, int]:
    size = draw(st.integers(min_value=1, max_value=2000))
    leaves = [index.to_bytes(4, "big") + b"leaf" for index in range(size)]
    index = draw(st.integers(min_value=0, max_value=size - 1))
    return MerkleTree(leaves), index


@settings(max_examples=150, deadline=None)
@given(tree_and_index=trees())
def test_every_sampled_leaf_proof_verifies(
    tree_and_index: tuple[MerkleTree, int],
) -> None:
    tree, index = tree_and_index
    proof = tree.proof(index)
    verify_inclusion(
        index, tree.size, leaf_hash(tree.leaves[index]), proof, tree.root()
    )


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64, 100, 257])
def test_all_leaves_of_tree_verify(size: int) -> None:
    tree = MerkleTree([secrets.token_bytes(16) for _ in range(size)])
    root = tree.root()
    for index in range(size):
        leaf = leaf_hash(tree.leaves[index])
        verify_inclusion(index, size, leaf, tree.proof(index), root)


@settings(max_examples=150, deadline=None)
@given(tree_and_index=trees(), data=st.data())
def test_flipped_proof_byte_fails(
    tree_and_index: tuple[MerkleTree, int], data: st.DataObject
) -> None:
    tree, index = tree_and_index
    proof = tree.proof(index)
    leaf = leaf_hash(tree.leaves[index])
    target = data.draw(st.integers(min_value=0, max_value=len(proof)), label="target")
    byte = data.draw(st.integers(min_value=0, max_value=31), label="byte")
    root = tree.root()
    if target == len(proof):
        leaf = _flip(leaf, byte)
    else:
        proof[target] = _flip(proof[target], byte)
    with pytest.raises(VerificationError, match="inclusion proof"):
        verify_inclusion(index, tree.size, leaf, proof, root)


@settings(max_examples=150, deadline=None)
@given(tree_and_index=trees(), data=st.data())
def test_wrong_index_fails(
    tree_and_index: tuple[MerkleTree, int], data: st.DataObject
) -> None:
    tree, index = tree_and_index
    wrong = data.draw(
        st.integers(min_value=0, max_value=tree.size + 5).filter(lambda i: i != index),
        label="wrong index",
    )
    leaf = leaf_hash(tree.leaves[index])
    with pytest.raises(VerificationError, match="inclusion proof"):
        verify_inclusion(wrong, tree.size, leaf, tree.proof(index), tree.root())


@settings(max_examples=150, deadline=None)
@given(tree_and_index=trees(), data=st.data())
def test_wrong_size_fails(
    tree_and_index: tuple[MerkleTree, int], data: st.DataObject
) -> None:
    # An audit path alone does not bind the tree size: leaf 0 of trees of
    # 1025 and 1026 leaves has paths of the same shape. The signed checkpoint
    # binds it, so the proof is checked together with one, as Rekor entries are.
    tree, index = tree_and_index
    wrong = data.draw(
        st.integers(min_value=0, max_value=4100).filter(lambda n: n != tree.size),
        label="wrong size",
    )
    leaf = leaf_hash(tree.leaves[index])
    root = tree.root()
    checkpoint = make_checkpoint(LOG_KEY, tree.size, root)
    with pytest.raises(
        VerificationError, match=r"inclusion proof|checkpoint: tree size"
    ):
        _verify_against_checkpoint(
            index, wrong, leaf, tree.proof(index), root, checkpoint
        )


def _verify_against_checkpoint(
    index: int,
    size: int,
    leaf: bytes,
    proof: list[bytes],
    root: bytes,
    checkpoint: str,
) -> None:
    verify_inclusion(index, size, leaf, proof, root)
    verify_checkpoint(
        checkpoint,
        key=_key(LOG_KEY),
        log_id=LOG_KEY.log_id,
        tree_size=size,
        root_hash=root,
    )


@pytest.mark.parametrize(
    ("index", "size", "hashes", "reason"),
    [
        (0, 0, [], "outside a tree of size 0"),
        (3, 3, [], "outside a tree of size 3"),
        (0, 1, [b"\x00" * 32], "longer than the tree allows"),
        (0, 4, [b"\x00" * 32], "shorter than the tree needs"),
    ],
    ids=["empty-tree", "index-equals-size", "extra-hash", "missing-hash"],
)
def test_malformed_proof_shapes_fail(
    index: int, size: int, hashes: list[bytes], reason: str
) -> None:
    with pytest.raises(VerificationError, match=reason):
        root_from_inclusion_proof(index, size, b"\x00" * 32, hashes)


# -- checkpoints -------------------------------------------------------------


def test_checkpoint_verifies() -> None:
    log = SigningKey.generate()
    root = secrets.token_bytes(32)
    text = make_checkpoint(log, 42, root)
    verify_checkpoint(
        text, key=_key(log), log_id=log.log_id, tree_size=42, root_hash=root
    )


def test_checkpoint_with_extension_line_verifies() -> None:
    log = SigningKey.generate()
    root = secrets.token_bytes(32)
    note = f"origin\n7\n{base64.b64encode(root).decode()}\nTimestamp: 1\n"
    hint = bytes.fromhex(log.log_id)[:4]
    signature = base64.b64encode(hint + log.sign(note.encode())).decode()
    text = f"{note}\n\u2014 origin {signature}\n"
    verify_checkpoint(
        text, key=_key(log), log_id=log.log_id, tree_size=7, root_hash=root
    )


def test_checkpoint_skips_foreign_signature_lines() -> None:
    log, witness = SigningKey.generate(), SigningKey.generate()
    root = secrets.token_bytes(32)
    signed = make_checkpoint(log, 9, root)
    note = signed.split("\n\n")[0] + "\n"
    foreign_hint = bytes.fromhex(witness.log_id)[:4]
    foreign = base64.b64encode(foreign_hint + witness.sign(note.encode())).decode()
    text = signed.replace("\n\n", f"\n\n\u2014 witness {foreign}\n", 1)
    verify_checkpoint(
        text, key=_key(log), log_id=log.log_id, tree_size=9, root_hash=root
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda t: t.replace("\n\n", "\n"), "no blank line"),
        (lambda t: t.replace("\u2014 ", "- "), "malformed signature line"),
        (lambda t: t.replace("\n42\n", "\n43\n"), "tree size"),
        (lambda t: "other-origin" + t[t.index("\n") :], "signature does not verify"),
    ],
    ids=["no-blank-line", "ascii-dash", "size-line-edited", "origin-edited"],
)
def test_edited_checkpoint_fails(change, reason: str) -> None:  # type: ignore[no-untyped-def]
    log = SigningKey.generate()
    root = secrets.token_bytes(32)
    text = change(make_checkpoint(log, 42, root))
    with pytest.raises(VerificationError, match=reason):
        verify_checkpoint(
            text, key=_key(log), log_id=log.log_id, tree_size=42, root_hash=root
        )


def test_checkpoint_without_matching_key_hint_fails() -> None:
    log, other = SigningKey.generate(), SigningKey.generate()
    root = secrets.token_bytes(32)
    text = make_checkpoint(other, 5, root)
    with pytest.raises(VerificationError, match="no signature with the key hint"):
        verify_checkpoint(
            text, key=_key(log), log_id=log.log_id, tree_size=5, root_hash=root
        )


# -- a whole log entry -------------------------------------------------------


def _entry(keys: TrustKeys, integrated_time: int) -> tuple[str, bytes, bytes]:
    payload = b'{"critical":{}}'
    signature = keys.dhi.sign(payload)
    body = hashedrekord_body(
        hashlib.sha256(payload).hexdigest(), signature, keys.dhi.public_pem
    )
    tree = MerkleTree([b"first", body, b"third"])
    checkpoint = make_checkpoint(keys.rekor, 3, tree.root())
    fields = {
        "body": base64.b64encode(body).decode(),
        "integratedTime": integrated_time,
        "logIndex": 77,
        "logID": keys.rekor.log_id,
    }
    proof = {
        "logIndex": "1",
        "rootHash": base64.b64encode(tree.root()).decode(),
        "treeSize": "3",
        "hashes": [base64.b64encode(h).decode() for h in tree.proof(1)],
        "checkpoint": {"envelope": checkpoint},
    }
    bundle = {
        "verificationMaterial": {
            "tlogEntries": [
                {
                    "logIndex": "77",
                    "logId": {
                        "keyId": base64.b64encode(
                            bytes.fromhex(keys.rekor.log_id)
                        ).decode()
                    },
                    "integratedTime": str(integrated_time),
                    "inclusionPromise": {
                        "signedEntryTimestamp": base64.b64encode(
                            sign_set(keys.rekor, fields)
                        ).decode()
                    },
                    "inclusionProof": proof,
                    "canonicalizedBody": fields["body"],
                }
            ]
        }
    }
    return json.dumps(bundle), payload, signature


def _verify_offline(
    keys: TrustKeys, bundle: str, payload: bytes, signature: bytes
) -> int:
    return verify_log_entry(
        bundle,
        payload=payload,
        signature=signature,
        signer_spki=keys.dhi.spki_der,
        rekor=make_pins(keys, {}).rekor,
        client=None,
        now=NOW,
    )


def test_embedded_log_entry_verifies(trust_keys: TrustKeys) -> None:
    bundle, payload, signature = _entry(trust_keys, int(NOW.timestamp()) - 60)
    index = _verify_offline(trust_keys, bundle, payload, signature)
    assert index == 77


@pytest.mark.parametrize(
    ("integrated", "reason"),
    [
        (LOG_KEY_VALID_FROM - timedelta(seconds=1), "precedes the validity"),
        (NOW + timedelta(hours=1), "lies in the future"),
    ],
    ids=["before-key-validity", "in-the-future"],
)
def test_integrated_time_outside_validity_fails(
    trust_keys: TrustKeys,
    integrated,
    reason: str,  # type: ignore[no-untyped-def]
) -> None:
    bundle, payload, signature = _entry(trust_keys, int(integrated.timestamp()))
    with pytest.raises(VerificationError, match=reason):
        _verify_offline(trust_keys, bundle, payload, signature)


def test_cosign_bundle_without_client_fails(trust_keys: TrustKeys) -> None:
    payload = b"{}"
    signature = trust_keys.dhi.sign(payload)
    body = hashedrekord_body(
        hashlib.sha256(payload).hexdigest(), signature, trust_keys.dhi.public_pem
    )
    fields = {
        "body": base64.b64encode(body).decode(),
        "integratedTime": int(NOW.timestamp()) - 5,
        "logIndex": 3,
        "logID": trust_keys.rekor.log_id,
    }
    bundle = json.dumps(
        {
            "SignedEntryTimestamp": base64.b64encode(
                sign_set(trust_keys.rekor, fields)
            ).decode(),
            "Payload": fields,
        }
    )
    with pytest.raises(VerificationError, match="embeds none and no log client"):
        _verify_offline(trust_keys, bundle, payload, signature)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"Payload": {}}', "Payload.body is missing"),
        (
            '{"Payload": {"body": "e30=", "integratedTime": -1, "logIndex": 1,'
            ' "logID": "00"}}',
            "integratedTime is missing or not a non-negative integer",
        ),
        (
            '{"verificationMaterial": {"tlogEntries": []}}',
            "exactly one tlogEntries item",
        ),
    ],
    ids=["not-json", "array", "no-body", "negative-time", "no-tlog-entries"],
)
def test_malformed_bundle_fails(text: str, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        parse_bundle(text)


# -- the log API client ------------------------------------------------------


def test_log_api_over_plain_http_rejected() -> None:
    client = RekorClient("http://rekor.example.test")
    with pytest.raises(
        VerificationError, match=r"rejected http://rekor\.example\.test"
    ):
        client.entry_by_index(1)


def test_log_api_server_error_is_transport_error(stub: StubServer) -> None:
    stub.state.status["/api/v1/log/entries"] = 503
    with pytest.raises(TransportError, match="HTTP 503") as raised:
        RekorClient(stub.url).entry_by_index(1)
    assert AIR_GAPPED_HINT in raised.value.hints


def test_log_api_entry_parsed(stub: StubServer, trust_keys: TrustKeys) -> None:
    image = build_dhi_image(trust_keys)
    fixture = image.rekor_entries[0]
    stub.state.rekor_entries[fixture.log_index] = fixture.document
    entry = RekorClient(stub.url).entry_by_index(fixture.log_index)
    logged = next(iter(fixture.document.values()))
    assert entry.set_payload() == {
        "body": logged["body"],
        "integratedTime": logged["integratedTime"],
        "logIndex": logged["logIndex"],
        "logID": logged["logID"],
    }
    assert entry.inclusion_proof is not None
    assert (
        entry.inclusion_proof.tree_size
        == logged["verification"]["inclusionProof"]["treeSize"]
    )


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({}, "expected exactly one entry"),
        ({"a": {}, "b": {}}, "expected exactly one entry"),
        ({"a": {"body": "e30="}}, "verification is missing"),
    ],
    ids=["empty", "two-entries", "no-verification"],
)
def test_log_api_malformed_entry_rejected(
    stub: StubServer, document: dict[str, object], reason: str
) -> None:
    stub.state.rekor_entries[5] = document
    with pytest.raises(VerificationError, match=reason):
        RekorClient(stub.url).entry_by_index(5)
