"""The task namespace shared by ``tasks.py`` and the ``synthorg`` program."""

from __future__ import annotations

from invoke.collection import Collection

__all__ = ["build_namespace"]


def build_namespace(include_dev: bool = False) -> Collection:
    """Build the root collection explicitly, task by task.

    ``include_dev`` adds the checkout-only ``pins`` collection, which edits
    ``config/pins.toml`` and is therefore absent from the installed program.
    """
    from synthorg_tasks.tasks import config as config_tasks
    from synthorg_tasks.tasks import core, db, stack, teardown
    from synthorg_tasks.tasks import update as update_tasks
    from synthorg_tasks.tasks import verify as verify_tasks

    root = Collection()
    root.add_task(core.init)
    for task in (stack.start, stack.stop, stack.status, stack.logs, stack.doctor):
        root.add_task(task)
    root.add_task(update_tasks.update)
    root.add_task(verify_tasks.verify)
    root.add_task(teardown.uninstall)
    root.add_task(teardown.wipe)

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
    root.add_collection(config)
    root.add_collection(db.build_collection())
    if include_dev:
        from synthorg_tasks.tasks.pins import pins_collection

        root.add_collection(pins_collection)
    return root
