"""The ``config`` collection: ``get``, ``set``, ``unset``, ``list``, ``show``,
``path``, ``edit`` and ``import``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthorg_tasks.tasks._base import CommonOptions, synthorg_task

__all__ = [
    "config_edit",
    "config_get",
    "config_import",
    "config_list",
    "config_path",
    "config_set",
    "config_show",
    "config_unset",
]

_RESTART_HINT = "run 'synthorg start' to apply the change to the running stack"


def _project_running(project: str) -> bool | None:
    """Return whether a container of ``project`` runs, or ``None`` if unknown."""
    from synthorg_tasks.engine.docker_api import connect
    from synthorg_tasks.errors import SynthorgError

    try:
        api = connect(timeout=2.0)
    except SynthorgError:
        return None
    try:
        containers = api.list_containers(project, inspect=False)
    except SynthorgError:
        return None
    finally:
        api.close()
    return any(container.state == "running" for container in containers)


def _restart_hint(common: CommonOptions, project: str) -> None:
    running = _project_running(project)
    if running is None:
        common.out.info(f"hint: if the stack is running, {_RESTART_HINT}")
    elif running:
        common.out.info(f"hint: the stack is running; {_RESTART_HINT}")


@synthorg_task(
    name="get",
    positional=["key"],
    help={"key": "Config key to print, such as web_port (see 'config list')."},
)
def config_get(c: Any, key: str, *, common: CommonOptions) -> None:
    """Print the effective value of one config key."""
    from synthorg_tasks.lifecycle.config_ops import view_one

    view = view_one(common.data_dir(), key)
    if common.out.json:
        common.out.document(view.document())
    else:
        common.out.data(view.text)


@synthorg_task(name="list")
def config_list(c: Any, *, common: CommonOptions) -> None:
    """List every config key with its effective value and source."""
    from synthorg_tasks.lifecycle.config_ops import view_all

    views, loaded = view_all(common.data_dir())
    for finding in loaded.findings:
        common.out.warn(f"config: {finding.message} (the default is shown)")
    if common.out.json:
        common.out.document([view.document() for view in views])
        return
    if not loaded.initialized:
        common.out.info("not initialized: showing defaults (run 'synthorg init')")
    key_width = max(len(view.key) for view in views)
    lines = [f"{'KEY'.ljust(key_width)}  SOURCE   VALUE"]
    lines += [
        f"{view.key.ljust(key_width)}  {view.source.ljust(7)}  {view.text}"
        for view in views
    ]
    common.out.data("\n".join(lines))


@synthorg_task(name="show")
def config_show(c: Any, *, common: CommonOptions) -> None:
    """Print the stored config.json keys and values, secrets masked."""
    from synthorg_tasks.errors import NotInitialized
    from synthorg_tasks.lifecycle.config_ops import view_all

    data_dir = common.data_dir()
    views, loaded = view_all(data_dir)
    if not loaded.initialized:
        raise NotInitialized(
            f"not initialized: no configuration in {data_dir}; "
            "run 'synthorg init' first",
            hints=["synthorg init"],
        )
    stored = [view for view in views if view.source in ("config", "unknown")]
    if common.out.json:
        common.out.document({view.key: view.value for view in stored})
        return
    common.out.table(
        f"Configuration ({loaded.config.config_path})",
        [(view.key, view.text) for view in stored],
    )


@synthorg_task(name="path")
def config_path(c: Any, *, common: CommonOptions) -> None:
    """Print the path of config.json (it need not exist yet)."""
    from synthorg_tasks.state.config import config_path as path_of

    path = path_of(common.data_dir())
    if common.out.json:
        common.out.document({"path": str(path), "exists": path.exists()})
    else:
        common.out.data(str(path))


def _split_pair(text: str) -> tuple[str, str]:
    from synthorg_tasks.errors import UsageError

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(
            f"--pair {text!r} is invalid (expected KEY=VALUE)",
            hints=["pass --pair web_port=3005"],
        )
    return key, value


def _report_change(common: CommonOptions, result: Any, project: str) -> None:
    for warning in result.warnings:
        common.out.warn(warning, unsuppressible=True)
    if common.out.json:
        common.out.document(
            {
                "changes": [{"key": k, "value": v} for k, v in result.changes],
                "compose_regenerated": result.compose_regenerated,
                "cache_cleared": result.cache_cleared,
            }
        )
        return
    for key, value in result.changes:
        common.out.data(f"Set {key} = {value}")
    if result.cache_cleared:
        common.out.info("(verified image digests cleared: the next start verifies)")
    if result.compose_regenerated:
        common.out.data("(compose regenerated)")
        _restart_hint(common, project)


@synthorg_task(
    name="set",
    positional=["key", "value"],
    iterable=["pair"],
    help={
        "key": "Config key to set (see 'config list').",
        "value": "New value, in the key's grammar (booleans: true or false).",
        "pair": "Another KEY=VALUE to set in the same change (repeatable).",
    },
)
def config_set(
    c: Any,
    key: str,
    value: str,
    pair: list[str] | None = None,
    *,
    common: CommonOptions,
) -> None:
    """Set config keys, all or none, and regenerate compose.yml when needed."""
    from synthorg_tasks.lifecycle.config_ops import run_set

    assignments = [(key, value), *(_split_pair(text) for text in pair or [])]
    result = run_set(common.data_dir(), assignments)
    _report_change(common, result, result.config.project_name)


@synthorg_task(
    name="unset",
    positional=["key"],
    help={"key": "Config key to restore to its default (see 'config list')."},
)
def config_unset(c: Any, key: str, *, common: CommonOptions) -> None:
    """Restore one config key to its default."""
    from synthorg_tasks.lifecycle.config_ops import run_unset

    result = run_unset(common.data_dir(), key)
    _report_change(common, result, result.config.project_name)


def _report_replace(common: CommonOptions, result: Any, project: str) -> None:
    for warning in result.warnings:
        common.out.warn(warning, unsuppressible=True)
    if common.out.json:
        common.out.document(
            {
                "changed": result.changed,
                "compose_regenerated": result.compose_regenerated,
                "cache_cleared": result.cache_cleared,
            }
        )
        return
    if not result.changed:
        common.out.data("No changes")
        return
    common.out.data("config.json replaced")
    if result.compose_regenerated:
        common.out.data("(compose regenerated)")
        _restart_hint(common, project)


@synthorg_task(name="edit")
def config_edit(c: Any, *, common: CommonOptions) -> None:
    """Edit a copy of config.json in $VISUAL or $EDITOR, validate it, swap it in."""
    from synthorg_tasks.lifecycle.config_ops import run_edit
    from synthorg_tasks.state.config import load_strict

    data_dir = common.data_dir()
    result = run_edit(data_dir)
    project = load_strict(data_dir).project_name if result.changed else ""
    _report_replace(common, result, project)


@synthorg_task(
    name="import",
    positional=["file"],
    help={"file": "A complete config.json to validate and install."},
)
def config_import(c: Any, file: str, *, common: CommonOptions) -> None:
    """Validate a whole config.json file and swap it in."""
    from synthorg_tasks.lifecycle.config_ops import run_import
    from synthorg_tasks.state.config import load_strict

    data_dir = common.data_dir()
    result = run_import(data_dir, Path(file).expanduser())
    project = load_strict(data_dir).project_name if result.changed else ""
    _report_replace(common, result, project)
