"""The installed package finds its templates and pins outside the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.capabilities import require

SCRIPT = Path(sys.executable).parent / "synthorg"


def test_installed_script_runs_init_outside_checkout(tmp_path: Path) -> None:
    require(
        "installed synthorg",
        SCRIPT.exists(),
        "the package is not installed in this interpreter (nox installs it)",
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DOCKER_HOST": f"unix://{tmp_path}/none.sock",
    }
    locate = subprocess.run(
        [
            sys.executable,
            "-c",
            "import synthorg_tasks.resources as r; print(r.templates_dir()); "
            "print(r.pins_path())",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    )
    templates, pins = locate.stdout.split()
    assert "_resources" in templates
    assert "_resources" in pins
    result = subprocess.run(
        [
            str(SCRIPT),
            "init",
            "--data-dir",
            str(tmp_path / "d"),
            "--backend",
            "postgres",
            "--bus",
            "nats",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["bus_backend"] == "nats"
    assert (tmp_path / "d" / "nats.conf").exists()
