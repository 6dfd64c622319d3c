"""``pins.bump`` and ``pins.check`` on copies of the checkout's pins file."""

from __future__ import annotations

import difflib
import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from invoke.collection import Collection
from invoke.program import Program

from synthorg_tasks.errors import ConfigError, UsageError
from synthorg_tasks.lifecycle.pins import bump_pins, check_pins, checkout_pins_path
from synthorg_tasks.namespace import build_namespace
from synthorg_tasks.tasks import pins as pins_tasks
from synthorg_tasks.verify.pins import load_pins, pem_fingerprint, spki_log_id

DIGEST = "sha256:" + "4f" * 32


@pytest.fixture
def pins_file(tmp_path: Path) -> Path:
    target = tmp_path / "pins.toml"
    shutil.copyfile(checkout_pins_path(), target)
    target.chmod(0o644)
    return target


def _pem_file(folder: Path, name: str, key: object | None = None) -> Path:
    private = key or ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = folder / name
    path.write_bytes(pem)
    return path


def _changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), n=0
        )
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


@pytest.mark.parametrize(
    ("flags", "removed", "added"),
    [
        (
            {"image": "postgres", "tag": "19-debian13"},
            ['tag = "18-debian13"\n'],
            ['tag = "19-debian13"\n'],
        ),
        (
            {"image": "nats", "digest": DIGEST},
            [
                'index_digest = "sha256:081f7895b874bd1306e61bf631631ac47e227a1ea9c60'
                'bfd2551b9be2dec8370"\n'
            ],
            [f'index_digest = "{DIGEST}"\n'],
        ),
        (
            {"synthorg_tag": "0.8.1"},
            ['default_image_tag = "0.7.0"\n'],
            ['default_image_tag = "0.8.1"\n'],
        ),
        (
            {"image": "data-init", "tag": "1.39-musl", "digest": DIGEST},
            [
                'data_init = "busybox:1.38-musl@sha256:32b5cdad7cce41dfd53d0ae06baebcf'
                '8357a147ee7694dc706911c373bc30c37"\n'
            ],
            [f'data_init = "busybox:1.39-musl@{DIGEST}"\n'],
        ),
    ],
    ids=["postgres-tag", "nats-digest", "synthorg-tag", "data-init-tag-and-digest"],
)
def test_bump_changes_only_the_value(
    pins_file: Path, flags: dict[str, str], removed: list[str], added: list[str]
) -> None:
    before = pins_file.read_text(encoding="utf-8")

    changes = bump_pins(pins_file, **flags)  # type: ignore[arg-type]

    after = pins_file.read_text(encoding="utf-8")
    assert _changed_lines(before, after) == [
        *(f"-{line}" for line in removed),
        *(f"+{line}" for line in added),
    ]
    assert len(changes) == len(added)
    load_pins(pins_file)


def test_bump_tag_keeps_other_bytes(pins_file: Path) -> None:
    before = pins_file.read_bytes()
    bump_pins(pins_file, image="postgres", tag="19-debian13")
    after = pins_file.read_bytes()
    assert after == before.replace(b'tag = "18-debian13"', b'tag = "19-debian13"')


def test_bump_dhi_key_recomputes_fingerprint(pins_file: Path, tmp_path: Path) -> None:
    pem_path = _pem_file(tmp_path, "dhi.pub")
    pem = pem_path.read_text(encoding="ascii")
    before = pins_file.read_text(encoding="utf-8")

    changes = bump_pins(pins_file, dhi_key=pem_path)

    pins = load_pins(pins_file)
    assert pins.dhi.public_key_pem == pem
    assert pins.dhi.public_key_fingerprint == pem_fingerprint(pem)
    assert [change.key for change in changes] == [
        "dhi.public_key_pem",
        "dhi.public_key_fingerprint",
    ]
    after = pins_file.read_text(encoding="utf-8")
    assert f'public_key_pem = """\n{pem}"""\n' in after
    changed = _changed_lines(before, after)
    assert all("BEGIN" not in line and "END" not in line for line in changed)
    assert len([line for line in changed if line.startswith("+")]) == 3


def test_bump_rekor_key_recomputes_log_id(pins_file: Path, tmp_path: Path) -> None:
    pem_path = _pem_file(tmp_path, "rekor.pub")
    pem = pem_path.read_text(encoding="ascii")

    changes = bump_pins(pins_file, rekor_key=pem_path)

    pins = load_pins(pins_file)
    assert pins.rekor.keys[0].public_key_pem == pem
    assert pins.rekor.keys[0].log_id == spki_log_id(pem)
    assert [change.key for change in changes] == [
        "rekor.keys[0].public_key_pem",
        "rekor.keys[0].log_id",
    ]
    text = pins_file.read_text(encoding="utf-8")
    assert "# The public-good Rekor v1 log key.\n" in text
    assert 'valid_from = "2021-01-12T11:53:27Z"\n' in text


def test_bump_keeps_file_mode(pins_file: Path) -> None:
    pins_file.chmod(0o640)
    bump_pins(pins_file, image="postgres", tag="19-debian13")
    assert os.stat(pins_file).st_mode & 0o777 == 0o640


