"""The ``verify`` task: verify image signatures and provenance, then cache them."""

from __future__ import annotations

import threading
from typing import Any

from synthorg_tasks.tasks._base import CommonOptions, synthorg_task

__all__ = ["verify"]

# Group titles shown once for a cache hit, by the services of each group.
_GROUP_TITLES = {"postgres": "DHI images", "nats": "DHI images"}
_DEFAULT_GROUP_TITLE = "SynthOrg images"


@synthorg_task(
    help={
        "image_tag": "SynthOrg image tag to verify (default the configured "
        "image_tag; the cache is saved only for the configured tag).",
        "force": "Verify both cache groups even when they are current.",
        "no_save": "Do not store the verified digests in config.json.",
        "trusted_root": "Sigstore trusted_root.json to use instead of the "
        "public-good root (env SYNTHORG_SIGSTORE_TRUSTED_ROOT; prints a warning).",
        "verify_timeout": "Budget of the whole verification, at least 1s (env "
        "SYNTHORG_IMAGE_VERIFY_TIMEOUT; default 120s).",
    }
)
def verify(
    c: Any,
    image_tag: str | None = None,
    force: bool = False,
    no_save: bool = False,
    trusted_root: str | None = None,
    verify_timeout: str | None = None,
    *,
    common: CommonOptions,
) -> None:
    """Verify the signatures and provenance of every configured image."""
    from synthorg_tasks.lifecycle.verify import (
        VerifyRequest,
        run_verify,
        verify_document,
    )

    out = common.out
    check_mark = "ok" if out.plain else "\u2713"
    printed = threading.Lock()
    cached_groups: set[str] = set()

    def progress(service: str, event: str) -> None:
        # Worker threads report checks as they pass, so printing is serialised.
        with printed:
            if event != "cached":
                out.info(f"{service}: {event} {check_mark}")
                return
            title = _GROUP_TITLES.get(service, _DEFAULT_GROUP_TITLE)
            if title not in cached_groups:
                cached_groups.add(title)
                out.info(f"{title} (cached)")

    request = VerifyRequest(
        image_tag=image_tag,
        force=force,
        no_save=no_save,
        trusted_root=trusted_root,
        verify_timeout=verify_timeout,
    )
    report = run_verify(common.data_dir(), request, progress=progress)
    images = report.outcome.images
    if out.json:
        out.document(verify_document(report))
        return
    width = max((len(image.service) for image in images), default=0)
    for image in images:
        checks = " ".join(f"{check} {check_mark}" for check in image.checks)
        state = "cached" if image.cached else "verified"
        out.data(f"{image.service.ljust(width)}  {image.digest}  {checks}  {state}")
    if report.saved:
        out.info("verified digests saved to config.json")
