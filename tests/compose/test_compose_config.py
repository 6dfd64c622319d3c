"""Every golden variant is accepted by a real Compose implementation."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.capabilities import require
from tests.golden.variants import COMPOSE_VARIANTS, GOLDEN_PASSWORD, render_variant

pytestmark = pytest.mark.compose


def _implementations() -> list[list[str]]:
    found = []
    if shutil.which("docker-compose"):
        found.append(["docker-compose"])
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            found.append([docker, "compose"])
    return found


IMPLEMENTATIONS = _implementations()


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSE_", "SYNTHORG_", "DOCKER_"))
    }


def _config(
    impl: list[str], folder: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *impl,
            "--project-name",
            "golden",
            "--file",
            str(folder / "compose.yml"),
            "--project-directory",
            str(folder),
            "config",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=_clean_env(),
        check=False,
        timeout=120,
    )


def _project(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "compose.yml").write_text(render_variant(name))
    (folder / "nats.conf").write_text("port: 4222\n")
    return folder


@pytest.mark.parametrize("name", sorted(COMPOSE_VARIANTS))
def test_compose_accepts_variant(tmp_path: Path, name: str) -> None:
    require("compose", bool(IMPLEMENTATIONS), "install docker-compose (>= 1.29)")
    folder = _project(tmp_path, name)
    for impl in IMPLEMENTATIONS:
        quiet = _config(impl, folder, "-q")
        assert quiet.returncode == 0, quiet.stderr
        shown = _config(impl, folder)
        assert shown.returncode == 0, shown.stderr
        document = yaml.safe_load(shown.stdout)
        services = document["services"]
        backend_env = services["backend"]["environment"]
        assert backend_env["SYNTHORG_TELEMETRY_ENABLED"] == "false"
        if "postgres" in services:
            shown_password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
            # `config` prints a Compose file again, so Compose 1.29 keeps "$"
            # escaped as "$$" there. Un-escaping gives the raw password, which
            # the container receives.
            assert shown_password.replace("$$", "$") == GOLDEN_PASSWORD, impl
            if impl == ["docker-compose"]:
                assert shown_password == GOLDEN_PASSWORD.replace("$", "$$")
            assert backend_env["SYNTHORG_DATABASE_URL"].startswith(
                "postgresql://synthorg:g0lden%24pass%40word"
            )


def test_top_level_name_is_rejected_by_compose_v1(tmp_path: Path) -> None:
    require(
        "docker-compose",
        shutil.which("docker-compose") is not None,
        "install docker-compose 1.29",
    )
    folder = _project(tmp_path, "sqlite_internal")
    text = (folder / "compose.yml").read_text()
    (folder / "compose.yml").write_text(
        text.replace("services:\n", 'name: "x"\nservices:\n', 1)
    )
    result = _config(["docker-compose"], folder, "-q")
    assert result.returncode != 0
    assert "name" in result.stderr
