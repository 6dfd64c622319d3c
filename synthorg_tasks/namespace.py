"""The task namespace shared by ``tasks.py`` and the ``synthorg`` program."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from invoke.collection import Collection
from invoke.tasks import Task

__all__ = ["ROOT_TASKS", "SUB_COLLECTIONS", "build_namespace"]

# Root task name → the task module that defines it.
ROOT_TASKS = {
    "init": "core",
    "start": "stack",
    "stop": "stack",
    "status": "stack",
    "logs": "stack",
    "doctor": "stack",
    "update": "update",
    "verify": "verify",
    "uninstall": "teardown",
    "wipe": "teardown",
}
SUB_COLLECTIONS = ("config", "db", "pins")


def _config_collection() -> Collection:
    from synthorg_tasks.tasks import config as config_tasks

    config = Collection("config")
    for task in (
        config_tasks.config_get,
        config_tasks.config_set,
        config_tasks.config_unset,
        config_tasks.config_list,
        config_tasks.config_show,
        config_tasks.config_path,
        config_tasks.config_edit,
        config_tasks.config_import,
    ):
        config.add_task(task)
    return config


def _db_collection() -> Collection:
    from synthorg_tasks.tasks import db

    return db.build_collection()


def _pins_collection() -> Collection:
    from synthorg_tasks.tasks.pins import pins_collection

    return pins_collection


_COLLECTION_BUILDERS: dict[str, Callable[[], Collection]] = {
    "config": _config_collection,
    "db": _db_collection,
    "pins": _pins_collection,
}


def _root_task(name: str) -> Task[Any]:
    import importlib

    module = importlib.import_module(f"synthorg_tasks.tasks.{ROOT_TASKS[name]}")
    task: Task[Any] = getattr(module, name)
    return task


def build_namespace(include_dev: bool = False, only: str | None = None) -> Collection:
    """Build the root collection explicitly, task by task.

    ``include_dev`` adds the checkout-only ``pins`` collection, which edits
    ``config/pins.toml`` and is therefore absent from the installed program.
    ``only`` names one root task or sub-collection to build alone: Invoke's
    parser copies every task's flags on each run, so a one-task namespace
    makes a command start faster. An unknown name builds everything.
    """
    collections = [*SUB_COLLECTIONS[:2], *(["pins"] if include_dev else [])]
    root = Collection()
    if only in ROOT_TASKS:
        root.add_task(_root_task(only))
        return root
    if only in collections:
        root.add_collection(_COLLECTION_BUILDERS[only]())
        return root
    for name in ROOT_TASKS:
        root.add_task(_root_task(name))
    for name in collections:
        root.add_collection(_COLLECTION_BUILDERS[name]())
    return root
