"""Faults around start on a real engine: a missing image, the lock, Ctrl+C."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.images.build import IMAGE_TAG, StandInImages
from tests.stack.conftest import Cell
from tests.stack.harness import Install

pytestmark = [pytest.mark.docker, pytest.mark.cell("full")]


@pytest.fixture(scope="module")
def faults(stack: Install, cell: Cell, images: StandInImages) -> Install:
    completed = stack.init()
    assert completed.code == 0, completed.stderr
    stack.point_at_stand_in_images()
    return stack


def test_missing_image_fails_before_up(faults: Install) -> None:
    faults.update_config(image_tag="no-such-tag")
    try:
        completed = faults.run("start", "--no-pull")
    finally:
        faults.update_config(image_tag=IMAGE_TAG)
    assert completed.code == 1
    assert "synthorg-backend:no-such-tag" in completed.stderr
    assert "--no-pull needs every image locally" in completed.stderr


def test_second_start_fails_on_lock(faults: Install) -> None:
    first = faults.popen("start", "--no-pull", "--no-wait", "-v")
    try:
        assert first.stderr is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = first.stderr.readline()
            lines.append(line)
            if "starting project" in line or not line:
                break
        second = faults.run("start", "--no-pull", env={"SYNTHORG_LOCK_TIMEOUT": "1s"})
    finally:
        first.communicate(timeout=180)
    assert second.code == 1
    assert "a lifecycle operation" in second.stderr
    assert "is already running for" in second.stderr
    assert first.returncode == 0


def test_ctrl_c_during_start_exits_130(faults: Install) -> None:
    # Fresh volumes make compose up wait for PostgreSQL's first initialisation,
    # so the interrupt lands while Compose runs.
    stopped = faults.run("stop", "--volumes", "--yes", "--timeout", "2")
    assert stopped.code == 0, stopped.stderr
    before = (faults.data_dir / "config.json").read_bytes()
    process = faults.popen("start", "--no-pull", "-v")
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if "starting project" in line or not line:
            break
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    leftovers = [p.name for p in faults.data_dir.iterdir() if ".tmp-" in p.name]
    assert leftovers == []
    assert (faults.data_dir / "config.json").read_bytes() == before
    json.loads(before)
    restarted = faults.run("start", "--no-pull")
    assert restarted.code == 0, restarted.stderr
