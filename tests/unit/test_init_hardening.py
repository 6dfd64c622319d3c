"""init against hostile or unusual file systems, races and stored values."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthorg_tasks.errors import SynthorgError, UsageError
from synthorg_tasks.lifecycle.init import InitRequest, run_init
from synthorg_tasks.output import Output
from tests.conftest import run_synthorg

REPO = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_sticky_shared_folder_is_rejected(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    result = run_synthorg("init", "--data-dir", str(shared))
    assert result.code == 2
    assert "shared folder" in result.stderr
    assert _mode(shared) == 0o1777
    assert list(shared.iterdir()) == []
    assert not shared.with_name("shared.lock").exists()


def test_parents_are_not_world_writable_under_umask_zero(tmp_path: Path) -> None:
    code = (
        "import os, sys; os.umask(0); sys.argv = ['synthorg', *sys.argv[1:]]; "
        "from synthorg_tasks.program import main; main()"
    )
    data = tmp_path / "a" / "b" / "d"
    result = subprocess.run(
        [sys.executable, "-c", code, "init", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert _mode(tmp_path / "a") == 0o755
    assert _mode(tmp_path / "a" / "b") == 0o755
    assert _mode(data) == 0o700


def test_config_written_meanwhile_is_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "race"
    from synthorg_tasks.lifecycle import init as init_module

    real_lock = init_module.LifecycleLock

    other = tmp_path / "other"
    run_init(InitRequest(backend="postgres", environ={}), other, Output())
    winner = (other / "config.json").read_bytes()

    class RacingLock(real_lock):  # type: ignore[misc, valid-type]
        def acquire(self) -> None:
            # Another init writes its config just before this one takes the lock.
            (data / "config.json").write_bytes(winner)
            super().acquire()

    monkeypatch.setattr(init_module, "LifecycleLock", RacingLock)
    with pytest.raises(SynthorgError) as caught:
        run_init(
            InitRequest(backend="postgres", web_port="4000", environ={}), data, Output()
        )
    assert "changed while init was running" in caught.value.message
    assert (data / "config.json").read_bytes() == winner
    assert not (data / "compose.yml").exists()


def test_concurrent_fresh_inits_keep_one_password(tmp_path: Path) -> None:
    data = tmp_path / "both"
    code = (
        "import sys; sys.argv = ['synthorg', *sys.argv[1:]]; "
        "from synthorg_tasks.program import main; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                "init",
                "--data-dir",
                str(data),
                "--backend",
                "postgres",
                "--web-port",
                port,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        for port in ("4000", "4100")
    ]
    codes = [run.wait(timeout=60) for run in runs]
    errors = []
    for run in runs:
        assert run.stderr is not None
        errors.append(run.stderr.read())
        run.stderr.close()
    # Without --yes only one fresh init may write; the other sees the file,
    # either before planning (exit 2) or inside the lock (exit 1).
    assert sorted(codes) in ([0, 1], [0, 2]), errors
    loser = errors[codes.index(max(codes))]
    assert "already exists" in loser or "changed while init was running" in loser
    stored = json.loads((data / "config.json").read_text())
    assert stored["web_port"] == (4000 if codes[0] == 0 else 4100)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("postgres_password", 12345),
        ("web_port", "4000"),
        ("web_port", 4000.0),
        ("web_port", True),
        ("schema_version", "1"),
        ("schema_version", True),
    ],
)
def test_wrongly_typed_stored_value_is_not_replaced(
    tmp_path: Path, key: str, value: object
) -> None:
    data = tmp_path / "typed"
    run_init(InitRequest(backend="postgres", environ={}), data, Output())
    stored = json.loads((data / "config.json").read_text())
    stored[key] = value
    (data / "config.json").write_text(json.dumps(stored))
    before = _snapshot(data)
    result = run_synthorg("init", "--data-dir", str(data), "--yes")
    assert result.code == 1, result.output
    assert key in result.stderr
    assert _snapshot(data) == before


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "new"
    run_init(InitRequest(environ={}), data, Output())
    stored = json.loads((data / "config.json").read_text())
    stored["schema_version"] = 2
    (data / "config.json").write_text(json.dumps(stored))
    before = _snapshot(data)
    result = run_synthorg("init", "--data-dir", str(data), "--yes")
    assert result.code == 1
    assert "newer than this toolkit supports" in result.stderr
    assert _snapshot(data) == before


@pytest.mark.parametrize(
    "content",
    ['{"web_port": ' + "9" * 5000 + "}", "[" * 100000],
    ids=["huge-integer", "deep-nesting"],
)
def test_pathological_json_is_a_clean_error(tmp_path: Path, content: str) -> None:
    data = tmp_path / "p"
    data.mkdir(mode=0o700)
    (data / "config.json").write_text(content)
    result = run_synthorg("init", "--data-dir", str(data), "--yes")
    assert result.code == 1
    assert "Traceback" not in result.output
    assert "left untouched" in result.stderr


def test_fifo_config_is_rejected_without_blocking(tmp_path: Path) -> None:
    data = tmp_path / "fifo"
    data.mkdir(mode=0o700)
    os.mkfifo(data / "config.json")
    started = time.monotonic()
    result = run_synthorg("init", "--data-dir", str(data), "--yes")
    assert time.monotonic() - started < 10
    assert result.code == 1
    assert "not a regular file" in result.stderr


def test_stale_temp_folder_does_not_break_init(tmp_path: Path) -> None:
    data = tmp_path / "stale"
    data.mkdir(mode=0o700)
    odd = data / ".nats.conf.tmp-1-x"
    odd.mkdir()
    old = time.time() - 7200
    os.utime(odd, (old, old))
    result = run_synthorg("init", "--data-dir", str(data), "--bus", "nats")
    assert result.code == 0, result.output
    assert odd.is_dir()


def test_lock_timeout_from_environment(tmp_path: Path) -> None:
    data = tmp_path / "locked"
    code = (
        "import sys, time; from pathlib import Path; "
        "from synthorg_tasks.state.lock import LifecycleLock; "
        "LifecycleLock(Path(sys.argv[1])).acquire(); print('held', flush=True); "
        "time.sleep(30)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(data)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        with pytest.raises(SynthorgError) as caught:
            run_init(
                InitRequest(environ={"SYNTHORG_LOCK_TIMEOUT": "1s"}), data, Output()
            )
        elapsed = time.monotonic() - started
        assert "already running" in caught.value.message
        assert 1 <= elapsed < 4
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SYNTHORG_CHANNEL": "bogus"}, "SYNTHORG_CHANNEL"),
        ({"SYNTHORG_IMAGE_TAG": "bad tag"}, "SYNTHORG_IMAGE_TAG"),
        ({"SYNTHORG_WEB_PORT": "x"}, "SYNTHORG_WEB_PORT"),
    ],
)
def test_env_errors_name_the_variable(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    with pytest.raises(UsageError) as caught:
        run_init(InitRequest(environ=env), tmp_path / "e", Output())
    assert named in caught.value.message


def test_collision_names_the_given_flag(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        run_init(InitRequest(web_port="3001", environ={}), tmp_path / "c", Output())
    assert caught.value.message.startswith("--web-port 3001 is already used by")
    assert caught.value.hints == ["pass --web-port with another port"]


def test_volume_found_by_label_is_named(tmp_path: Path) -> None:
    with pytest.raises(SynthorgError) as caught:
        run_init(
            InitRequest(backend="postgres", environ={}),
            tmp_path / "v",
            Output(),
            volume_probe=lambda _: "custom_name",
        )
    assert "volume custom_name already exists" in caught.value.message


@pytest.mark.parametrize("address", ["255.255.255.255", "::127.0.0.1"])
def test_unbindable_addresses_rejected(tmp_path: Path, address: str) -> None:
    result = run_synthorg(
        "init", "--data-dir", str(tmp_path / "b"), "--bind-address", address
    )
    assert result.code == 2
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["init", "--bogus"], "unknown flag or task '--bogus'"),
        (["init", "--web-port"], "--web-port needs a value"),
    ],
)
def test_parse_errors_read_like_usage_errors(argv: list[str], message: str) -> None:
    result = run_synthorg(*argv)
    assert result.code == 2
    assert f"error: {message}" in result.stderr
    assert "hint: run 'synthorg init --help'" in result.stderr
