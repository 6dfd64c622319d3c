"""Developer tasks ``pins.bump`` and ``pins.check``, available only in a checkout.

The tasks parse flags and print; the work is in
:mod:`synthorg_tasks.lifecycle.pins`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import task

from synthorg_tasks.errors import ExitCode, SynthorgError
from synthorg_tasks.lifecycle.pins import (
    BUMPABLE_IMAGES,
    bump_pins,
    check_pins,
    checkout_pins_path,
)

__all__ = ["bump", "check", "pins_collection"]

_Result = TypeVar("_Result")


def _run(action: Callable[[], _Result]) -> _Result:
    """Run ``action``, turning a product error into an Invoke exit with its code.

    TODO: replace with the shared task decorator once every task uses it.
    """
    try:
        return action()
    except SynthorgError as exc:
        lines = [f"error: {exc.message}", *(f"hint: {hint}" for hint in exc.hints)]
        raise Exit("\n".join(lines), code=exc.exit_code) from exc


@task(
    auto_shortflags=False,
    help={
        "image": f"Image whose pins change: {', '.join(BUMPABLE_IMAGES)}.",
        "tag": "New tag of --image.",
        "digest": "New digest of --image (sha256:<64 hex>; the index for DHI images).",
        "synthorg_tag": "New default SynthOrg image tag.",
        "dhi_key": "PEM file of the new DHI key; its fingerprint is recomputed.",
        "rekor_key": "PEM file of the new Rekor log key; its log id is recomputed.",
    },
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
) -> None:
    """Change pins in config/pins.toml, keeping the rest of the file as it is."""
    changes = _run(
        lambda: bump_pins(
            checkout_pins_path(),
            image=image,
            tag=tag,
            digest=digest,
            synthorg_tag=synthorg_tag,
            dhi_key=Path(dhi_key) if dhi_key else None,
            rekor_key=Path(rekor_key) if rekor_key else None,
        )
    )
    if not changes:
        print("no pin changed: the file already has these values")
        return
    for change in changes:
        if "\n" in change.new:
            print(f"{change.key}: replaced")
        else:
            print(f"{change.key}: {change.old} -> {change.new}")


@task(auto_shortflags=False)
def check(c: Any) -> None:
    """Validate config/pins.toml; exit 0 when valid, 1 otherwise."""
    path = _run(checkout_pins_path)
    try:
        check_pins(path)
    except SynthorgError as exc:
        raise Exit(f"error: {exc.message}", code=ExitCode.FAILURE) from exc
    print(f"{path} is valid")


pins_collection = Collection("pins")
pins_collection.add_task(bump)
pins_collection.add_task(check)
