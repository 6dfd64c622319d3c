"""Atomic writes and the lifecycle lock."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthorg_tasks.errors import ConfigError, LockTimeout
from synthorg_tasks.lifecycle.init import InitRequest, run_init
from synthorg_tasks.output import Output
from synthorg_tasks.state import atomic
from synthorg_tasks.state.atomic import atomic_write, stale_temp_files
from synthorg_tasks.state.lock import LifecycleLock

REPO = Path(__file__).resolve().parents[2]


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_final_mode_under_umask_zero(tmp_path: Path, mode: int) -> None:
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "f", b"data", mode=mode)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == mode


def test_temp_file_is_private_while_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_replace = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    real_write = os.write

    def write_spy(fd: int, data: bytes | memoryview) -> int:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    monkeypatch.setattr(atomic.os, "replace", spy)
    monkeypatch.setattr(atomic.os, "write", write_spy)
    old = os.umask(0)
    try:
        atomic_write(tmp_path / "secret", b"password", mode=0o600)
    finally:
        os.umask(old)
    assert seen
    assert all(mode & 0o077 == 0 for mode in seen)


@pytest.mark.parametrize("failing", ["write", "fsync", "fchmod", "replace"])
def test_injected_failure_keeps_target_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "config.json"
    target.write_bytes(b"old")

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, failing, boom)
    with pytest.raises(ConfigError) as caught:
        atomic_write(target, b"new")
    assert str(target) in caught.value.message or str(tmp_path) in caught.value.message
    assert target.read_bytes() == b"old"
    assert _temps(tmp_path) == []


def test_failed_rename_during_reinit_keeps_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "install"
    run_init(InitRequest(backend="postgres", bus="nats", environ={}), data, Output())
    before = {p.name: p.read_bytes() for p in data.iterdir()}
    real_replace = os.replace
    calls = {"n": 0}

    def fail_second(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # nats.conf succeeds, compose.yml fails
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", fail_second)
    with pytest.raises(ConfigError):
        run_init(InitRequest(web_port="4000", yes=True, environ={}), data, Output())
    after = {p.name: p.read_bytes() for p in data.iterdir()}
    assert after == before
    assert _temps(data) == []


def test_interrupt_during_write_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "f", b"x")
    assert _temps(tmp_path) == []
    assert not (tmp_path / "f").exists()


def test_stale_temp_swept_only_after_an_hour(tmp_path: Path) -> None:
    fresh = tmp_path / ".config.json.tmp-1-aaaa"
    stale = tmp_path / ".config.json.tmp-2-bbbb"
    other = tmp_path / ".compose.yml.tmp-3-cccc"
    for path in (fresh, stale, other):
        path.write_text("secret")
    hour_ago = time.time() - 3700
    os.utime(stale, (hour_ago, hour_ago))
    os.utime(other, (hour_ago, hour_ago))
    assert stale_temp_files(tmp_path, "config.json") == [stale]
    atomic_write(tmp_path / "config.json", b"{}")
    assert fresh.exists()
    assert not stale.exists()
    assert other.exists()


def test_symlink_target_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("keep")
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(ConfigError) as caught:
        atomic_write(tmp_path / "link", b"new")
    assert "symbolic link" in caught.value.message
    assert real.read_text() == "keep"


def test_exclusive_create_never_reuses_a_planted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: "0" * (2 * n))
    planted = tmp_path / f".f.tmp-{os.getpid()}-{'0' * 16}"
    planted.symlink_to(tmp_path / "victim")
    with pytest.raises(ConfigError):
        atomic_write(tmp_path / "f", b"secret")
    assert not (tmp_path / "victim").exists()


def test_second_lock_holder_times_out(tmp_path: Path) -> None:
    data = tmp_path / "d"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from synthorg_tasks.state.lock import LifecycleLock; "
            "lock = LifecycleLock(Path(sys.argv[1])); lock.acquire(); "
            "print('held', flush=True); time.sleep(30)",
            str(data),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            LifecycleLock(data, timeout=0.5).acquire()
        assert time.monotonic() - started >= 0.5
        assert str(data) in caught.value.message
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with LifecycleLock(data, timeout=2) as lock:
        assert lock.held
    assert not lock.held


def test_lock_is_not_reentrant(tmp_path: Path) -> None:
    lock = LifecycleLock(tmp_path / "d")
    lock.acquire()
    try:
        with pytest.raises(RuntimeError):
            lock.acquire()
    finally:
        lock.release()
    lock.release()
