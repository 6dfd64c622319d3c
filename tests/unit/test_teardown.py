"""uninstall and wipe: guards, confirmation, --keep-data, engine absent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synthorg_tasks.errors import ExitCode, SynthorgError, UsageError
from synthorg_tasks.lifecycle import teardown
from synthorg_tasks.output import Output
from synthorg_tasks.state.lock import lock_path
from tests.unit.conftest import Installer

QUIET = Output(quiet=True)


@pytest.fixture(autouse=True)
def _unreachable_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the engine adapter at a closed loopback port: no engine answers."""
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")


class RecordingStopper:
    """Stands in for the engine: records each stop request and reports success."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Path, bool]] = []

    def __call__(self, project: str, data_dir: Path, volumes: bool) -> str | None:
        self.calls.append((project, data_dir, volumes))
        assert data_dir.exists()
        return None


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("relative/dir", id="relative"),
        pytest.param("", id="empty"),
        pytest.param("/", id="root"),
        pytest.param("/..", id="root-dotdot"),
        pytest.param(str(Path.home()), id="home"),
        pytest.param(str(Path.home()) + "/", id="home-slash"),
    ],
)
def test_check_removable_rejects(path: str) -> None:
    with pytest.raises(UsageError) as caught:
        teardown.check_removable(path)
    assert caught.value.message.startswith("refusing to delete")


def test_check_removable_rejects_link_to_home(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(Path.home())
    with pytest.raises(UsageError):
        teardown.check_removable(link)


def test_check_removable_accepts_install(tmp_path: Path) -> None:
    assert teardown.check_removable(tmp_path / "data") == tmp_path / "data"


def test_uninstall_without_yes_refuses(install: Installer) -> None:
    data_dir = install()
    with pytest.raises(UsageError) as caught:
        teardown.run_uninstall(data_dir, QUIET, keep_data=False, yes=False)
    assert caught.value.exit_code == ExitCode.USAGE
    assert "without confirmation; pass --yes" in caught.value.message
    assert (data_dir / "config.json").exists()


def test_uninstall_removes_data_dir(install: Installer) -> None:
    data_dir = install()
    stopper = RecordingStopper()
    result = teardown.run_uninstall(
        data_dir, QUIET, keep_data=False, yes=True, stopper=stopper
    )
    assert stopper.calls == [("install", data_dir, True)]
    assert result.data_dir_removed
    assert result.volumes_removed
    assert not data_dir.exists()
    assert not lock_path(data_dir).exists()


def test_uninstall_keep_data(install: Installer) -> None:
    data_dir = install()
    before = (data_dir / "config.json").read_bytes()
    stopper = RecordingStopper()
    result = teardown.run_uninstall(
        data_dir, QUIET, keep_data=True, yes=True, stopper=stopper
    )
    assert stopper.calls == [("install", data_dir, False)]
    assert not result.data_dir_removed
    assert not result.volumes_removed
    assert (data_dir / "config.json").read_bytes() == before


def test_uninstall_engine_absent_says_unchecked(install: Installer) -> None:
    data_dir = install()
    result = teardown.run_uninstall(data_dir, QUIET, keep_data=False, yes=True)
    assert not result.containers_checked
    assert not result.volumes_removed
    assert any("containers were not checked" in w for w in result.warnings)
    assert not data_dir.exists()


def test_uninstall_broken_config_continues(install: Installer) -> None:
    data_dir = install()
    (data_dir / "config.json").write_text("{")
    stopper = RecordingStopper()
    result = teardown.run_uninstall(
        data_dir, QUIET, keep_data=False, yes=True, stopper=stopper
    )
    assert stopper.calls[0][0] == "install"
    assert any("cannot load config.json" in w for w in result.warnings)
    assert not data_dir.exists()


def test_wipe_keeps_configuration(install: Installer) -> None:
    data_dir = install()
    before = (data_dir / "config.json").read_bytes()
    stopper = RecordingStopper()
    result = teardown.run_wipe(data_dir, QUIET, yes=True, stopper=stopper)
    assert stopper.calls == [("install", data_dir, True)]
    assert result.volumes_removed
    assert (data_dir / "config.json").read_bytes() == before


def test_wipe_engine_absent_fails(install: Installer) -> None:
    data_dir = install()
    with pytest.raises(SynthorgError) as caught:
        teardown.run_wipe(data_dir, QUIET, yes=True)
    assert caught.value.message.startswith("nothing was wiped: ")
    assert caught.value.exit_code == ExitCode.FAILURE


def test_wipe_without_yes_refuses(install: Installer) -> None:
    data_dir = install()
    stopper = RecordingStopper()
    with pytest.raises(UsageError):
        teardown.run_wipe(data_dir, QUIET, yes=False, stopper=stopper)
    assert stopper.calls == []


def test_cli_uninstall_keep_data(install: Installer, synthorg: Any) -> None:
    data_dir = install()
    result = synthorg("uninstall", "--keep-data", "--yes", "--data-dir", str(data_dir))
    assert result.code == 0
    assert "containers were not checked" in result.stderr
    assert "data kept in" in result.stdout
    assert (data_dir / "config.json").exists()


def test_cli_uninstall_without_yes_exits_2(install: Installer, synthorg: Any) -> None:
    data_dir = install()
    result = synthorg("uninstall", "--data-dir", str(data_dir))
    assert result.code == ExitCode.USAGE
    assert "refusing to uninstall without confirmation; pass --yes" in result.stderr
    assert data_dir.exists()
