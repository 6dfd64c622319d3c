"""Checkout entry point: ``invoke <task>`` with the full namespace.

The installed ``synthorg`` command exposes the same tasks except the
developer collection ``pins``, which edits ``config/pins.toml``.
"""

from synthorg_tasks.namespace import build_namespace

ns = build_namespace(include_dev=True)
