"""Root tasks that remove an install or its data: ``uninstall`` and ``wipe``."""

from __future__ import annotations

from typing import Any

from synthorg_tasks.tasks._base import CommonOptions, synthorg_task

__all__ = ["uninstall", "wipe"]


def _report(common: CommonOptions, result: Any, done: str) -> None:
    for warning in result.warnings:
        common.out.warn(warning)
    if common.out.json:
        common.out.document(
            {
                "project_name": result.project,
                "data_dir": str(result.data_dir),
                "containers_checked": result.containers_checked,
                "volumes_removed": result.volumes_removed,
                "data_dir_removed": result.data_dir_removed,
            }
        )
        return
    common.out.data(done)


@synthorg_task(
    help={
        "keep_data": "Keep the volumes and the data dir (config.json included); "
        "remove only the containers.",
    }
)
def uninstall(c: Any, keep_data: bool = False, *, common: CommonOptions) -> None:
    """Stop the stack and delete its volumes and data dir, after confirmation."""
    from synthorg_tasks.lifecycle.teardown import run_uninstall

    data_dir = common.data_dir()
    result = run_uninstall(data_dir, common.out, keep_data=keep_data, yes=common.yes)
    if result.data_dir_removed:
        done = f"SynthOrg uninstalled: {data_dir} deleted"
    else:
        done = f"SynthOrg containers removed; data kept in {data_dir}"
    _report(common, result, done)


@synthorg_task()
def wipe(c: Any, *, common: CommonOptions) -> None:
    """Delete all data of the stack (volumes) but keep the configuration."""
    from synthorg_tasks.lifecycle.teardown import run_wipe

    result = run_wipe(common.data_dir(), common.out, yes=common.yes)
    _report(
        common,
        result,
        f"All data of project {result.project} deleted. Next: synthorg start",
    )
