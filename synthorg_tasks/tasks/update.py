"""The ``update`` root task."""

from __future__ import annotations

import os
from typing import Any

from synthorg_tasks.tasks._base import CommonOptions, synthorg_task

__all__ = ["update"]


@synthorg_task(
    help={
        "check": "Only report whether an update is available (exit 10 if so); "
        "excludes --dry-run.",
        "dry_run": "Print the plan (tags, compose refresh, image update, restart) "
        "and change nothing.",
        "image_tag": "Target SynthOrg image tag (default dev on the dev channel, "
        "else the pinned release).",
        "no_restart": "Do not restart the stack after the update.",
        "timeout": "Readiness budget after the restart, such as 90s (env "
        "SYNTHORG_HEALTH_WAIT_TIMEOUT; default health_wait_timeout).",
        "verify_timeout": "Budget of image verification, at least 1s (env "
        "SYNTHORG_IMAGE_VERIFY_TIMEOUT; default 120s).",
        "skip_verify": "Pull without signature and provenance checks (env "
        "SYNTHORG_SKIP_VERIFY); prints a warning.",
        "no_verify": "Alias of --skip-verify.",
        "trusted_root": "Sigstore trusted-root JSON file (env "
        "SYNTHORG_SIGSTORE_TRUSTED_ROOT); prints a warning.",
    }
)
def update(
    c: Any,
    check: bool = False,
    dry_run: bool = False,
    image_tag: str | None = None,
    no_restart: bool = False,
    timeout: str | None = None,
    verify_timeout: str | None = None,
    skip_verify: bool = False,
    no_verify: bool = False,
    trusted_root: str | None = None,
    *,
    common: CommonOptions,
) -> None:
    """Update the stack to a new image tag, verified, with rollback on failure."""
    from invoke.exceptions import Exit

    from synthorg_tasks.errors import ExitCode
    from synthorg_tasks.lifecycle.update import UpdateRequest, run_update

    out = common.out
    request = UpdateRequest(
        check=check,
        dry_run=dry_run,
        image_tag=image_tag,
        no_restart=no_restart,
        timeout=timeout,
        verify_timeout=verify_timeout,
        skip_verify=skip_verify or no_verify,
        trusted_root=trusted_root
        or os.environ.get("SYNTHORG_SIGSTORE_TRUSTED_ROOT", "").strip()
        or None,
        yes=common.yes,
    )
    if not (out.quiet or out.json or out.plain or check):
        from synthorg_tasks import __version__

        out.info(f"synthorg-tasks {__version__}")
    result = run_update(request, common.data_dir(), out)

    if result.check is not None:
        if out.json:
            out.document(result.check.document())
        elif result.check.update_available:
            out.data("Update available:")
            for reason in result.check.reasons:
                out.data(f"  - {reason}")
        else:
            out.data("Up to date")
        if result.check.update_available:
            raise Exit(code=int(ExitCode.UPDATE_AVAILABLE))
        return
    if result.plan:
        if out.json:
            out.document(dict(result.plan))
        else:
            width = max(len(step) for step, _ in result.plan)
            out.data("\n".join(f"{s.ljust(width)}  {a}" for s, a in result.plan))
        return
    for message in result.messages:
        out.info(message)
    if out.json:
        out.document(
            {
                "updated": result.updated,
                "previous_tag": result.current_tag,
                "image_tag": result.target_tag,
                "compose_refreshed": result.compose_refreshed,
                "restarted": result.restarted,
                "ready": result.ready,
                "verification": result.verification,
            }
        )
    elif result.updated:
        out.data(f"Updated {result.current_tag} -> {result.target_tag}")
    elif result.compose_refreshed:
        out.data("compose.yml refreshed")