def test_bump_same_value_writes_nothing(pins_file: Path) -> None:
    os.utime(pins_file, (1_000_000, 1_000_000))
    assert bump_pins(pins_file, image="postgres", tag="18-debian13") == []
    assert os.stat(pins_file).st_mtime == 1_000_000


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({}, "nothing to change"),
        ({"tag": "1.0"}, "need --image"),
        ({"image": "postgres"}, "needs --tag, --digest or both"),
        ({"image": "redis", "tag": "7"}, "is not one of postgres, nats, data-init"),
        ({"image": "postgres", "tag": "-bad"}, "is not a valid image tag"),
        ({"image": "nats", "digest": "sha256:ABC"}, "is not sha256:<64 lowercase hex>"),
        ({"synthorg_tag": "a b"}, "is not a valid image tag"),
    ],
    ids=[
        "no-flags",
        "tag-without-image",
        "image-without-value",
        "unknown-image",
        "bad-tag",
        "bad-digest",
        "bad-synthorg-tag",
    ],
)
def test_bump_rejects_bad_flags(
    pins_file: Path, flags: dict[str, str], message: str
) -> None:
    before = pins_file.read_bytes()
    with pytest.raises(UsageError, match=message):
        bump_pins(pins_file, **flags)  # type: ignore[arg-type]
    assert pins_file.read_bytes() == before


@pytest.mark.parametrize("kind", ["rsa", "p384", "garbage"])
def test_bump_rejects_non_p256_key(pins_file: Path, tmp_path: Path, kind: str) -> None:
    if kind == "garbage":
        key_path = tmp_path / "key.pub"
        key_path.write_text("not a key\n", encoding="ascii")
    elif kind == "rsa":
        key_path = _pem_file(tmp_path, "key.pub", rsa.generate_private_key(65537, 2048))
    else:
        key_path = _pem_file(
            tmp_path, "key.pub", ec.generate_private_key(ec.SECP384R1())
        )
    before = pins_file.read_bytes()
    with pytest.raises(UsageError, match="--dhi-key"):
        bump_pins(pins_file, dhi_key=key_path)
    assert pins_file.read_bytes() == before


def test_bump_leaves_invalid_file_untouched(pins_file: Path) -> None:
    broken = pins_file.read_text(encoding="utf-8").replace("schema = 1", "schema = 2")
    pins_file.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError, match="schema"):
        bump_pins(pins_file, image="postgres", tag="19-debian13")
    assert pins_file.read_text(encoding="utf-8") == broken
    assert sorted(p.name for p in pins_file.parent.iterdir()) == ["pins.toml"]


def test_check_accepts_checkout_file() -> None:
    assert check_pins(checkout_pins_path()).dhi.registry == "dhi.io"


def test_check_rejects_edited_fingerprint(pins_file: Path) -> None:
    text = pins_file.read_text(encoding="utf-8").replace(
        "1d02bbccf149283ae6288d96264dcad3fb23ee1911d90324a48eab28e4cb8a5f", "0" * 64
    )
    pins_file.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="public_key_fingerprint"):
        check_pins(pins_file)


# -- the Invoke tasks -------------------------------------------------------------


def _run_task(argv: list[str]) -> int:
    namespace = Collection()
    namespace.add_collection(pins_tasks.pins_collection)
    program = Program(namespace=namespace, binary="invoke")
    try:
        program.run(["invoke", *argv], exit=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_task_bump_prints_changed_keys(
    pins_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pins_tasks, "checkout_pins_path", lambda: pins_file)
    code = _run_task(["pins.bump", "--image", "postgres", "--tag", "19-debian13"])
    assert code == 0
    assert capsys.readouterr().out == (
        "dhi.images.postgres.tag: 18-debian13 -> 19-debian13\n"
    )


def test_task_bump_bad_flag_exits_2(
    pins_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pins_tasks, "checkout_pins_path", lambda: pins_file)
    assert _run_task(["pins.bump", "--tag", "1.0"]) == 2
    assert "error: --tag and --digest need --image" in capsys.readouterr().err


@pytest.mark.parametrize(("valid", "code"), [(True, 0), (False, 1)], ids=["ok", "bad"])
def test_task_check_exit_code(
    pins_file: Path, monkeypatch: pytest.MonkeyPatch, valid: bool, code: int
) -> None:
    if not valid:
        pins_file.write_text("schema = 1\n", encoding="utf-8")
    monkeypatch.setattr(pins_tasks, "checkout_pins_path", lambda: pins_file)
    assert _run_task(["pins.check"]) == code


def test_task_bump_json_lists_changes(
    pins_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pins_tasks, "checkout_pins_path", lambda: pins_file)
    code = _run_task(["pins.bump", "--json", "--synthorg-tag", "0.9.0"])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "changed": [
            {"key": "synthorg.default_image_tag", "old": "0.7.0", "new": "0.9.0"}
        ]
    }


@pytest.mark.parametrize("include_dev", [True, False], ids=["checkout", "installed"])
def test_pins_collection_only_in_checkout(include_dev: bool) -> None:
    namespace = build_namespace(include_dev=include_dev)
    assert ("pins" in namespace.collections) is include_dev
    if include_dev:
        assert set(namespace.collections["pins"].tasks) == {"bump", "check"}
