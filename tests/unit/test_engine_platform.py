"""The image platform of the engine or the host."""

from __future__ import annotations

import platform

import pytest

from synthorg_tasks.engine.platform import (
    engine_platform,
    host_image_platform,
    oci_architecture,
)

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
