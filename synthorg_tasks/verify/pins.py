"""Load and validate ``pins.toml``: the image tags, digests and trust anchors.

The pins decide which images are trusted, so the loader checks every entry
before any command renders or verifies. It checks the grammars, the DHI key
against its fingerprint, every Rekor key against its log id, HTTPS URLs and
the shape of the Sigstore SAN pattern.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from synthorg_tasks.errors import ConfigError
from synthorg_tasks.grammars import (
    DIGEST_RE,
    IMAGE_REF_RE,
    REGISTRY_RE,
    REPO_PREFIX_RE,
    TAG_RE,
)
from synthorg_tasks.resources import pins_path

__all__ = [
    "DhiImagePin",
    "DhiPins",
    "Pins",
    "RekorKeyPin",
    "RekorPins",
    "SigstoreIdentity",
    "SynthorgPins",
    "load_p256_key",
    "load_pins",
    "parse_pins",
    "pem_fingerprint",
    "spki_log_id",
]

HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SigstoreIdentity:
    """The certificate identity that SynthOrg image signatures must carry."""

    san_pattern: str
    issuer: str
    source_repository_uri: str
    source_repository_id: str
    runner_environment: str
    attestations_api: str


@dataclass(frozen=True)
class SynthorgPins:
    """The SynthOrg image registry, repository prefix, default release and identity."""

    registry: str
    repository_prefix: str
    default_image_tag: str
    images: tuple[str, ...]
    identity: SigstoreIdentity


@dataclass(frozen=True)
class DhiImagePin:
    """One Docker Hardened Image: repository, tag and pinned index digest."""

    repository: str
    tag: str
    index_digest: str


@dataclass(frozen=True)
class DhiPins:
    """The DHI registry, its signing key and the pinned images."""

    registry: str
    public_key_pem: str
    public_key_fingerprint: str
    images: dict[str, DhiImagePin]
    builder_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class RekorKeyPin:
    """A transparency-log key with its log id and the start of its validity."""

    public_key_pem: str
    log_id: str
    valid_from: datetime


@dataclass(frozen=True)
class RekorPins:
    """The Rekor log URL and the keys its entries may be signed with."""

    url: str
    keys: tuple[RekorKeyPin, ...]


@dataclass(frozen=True)
class Pins:
    """Every pin of ``pins.toml``, validated."""

    synthorg: SynthorgPins
    dhi: DhiPins
    data_init_image: str
    rekor: RekorPins
    source: str = "pins.toml"


def _normalise_pem(text: str) -> str:
    """Return PEM text with LF endings and exactly one trailing LF."""
    lines = text.replace("\r\n", "\n").strip().split("\n")
    return "\n".join(line.strip() for line in lines) + "\n"


def pem_fingerprint(pem: str) -> str:
    """Return the hex SHA-256 of the normalised PEM text."""
    return hashlib.sha256(_normalise_pem(pem).encode("ascii")).hexdigest()


# DER prefix of a SubjectPublicKeyInfo for id-ecPublicKey on prime256v1
# (OIDs 1.2.840.10045.2.1 and 1.2.840.10045.3.1.7), followed by a 65-byte
# uncompressed point.
_P256_SPKI_PREFIX = bytes.fromhex(
    "3059301306072a8648ce3d020106082a8648ce3d030107034200"
)
_P256_SPKI_LENGTH = len(_P256_SPKI_PREFIX) + 65


def _spki_der(pem: str, what: str) -> bytes:
    """Return the DER of a P-256 public key PEM, checked by its structure.

    The structure check keeps rendering fast; the verifiers parse the key with
    ``cryptography`` before they use it, which also checks the point.
    """
    lines = _normalise_pem(pem).strip().split("\n")
    if (
        len(lines) < 3
        or lines[0] != "-----BEGIN PUBLIC KEY-----"
        or lines[-1] != "-----END PUBLIC KEY-----"
    ):
        raise ConfigError(f"pins: {what} is not a PEM public key")
    try:
        der = base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error as exc:
        raise ConfigError(f"pins: {what} has invalid base64 ({exc})") from exc
    if (
        len(der) != _P256_SPKI_LENGTH
        or not der.startswith(_P256_SPKI_PREFIX)
        or der[len(_P256_SPKI_PREFIX)] != 0x04
    ):
        raise ConfigError(f"pins: {what} must be an ECDSA P-256 key")
    return der


def load_p256_key(pem: str, what: str = "key") -> Any:
    """Parse a pinned P-256 public key with ``cryptography`` (point included)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    _spki_der(pem, what)
    try:
        key = serialization.load_pem_public_key(_normalise_pem(pem).encode("ascii"))
    except ValueError as exc:
        raise ConfigError(f"pins: {what} is not a valid P-256 key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise ConfigError(f"pins: {what} must be an ECDSA P-256 key")
    return key


def spki_log_id(pem: str) -> str:
    """Return the Rekor log id of a key: hex SHA-256 of its DER SubjectPublicKeyInfo."""
    return hashlib.sha256(_spki_der(pem, "Rekor key")).hexdigest()


class _Reader:
    """Typed access to the TOML document, with messages that name the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, detail: str) -> ConfigError:
        return ConfigError(
            f"pins file {self.source}: {key} {detail}",
            hints=["restore config/pins.toml or run 'invoke pins.check'"],
        )

    def table(self, doc: dict[str, Any], key: str, path: str) -> dict[str, Any]:
        value = doc.get(key)
        if not isinstance(value, dict):
            raise self.fail(f"{path}{key}", "is missing or not a table")
        return value

    def string(
        self, doc: dict[str, Any], key: str, path: str, pattern: re.Pattern[str] | None
    ) -> str:
        value = doc.get(key)
        if not isinstance(value, str):
            raise self.fail(f"{path}{key}", "is missing or not a string")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(
                f"{path}{key}", f"= {value!r} does not match {pattern.pattern}"
            )
        return value

    def https(self, doc: dict[str, Any], key: str, path: str) -> str:
        value = self.string(doc, key, path, None)
        if not value.startswith("https://"):
            raise self.fail(f"{path}{key}", f"= {value!r} must be an https:// URL")
        return value.rstrip("/")


def _check_san_pattern(reader: _Reader, pattern: str) -> None:
    key = "synthorg.identity.san_pattern"
    if not pattern.startswith("^https://github\\.com/"):
        raise reader.fail(key, "must start with ^https://github\\.com/")
    if not pattern.endswith("$"):
        raise reader.fail(key, "must end with $")
    depth = 0
    for index, char in enumerate(pattern):
        escaped = index > 0 and pattern[index - 1] == "\\"
        if escaped:
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            raise reader.fail(key, "must not contain | outside parentheses")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise reader.fail(key, f"does not compile ({exc})") from exc


def _parse_synthorg(reader: _Reader, doc: dict[str, Any]) -> SynthorgPins:
    table = reader.table(doc, "synthorg", "")
    ident = reader.table(table, "identity", "synthorg.")
    path = "synthorg.identity."
    identity = SigstoreIdentity(
        san_pattern=reader.string(ident, "san_pattern", path, None),
        issuer=reader.https(ident, "issuer", path),
        source_repository_uri=reader.https(ident, "source_repository_uri", path),
        source_repository_id=reader.string(
            ident, "source_repository_id", path, re.compile(r"^[0-9]+$")
        ),
        runner_environment=reader.string(ident, "runner_environment", path, None),
        attestations_api=reader.https(ident, "attestations_api", path),
    )
    _check_san_pattern(reader, identity.san_pattern)
    images = table.get("images")
    if not (
        isinstance(images, list)
        and images
        and all(isinstance(i, str) and re.fullmatch(r"[a-z0-9-]+", i) for i in images)
    ):
        raise reader.fail("synthorg.images", "must be a non-empty list of image names")
    return SynthorgPins(
        registry=reader.string(table, "registry", "synthorg.", REGISTRY_RE),
        repository_prefix=reader.string(
            table, "repository_prefix", "synthorg.", REPO_PREFIX_RE
        ),
        default_image_tag=reader.string(
            table, "default_image_tag", "synthorg.", TAG_RE
        ),
        images=tuple(images),
        identity=identity,
    )


def _parse_dhi(reader: _Reader, doc: dict[str, Any]) -> DhiPins:
    table = reader.table(doc, "dhi", "")
    pem = reader.string(table, "public_key_pem", "dhi.", None)
    fingerprint = reader.string(table, "public_key_fingerprint", "dhi.", HEX64_RE)
    _spki_der(pem, "dhi.public_key_pem")
    if pem_fingerprint(pem) != fingerprint:
        raise reader.fail(
            "dhi.public_key_fingerprint",
            f"= {fingerprint} does not match the key (SHA-256 {pem_fingerprint(pem)})",
        )
    images_table = reader.table(table, "images", "dhi.")
    images: dict[str, DhiImagePin] = {}
    for name in ("postgres", "nats"):
        entry = reader.table(images_table, name, "dhi.images.")
        path = f"dhi.images.{name}."
        images[name] = DhiImagePin(
            repository=reader.string(entry, "repository", path, REPO_PREFIX_RE),
            tag=reader.string(entry, "tag", path, TAG_RE),
            index_digest=reader.string(entry, "index_digest", path, DIGEST_RE),
        )
    builder_ids = table.get("builder_ids", [])
    if not (
        isinstance(builder_ids, list) and all(isinstance(b, str) for b in builder_ids)
    ):
        raise reader.fail("dhi.builder_ids", "must be a list of strings")
    return DhiPins(
        registry=reader.string(table, "registry", "dhi.", REGISTRY_RE),
        public_key_pem=_normalise_pem(pem),
        public_key_fingerprint=fingerprint,
        images=images,
        builder_ids=tuple(builder_ids),
    )


def _parse_rekor(reader: _Reader, doc: dict[str, Any]) -> RekorPins:
    table = reader.table(doc, "rekor", "")
    raw_keys = table.get("keys")
    if not isinstance(raw_keys, list) or not raw_keys:
        raise reader.fail("rekor.keys", "must list at least one key")
    keys: list[RekorKeyPin] = []
    for index, entry in enumerate(raw_keys):
        path = f"rekor.keys[{index}]."
        if not isinstance(entry, dict):
            raise reader.fail(path[:-1], "is not a table")
        pem = reader.string(entry, "public_key_pem", path, None)
        log_id = reader.string(entry, "log_id", path, HEX64_RE)
        if spki_log_id(pem) != log_id:
            raise reader.fail(f"{path}log_id", f"= {log_id} does not match the key")
        valid_from = entry.get("valid_from")
        if isinstance(valid_from, str):
            try:
                valid_from = datetime.fromisoformat(valid_from.replace("Z", "+00:00"))
            except ValueError as exc:
                raise reader.fail(
                    f"{path}valid_from", "is not an RFC 3339 time"
                ) from exc
        if not isinstance(valid_from, datetime) or valid_from.tzinfo is None:
            raise reader.fail(f"{path}valid_from", "must be a time with a zone")
        keys.append(RekorKeyPin(_normalise_pem(pem), log_id, valid_from))
    return RekorPins(url=reader.https(table, "url", "rekor."), keys=tuple(keys))


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"pins file {source} is not valid TOML: {exc}") from exc
    import tomlkit  # Python 3.10 has no tomllib.
    from tomlkit.exceptions import ParseError

    try:
        return tomlkit.parse(text).unwrap()
    except ParseError as exc:
        raise ConfigError(f"pins file {source} is not valid TOML: {exc}") from exc


def parse_pins(text: str, source: str = "pins.toml") -> Pins:
    """Parse and validate the text of a pins file."""
    reader = _Reader(source)
    doc = _parse_toml(text, source)
    if doc.get("schema") != 1:
        raise reader.fail("schema", f"= {doc.get('schema')!r} is not supported (1)")
    support = reader.table(doc, "support_images", "")
    return Pins(
        synthorg=_parse_synthorg(reader, doc),
        dhi=_parse_dhi(reader, doc),
        data_init_image=reader.string(
            support, "data_init", "support_images.", IMAGE_REF_RE
        ),
        rekor=_parse_rekor(reader, doc),
        source=source,
    )


def load_pins(path: Path | None = None) -> Pins:
    """Load the packaged pins, or the file at ``path``."""
    target = path if path is not None else pins_path()
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the pins file {target}: {exc.strerror}"
        ) from exc
    return parse_pins(text, str(target))
