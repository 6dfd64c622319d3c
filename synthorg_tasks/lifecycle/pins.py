"""Edit and check ``config/pins.toml`` of a checkout (``pins.bump``, ``pins.check``).

``bump_pins`` changes only the values it is given and leaves every other byte
of the file as it was (comments, order, quoting, blank lines), because the
file is reviewed by diff. The edited text must pass the pins loader before it
replaces the file atomically. Neither function contacts a registry.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthorg_tasks.errors import ConfigError, UsageError
from synthorg_tasks.grammars import DIGEST_RE, IMAGE_REF_RE, TAG_RE
from synthorg_tasks.state.atomic import atomic_write
from synthorg_tasks.verify.pins import (
    Pins,
    load_pins,
    parse_pins,
    pem_fingerprint,
    spki_log_id,
)

if TYPE_CHECKING:
    from tomlkit.toml_document import TOMLDocument

__all__ = [
    "BUMPABLE_IMAGES",
    "PinChange",
    "bump_pins",
    "check_pins",
    "checkout_pins_path",
]

_logger = logging.getLogger("synthorg.pins")

BUMPABLE_IMAGES = ("postgres", "nats", "data-init")
_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class PinChange:
    """One changed key of the pins file, with its old and new value."""

    key: str
    old: str
    new: str


def checkout_pins_path() -> Path:
    """Return ``config/pins.toml`` of the checkout this package runs from."""
    path = _CHECKOUT_ROOT / "config" / "pins.toml"
    if not (path.is_file() and (_CHECKOUT_ROOT / "pyproject.toml").is_file()):
        raise UsageError(
            f"pins.bump and pins.check work only in a checkout; {path} does not exist",
            hints=["run them with 'invoke' from a clone of synthorg-tasks"],
        )
    return path


def check_pins(path: Path) -> Pins:
    """Load and validate the pins file at ``path``; raise ``ConfigError`` if invalid."""
    return load_pins(path)


def _read_pem(path: Path, flag: str) -> str:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc}") from exc
    lines = text.replace("\r\n", "\n").strip().split("\n")
    return "\n".join(line.strip() for line in lines) + "\n"


def _set_string(
    table: Any, key: str, value: str, dotted: str, changes: list[PinChange]
) -> None:
    """Replace one string value, keeping its quoting style and trailing comment."""
    from tomlkit.items import String, StringType

    old = table[key]
    if not isinstance(old, String):
        raise ConfigError(f"pins file: {dotted} is not a string")
    if str(old) == value:
        return
    if old.type is StringType.MLB or "\n" in value:
        # Keep the layout of the PEM blocks: a newline right after the
        # opening quotes, which TOML drops from the value.
        item = String(StringType.MLB, value, "\n" + value, old.trivia)
    else:
        item = String(old.type, value, value, old.trivia)
    table[key] = item
    changes.append(PinChange(dotted, str(old), value))


def _bump_image(
    document: TOMLDocument,
    image: str,
    tag: str | None,
    digest: str | None,
    changes: list[PinChange],
) -> None:
    if image == "data-init":
        support = document["support_images"]
        current = str(support["data_init"])
        match = IMAGE_REF_RE.fullmatch(current)
        if match is None:
            raise ConfigError(f"pins file: support_images.data_init = {current!r}")
        host, path = match.group("host"), match.group("path")
        new_tag = tag or match.group("tag")
        new_digest = digest or match.group("digest")
        reference = f"{host}/{path}" if host else path
        if new_tag:
            reference += f":{new_tag}"
        if new_digest:
            reference += f"@{new_digest}"
        _set_string(
            support, "data_init", reference, "support_images.data_init", changes
        )
        return
    entry = document["dhi"]["images"][image]
    prefix = f"dhi.images.{image}."
    if tag is not None:
        _set_string(entry, "tag", tag, prefix + "tag", changes)
    if digest is not None:
        _set_string(entry, "index_digest", digest, prefix + "index_digest", changes)


def _check_flags(
    image: str | None, tag: str | None, digest: str | None, synthorg_tag: str | None
) -> None:
    if image is not None and image not in BUMPABLE_IMAGES:
        raise UsageError(
            f"--image {image!r} is not one of {', '.join(BUMPABLE_IMAGES)}"
        )
    if image is None and (tag is not None or digest is not None):
        raise UsageError("--tag and --digest need --image")
    if image is not None and tag is None and digest is None:
        raise UsageError(f"--image {image} needs --tag, --digest or both")
    for flag, value in (("--tag", tag), ("--synthorg-tag", synthorg_tag)):
        if value is not None and not TAG_RE.fullmatch(value):
            raise UsageError(f"{flag} {value!r} is not a valid image tag")
    if digest is not None and not DIGEST_RE.fullmatch(digest):
        raise UsageError(f"--digest {digest!r} is not sha256:<64 lowercase hex>")


def _p256_pem(path: Path, flag: str) -> str:
    pem = _read_pem(path, flag)
    try:
        spki_log_id(pem)
    except ConfigError as exc:
        raise UsageError(f"{flag} {path}: {exc.message}") from exc
    return pem


def bump_pins(
    path: Path,
    *,
    image: str | None = None,
    tag: str | None = None,
    digest: str | None = None,
    synthorg_tag: str | None = None,
    dhi_key: Path | None = None,
    rekor_key: Path | None = None,
) -> list[PinChange]:
    """Change the given pins in ``path`` and return what changed.

    ``dhi_key`` and ``rekor_key`` are PEM files. The DHI key's fingerprint
    and the Rekor key's log id are recomputed from them. The file is written
    only when something changed and the result passes the pins loader.
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    _check_flags(image, tag, digest, synthorg_tag)
    if all(v is None for v in (image, synthorg_tag, dhi_key, rekor_key)):
        raise UsageError(
            "nothing to change: give --image with --tag/--digest, --synthorg-tag, "
            "--dhi-key or --rekor-key"
        )
    dhi_pem = None if dhi_key is None else _p256_pem(dhi_key, "--dhi-key")
    rekor_pem = None if rekor_key is None else _p256_pem(rekor_key, "--rekor-key")

    original = path.read_text(encoding="utf-8")
    try:
        document = tomlkit.parse(original)
    except TOMLKitError as exc:
        raise ConfigError(f"pins file {path} is not valid TOML: {exc}") from exc
    changes: list[PinChange] = []
    try:
        if image is not None:
            _bump_image(document, image, tag, digest, changes)
        if synthorg_tag is not None:
            table = document["synthorg"]
            _set_string(
                table,
                "default_image_tag",
                synthorg_tag,
                "synthorg.default_image_tag",
                changes,
            )
        if dhi_pem is not None:
            table = document["dhi"]
            _set_string(table, "public_key_pem", dhi_pem, "dhi.public_key_pem", changes)
            _set_string(
                table,
                "public_key_fingerprint",
                pem_fingerprint(dhi_pem),
                "dhi.public_key_fingerprint",
                changes,
            )
        if rekor_pem is not None:
            # NOTE: the new key replaces the first listed Rekor key and keeps
            # its valid_from; edit valid_from by hand for a key rotation.
            key = document["rekor"]["keys"][0]
            _set_string(
                key,
                "public_key_pem",
                rekor_pem,
                "rekor.keys[0].public_key_pem",
                changes,
            )
            _set_string(
                key,
                "log_id",
                spki_log_id(rekor_pem),
                "rekor.keys[0].log_id",
                changes,
            )
    except (KeyError, IndexError, TypeError) as exc:
        raise ConfigError(
            f"pins file {path} lacks a key that pins.bump edits: {exc}",
            hints=["restore config/pins.toml from version control"],
        ) from exc

    if not changes:
        return changes
    edited = tomlkit.dumps(document)
    parse_pins(edited, str(path))
    atomic_write(path.resolve(), edited.encode("utf-8"), mode=_file_mode(path))
    for change in changes:
        _logger.info(
            "pins: %s changed from %s to %s", change.key, change.old, change.new
        )
    return changes


def _file_mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
