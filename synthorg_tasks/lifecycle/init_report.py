"""The summary ``init`` prints: a table, the warnings and the next step."""

from __future__ import annotations

from synthorg_tasks.lifecycle.init import InitResult
from synthorg_tasks.output import Output

__all__ = ["report_init"]


def report_init(result: InitResult, out: Output) -> None:
    """Print the table (or the JSON document) and the warnings of one ``init``."""
    config = result.config
    for warning in result.warnings:
        out.warn(warning, unsuppressible=warning.startswith("WARNING"))
    ports = config.ports()
    if out.json:
        out.document(
            {
                "data_dir": str(config.data_dir),
                "project_name": config.project_name,
                "bind_address": config.bind_address,
                "ports": ports,
                "persistence_backend": config.persistence_backend,
                "bus_backend": config.bus_backend,
                "image_tag": config.image_tag,
                "channel": config.channel,
                "files": result.files,
                "reinit": result.reinit,
            }
        )
        return
    rows = [
        ("Data dir", str(config.data_dir)),
        ("Project", config.project_name),
        ("Bind address", config.bind_address),
        *((key.replace("_", " "), str(port)) for key, port in ports.items()),
        ("Persistence", config.persistence_backend),
        ("Bus", config.bus_backend),
        ("Image tag", config.image_tag),
        ("Channel", config.channel),
    ]
    out.table("Configuration", rows)
    out.warn("compose.yml and config.json contain secrets: keep them private")
    out.info("Next: synthorg start")
