"""update on a real engine: from one image tag to another, and a failed pull.

The stand-in SynthOrg images are retagged and pushed to a docker-registry on
127.0.0.1, so ``update``'s pulls really fetch from a registry and nothing
leaves the machine. The install is SQLite with the internal bus (three
images), pointed at that registry with ``config set``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.capabilities import require
from tests.images.build import StandInImages
from tests.stack.conftest import Cell
from tests.stack.harness import Install, compose_down, docker, sweep_project_label
from tests.verify.local_registry import registry_binary, running_registry

# The scenario does not depend on the matrix cell, so it runs in one.
pytestmark = [
    pytest.mark.docker,
    pytest.mark.registry,
    pytest.mark.slow,
    pytest.mark.cell("full"),
]

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
PUSHED_TAGS = ("u1", "u2")
UNPUSHED_TAG = "u3"


@pytest.fixture(scope="module")
def registry_host(cell: Cell) -> Iterator[str]:
    """A docker-registry on 127.0.0.1 for this module, stopped afterwards."""
    binary = registry_binary()
    require("registry", binary is not None, "docker-registry is not installed")
    assert binary is not None
    with running_registry(binary) as host:
        yield host


@pytest.fixture(scope="module")
def pushed(images: StandInImages, registry_host: str) -> dict[str, str]:
    """Push data-init, backend and web under the registry, tagged u1 and u2."""
    sources = {
        "data-init": images.data_init,
        "synthorg-backend": images.backend,
        "synthorg-web": images.web,
    }
    for name, source in sources.items():
        for tag in PUSHED_TAGS:
            reference = f"{registry_host}/{name}:{tag}"
            docker("tag", source, reference)
            docker("push", reference)
    return {name: f"{registry_host}/{name}" for name in sources}


@pytest.fixture(scope="module")
def install(
    pushed: dict[str, str],
    registry_host: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Install]:
    """An install on tag u1 of the local registry, started and ready."""
    project = f"st-upd-{secrets.token_hex(3)}"
    data_dir = tmp_path_factory.mktemp("update") / "data"
    install = Install(data_dir, project, "sqlite", "internal")
    try:
        completed = install.init()
        assert completed.code == 0, completed.stderr
        completed = install.run(
            "config",
            "set",
            "registry_host",
            registry_host,
            "--pair",
            "image_repo_prefix=synthorg-",
            "--pair",
            f"dhi_registry={registry_host}",
            "--pair",
            f"data_init_image={pushed['data-init']}:u1",
            "--pair",
            "image_tag=u1",
        )
        assert completed.code == 0, completed.stderr
        completed = install.run("start", "--no-pull")
        assert completed.code == 0, completed.stderr
        yield install
    finally:
        compose_down(install)
        sweep_project_label(project)


def _containers(install: Install) -> dict[str, tuple[str, str, str]]:
    """Return service -> (container id, state, image) for the project."""
    listed = docker(
        "ps", "-aq", "--filter", f"label={PROJECT_LABEL}={install.project}"
    ).stdout.split()
    found: dict[str, tuple[str, str, str]] = {}
    for document in json.loads(docker("inspect", *listed).stdout) if listed else []:
        service = document["Config"]["Labels"][SERVICE_LABEL]
        found[service] = (
            document["Id"],
            document["State"]["Status"],
            document["Config"]["Image"],
        )
    return found


def _files(data_dir: Path) -> dict[str, bytes]:
    return {
        name: (data_dir / name).read_bytes() for name in ("config.json", "compose.yml")
    }


def test_update_to_another_tag(install: Install, pushed: dict[str, str]) -> None:
    backend = pushed["synthorg-backend"]
    # Untag u2 locally, so only a real pull from the registry can bring it back.
    docker("rmi", f"{backend}:u2")
    completed = install.run("update", "--image-tag", "u2", "--yes")
    assert completed.code == 0, completed.stderr
    assert install.config_document()["image_tag"] == "u2"
    compose = (install.data_dir / "compose.yml").read_text()
    assert f'image: "{backend}:u2"' in compose
    containers = _containers(install)
    assert containers["backend"][1] == "running"
    assert containers["backend"][2] == f"{backend}:u2"
    assert containers["web"][2] == f"{pushed['synthorg-web']}:u2"
    status = install.run("status", "--json")
    assert status.code == 0, status.stdout


def test_failed_pull_changes_nothing(install: Install, pushed: dict[str, str]) -> None:
    before_files = _files(install.data_dir)
    before_containers = _containers(install)
    completed = install.run("update", "--image-tag", UNPUSHED_TAG, "--yes")
    assert completed.code == 1, completed.stderr
    assert "could not pull" in completed.stderr
    assert _files(install.data_dir) == before_files
    assert _containers(install) == before_containers
    for service, (_, state, _) in before_containers.items():
        if service != "data-init":
            assert state == "running", service
    status = install.run("status", "--json")
    assert status.code == 0, status.stdout
