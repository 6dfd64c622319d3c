"""Data dir resolution and the names of the files inside it."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

from synthorg_tasks.errors import UsageError

__all__ = [
    "COMPOSE_FILE",
    "CONFIG_FILE",
    "NATS_CONF_FILE",
    "check_data_dir_owner",
    "default_data_dir",
    "make_parent_dirs",
    "resolve_data_dir",
]

CONFIG_FILE = "config.json"
COMPOSE_FILE = "compose.yml"
NATS_CONF_FILE = "nats.conf"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return ``$XDG_DATA_HOME/synthorg`` or the platform's per-user data folder."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "synthorg"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "synthorg"
    return Path.home() / ".local" / "share" / "synthorg"


def resolve_data_dir(
    flag: str | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """Return the absolute, symlink-free data dir.

    Order: ``--data-dir`` → ``SYNTHORG_DATA_DIR`` → the XDG or platform default.
    The file-system root and the home folder itself are rejected, because
    ``wipe`` and ``uninstall`` delete the data dir.
    """
    env = os.environ if environ is None else environ
    if flag is not None and flag.strip() == "":
        raise UsageError("--data-dir is empty", hints=["pass a folder path"])
    raw = flag if flag else env.get("SYNTHORG_DATA_DIR", "").strip() or None
    path = Path(raw).expanduser() if raw else default_data_dir(env)
    if "\0" in str(path):
        raise UsageError("the data dir path contains a NUL character")
    resolved = Path(os.path.realpath(os.path.abspath(path)))
    if resolved == Path(resolved.anchor):
        raise UsageError(
            f"data dir {resolved} is the file-system root",
            hints=["pass --data-dir with a dedicated folder"],
        )
    home = Path(os.path.realpath(Path.home()))
    if resolved == home:
        raise UsageError(
            f"data dir {resolved} is the home folder itself",
            hints=["pass --data-dir with a dedicated folder, such as ~/synthorg"],
        )
    return resolved


def make_parent_dirs(path: Path) -> None:
    """Create the missing ancestors of ``path`` with mode 0755, whatever the umask.

    A world-writable ancestor would let another local user swap the data dir
    or its lock file, so the mode is set explicitly after each ``mkdir``.
    """
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o755)
        except FileExistsError:
            continue
        os.chmod(folder, 0o755)  # noqa: S103 - parents are listable, not writable


def check_data_dir_owner(data_dir: Path) -> None:
    """Reject an existing data dir that is shared: sticky, or owned by another user.

    ``init`` tightens the data dir to 0700, which must never happen to a
    shared folder such as ``/tmp``.
    """
    try:
        info = os.stat(data_dir)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(
            f"data dir {data_dir} exists and is not a folder",
            hints=["pass --data-dir with a folder path"],
        )
    if info.st_mode & stat.S_ISVTX or info.st_mode & stat.S_IWOTH:
        raise UsageError(
            f"data dir {data_dir} is a shared folder (sticky or writable by "
            "everyone); it cannot hold private files",
            hints=[
                f"pass --data-dir with a dedicated folder, such as {data_dir}/synthorg"
            ],
        )
    if info.st_uid != os.geteuid():
        raise UsageError(
            f"data dir {data_dir} is owned by another user (uid {info.st_uid})",
            hints=["pass --data-dir with a folder you own"],
        )
