"""The image platform of the engine or the host."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from synthorg_tasks.engine.platform import (
    engine_platform,
    host_image_platform,
    oci_architecture,
)
from tests.capabilities import require

MACHINES = {
    "x86_64": ("x86_64", "amd64"),
    "aarch64": ("aarch64", "arm64"),
    "arm64-already": ("arm64", "arm64"),
    "armv7l": ("armv7l", "arm/v7"),
    "i686": ("i686", "386"),
    "upper-case": ("X86_64", "amd64"),
    "unknown-kept": ("mips64", "mips64"),
}


@pytest.mark.parametrize(("machine", "expected"), MACHINES.values(), ids=MACHINES)
def test_oci_architecture(machine: str, expected: str) -> None:
    assert oci_architecture(machine) == expected


def test_unreachable_engine_has_no_platform() -> None:
    # The test environment points DOCKER_HOST at a socket that does not exist.
    assert engine_platform(timeout=1.0) is None


def test_host_platform_names_this_machine() -> None:
    system, architecture = host_image_platform().split("/", 1)
    assert system == "linux"
    assert architecture == oci_architecture(platform.machine())


@pytest.mark.docker
def test_real_engine_reports_its_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    binary = shutil.which("dockerd") or "/usr/sbin/dockerd"
    require(
        "docker",
        os.access(binary, os.X_OK) and os.geteuid() == 0,
        "dockerd is not installed or this user cannot start it (needs root)",
    )
    # Unix socket paths are limited to 108 bytes, and containerd's socket lives
    # several levels below the exec root, so the engine gets a short folder.
    with tempfile.TemporaryDirectory(prefix="synthorg-engine-", dir="/tmp") as name:
        root = Path(name)
        process = _start_engine(binary, root)
        try:
            monkeypatch.setenv("DOCKER_HOST", f"unix://{root / 'docker.sock'}")
            found = _poll_platform(process, root, timeout=30.0)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    assert found == f"linux/{oci_architecture(platform.machine())}"


def _start_engine(binary: str, root: Path) -> subprocess.Popen[bytes]:
    with (root / "dockerd.log").open("wb") as log:
        return subprocess.Popen(
            [
                binary,
                f"--data-root={root / 'data'}",
                f"--exec-root={root / 'exec'}",
                f"--pidfile={root / 'dockerd.pid'}",
                f"--host=unix://{root / 'docker.sock'}",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--bridge=none",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _poll_platform(
    process: subprocess.Popen[bytes], root: Path, timeout: float
) -> str | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (root / "dockerd.log").read_text(errors="replace")
            raise AssertionError(f"dockerd exited: {log[-2000:]}")
        found = engine_platform(timeout=2.0)
        if found is not None:
            return found
        time.sleep(0.2)
    return None
