"""Developer tasks ``pins.bump`` and ``pins.check``, available only in a checkout.

The tasks parse flags and print; the work is in
:mod:`synthorg_tasks.lifecycle.pins`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from invoke.collection import Collection

from synthorg_tasks.lifecycle.pins import (
    BUMPABLE_IMAGES,
    bump_pins,
    check_pins,
    checkout_pins_path,
)
from synthorg_tasks.tasks._base import CommonOptions, synthorg_task

__all__ = ["bump", "check", "pins_collection"]


@synthorg_task(
    help={
        "image": f"Image whose pins change: {', '.join(BUMPABLE_IMAGES)}.",
        "tag": "New tag of --image.",
        "digest": "New digest of --image (sha256:<64 hex>; the index for DHI images).",
        "synthorg_tag": "New default SynthOrg image tag.",
        "dhi_key": "PEM file of the new DHI key; its fingerprint is recomputed.",
        "rekor_key": "PEM file of the new Rekor log key; its log id is recomputed.",
    }
)
def bump(
    c: Any,
    *,
    image: str | None = None,
    tag: str | None = None,
    digest: str | None = None,
    synthorg_tag: str | None = None,
    dhi_key: str | None = None,
    rekor_key: str | None = None,
    common: CommonOptions,
) -> None:
    """Change pins in config/pins.toml, keeping the rest of the file as it is."""
    changes = bump_pins(
        checkout_pins_path(),
        image=image,
        tag=tag,
        digest=digest,
        synthorg_tag=synthorg_tag,
        dhi_key=Path(dhi_key) if dhi_key else None,
        rekor_key=Path(rekor_key) if rekor_key else None,
    )
    out = common.out
    if out.json:
        out.document(
            {
                "changed": [
                    {"key": ch.key, "old": ch.old, "new": ch.new} for ch in changes
                ]
            }
        )
        return
    if not changes:
        out.data("no pin changed: the file already has these values")
        return
    for change in changes:
        if "\n" in change.new:
            out.data(f"{change.key}: replaced")
        else:
            out.data(f"{change.key}: {change.old} -> {change.new}")


@synthorg_task()
def check(c: Any, *, common: CommonOptions) -> None:
    """Validate config/pins.toml; exit 0 when valid, 1 otherwise."""
    path = checkout_pins_path()
    check_pins(path)
    if common.out.json:
        common.out.document({"path": str(path), "valid": True})
    else:
        common.out.data(f"{path} is valid")


pins_collection = Collection("pins")
pins_collection.add_task(bump)
pins_collection.add_task(check)
