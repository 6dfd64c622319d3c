"""init: flags, bad input, re-init, secrets and the order of writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from synthorg_tasks.errors import SynthorgError, UsageError
from synthorg_tasks.lifecycle.init import InitRequest, run_init
from synthorg_tasks.output import Output
from synthorg_tasks.state.secrets import percent_encode
from tests.conftest import run_synthorg

REPO = Path(__file__).resolve().parents[2]


def _snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _config(folder: Path) -> dict[str, object]:
    return json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize(
    ("backend", "bus"),
    [
        ("sqlite", "internal"),
        ("postgres", "internal"),
        ("sqlite", "nats"),
        ("postgres", "nats"),
    ],
)
def test_init_writes_each_topology(tmp_path: Path, backend: str, bus: str) -> None:
    data = tmp_path / "install"
    result = run_synthorg(
        "init", "--data-dir", str(data), "--backend", backend, "--bus", bus
    )
    assert result.code == 0, result.output
    config = _config(data)
    assert config["persistence_backend"] == backend
    assert config["bus_backend"] == bus
    assert (data / "nats.conf").exists() == (bus == "nats")
    assert ("postgres_password" in config) == (backend == "postgres")
    compose = (data / "compose.yml").read_text()
    assert ("  postgres:\n" in compose) == (backend == "postgres")
    assert ("  nats:\n" in compose) == (bus == "nats")


def test_defaults_without_tty_are_sqlite_internal(tmp_path: Path) -> None:
    result = run_synthorg("init", "--data-dir", str(tmp_path / "d"))
    assert result.code == 0, result.output
    config = _config(tmp_path / "d")
    assert config["persistence_backend"] == "sqlite"
    assert config["bus_backend"] == "internal"


def test_aliases_accepted_and_conflict_rejected(tmp_path: Path) -> None:
    ok = run_synthorg(
        "init",
        "--data-dir",
        str(tmp_path / "a"),
        "--persistence-backend",
        "postgres",
        "--bus-backend",
        "nats",
    )
    assert ok.code == 0, ok.output
    assert _config(tmp_path / "a")["bus_backend"] == "nats"
    clash = run_synthorg(
        "init",
        "--data-dir",
        str(tmp_path / "b"),
        "--backend",
        "postgres",
        "--persistence-backend",
        "sqlite",
    )
    assert clash.code == 2
    assert "--persistence-backend" in clash.stderr
    assert not (tmp_path / "b").exists()


BAD_FLAGS = [
    pytest.param(["--web-port", "0"], "--web-port", id="port-zero"),
    pytest.param(["--web-port", "65536"], "--web-port", id="port-too-big"),
    pytest.param(["--web-port", "abc"], "--web-port", id="port-not-number"),
    pytest.param(["--web-port", "080"], "--web-port", id="port-leading-zero"),
    pytest.param(["--backend-port", "-5"], "--backend-port", id="port-negative"),
    pytest.param(["--web-port", "3001"], "3001", id="web-equals-backend"),
    pytest.param(
        ["--backend", "postgres", "--postgres-port", "3000"],
        "3000",
        id="postgres-equals-web",
    ),
    pytest.param(
        ["--bus", "nats", "--nats-port", "3001"], "3001", id="nats-equals-backend"
    ),
    pytest.param(
        [
            "--backend",
            "postgres",
            "--bus",
            "nats",
            "--postgres-port",
            "4000",
            "--nats-port",
            "4000",
        ],
        "4000",
        id="nats-equals-postgres",
    ),
    pytest.param(
        ["--postgres-port", "3010"], "--postgres-port", id="postgres-flag-with-sqlite"
    ),
    pytest.param(["--nats-port", "3010"], "--nats-port", id="nats-flag-internal-bus"),
    pytest.param(
        ["--project-name", "Bad_Name"], "--project-name", id="project-uppercase"
    ),
    pytest.param(["--project-name", "-lead"], "--project-name", id="project-dash"),
    pytest.param(["--project-name", "a" * 64], "--project-name", id="project-long"),
    pytest.param(["--image-tag", ".bad"], "--image-tag", id="tag-leading-dot"),
    pytest.param(["--image-tag", "a" * 129], "--image-tag", id="tag-too-long"),
    pytest.param(["--bind-address", "localhost"], "--bind-address", id="bind-name"),
    pytest.param(
        ["--bind-address", "127.000.0.1"], "--bind-address", id="bind-leading-zero"
    ),
    pytest.param(
        ["--bind-address", "224.0.0.1"], "--bind-address", id="bind-multicast"
    ),
    pytest.param(
        ["--bind-address", "::ffff:127.0.0.1"], "--bind-address", id="bind-ipv4-mapped"
    ),
    pytest.param(["--bind-address", "[::1]"], "--bind-address", id="bind-brackets"),
    pytest.param(["--backend", "mysql"], "--backend", id="backend-unknown"),
    pytest.param(["--bus", "kafka"], "--bus", id="bus-unknown"),
    pytest.param(["--channel", "beta"], "--channel", id="channel-unknown"),
    pytest.param(["--log-level", "trace"], "--log-level", id="log-level-unknown"),
]


@pytest.mark.parametrize(("flags", "named"), BAD_FLAGS)
def test_bad_flag_exits_2_and_writes_nothing(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    data = tmp_path / "fresh"
    result = run_synthorg("init", "--data-dir", str(data), *flags)
    assert result.code == 2, result.output
    assert named in result.stderr
    assert "hint:" in result.stderr
    assert not data.exists()


# On an install that stores postgres and nats, their port flags are legal.
BAD_FLAGS_ON_EXISTING = [
    p
    for p in BAD_FLAGS
    if p.id not in ("postgres-flag-with-sqlite", "nats-flag-internal-bus")
]


@pytest.mark.parametrize(("flags", "named"), BAD_FLAGS_ON_EXISTING)
def test_bad_flag_leaves_existing_install(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    data = tmp_path / "existing"
    first = run_synthorg(
        "init", "--data-dir", str(data), "--backend", "postgres", "--bus", "nats"
    )
    assert first.code == 0, first.output
    before = _snapshot(data)
    result = run_synthorg("init", "--data-dir", str(data), "--yes", *flags)
    assert result.code == 2, result.output
    assert named in result.stderr
    assert _snapshot(data) == before


def test_reinit_requires_yes_without_tty(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert run_synthorg("init", "--data-dir", str(data)).code == 0
    before = _snapshot(data)
    again = run_synthorg("init", "--data-dir", str(data), "--web-port", "4000")
    assert again.code == 2
    assert "already exists; re-run with --yes" in again.stderr
    assert _snapshot(data) == before


def test_reinit_keeps_password_byte_identical(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    assert (
        run_synthorg("init", "--data-dir", str(data), "--backend", "postgres").code == 0
    )
    raw = (data / "config.json").read_bytes()
    password = json.loads(raw)["postgres_password"]
    for _ in range(2):
        again = run_synthorg("init", "--data-dir", str(data), "--yes")
        assert again.code == 0, again.output
        assert _config(data)["postgres_password"] == password
    assert (data / "config.json").read_bytes() == raw


def test_reinit_carries_forward_settings(tmp_path: Path) -> None:
    data = tmp_path / "carry"
    first = run_synthorg(
        "init",
        "--data-dir",
        str(data),
        "--backend",
        "postgres",
        "--bus",
        "nats",
        "--postgres-port",
        "4002",
        "--web-port",
        "4000",
        "--log-level",
        "debug",
        "--project-name",
        "keep",
    )
    assert first.code == 0, first.output
    stored = _config(data)
    stored["sandbox"] = {"enabled": True}
    (data / "config.json").write_text(json.dumps(stored))
    again = run_synthorg(
        "init", "--data-dir", str(data), "--yes", "--backend-port", "4001"
    )
    assert again.code == 0, again.output
    config = _config(data)
    assert config["postgres_port"] == 4002
    assert config["web_port"] == 4000
    assert config["backend_port"] == 4001
    assert config["log_level"] == "debug"
    assert config["project_name"] == "keep"
    assert config["bus_backend"] == "nats"
    assert config["sandbox"] == {"enabled": True}


def test_reinit_to_sqlite_drops_postgres_and_warns(tmp_path: Path) -> None:
    data = tmp_path / "switch"
    assert (
        run_synthorg("init", "--data-dir", str(data), "--backend", "postgres").code == 0
    )
    again = run_synthorg(
        "init", "--data-dir", str(data), "--yes", "--backend", "sqlite"
    )
    assert again.code == 0, again.output
    config = _config(data)
    assert "postgres_password" not in config
    assert "postgres_port" not in config
    assert "PostgreSQL volume is kept" in again.stderr


def test_reinit_clears_verified_digests(tmp_path: Path) -> None:
    data = tmp_path / "cache"
    assert run_synthorg("init", "--data-dir", str(data)).code == 0
    stored = _config(data)
    stored["verified_digests"] = {"backend": "sha256:" + "a" * 64}
    stored["verified_image_tag"] = stored["image_tag"]
    (data / "config.json").write_text(json.dumps(stored))
    assert run_synthorg("init", "--data-dir", str(data), "--yes").code == 0
    config = _config(data)
    assert "verified_digests" not in config
    assert "verified_image_tag" not in config


def test_switch_to_nats_removes_stale_file_when_back(tmp_path: Path) -> None:
    data = tmp_path / "bus"
    assert run_synthorg("init", "--data-dir", str(data), "--bus", "nats").code == 0
    assert (data / "nats.conf").exists()
    assert (
        run_synthorg("init", "--data-dir", str(data), "--yes", "--bus", "internal").code
        == 0
    )
    assert not (data / "nats.conf").exists()
    assert "nats_client_port" not in _config(data)


def test_unparseable_config_is_hard_error_and_untouched(tmp_path: Path) -> None:
    data = tmp_path / "broken"
    assert (
        run_synthorg("init", "--data-dir", str(data), "--backend", "postgres").code == 0
    )
    truncated = (data / "config.json").read_bytes()[:40]
    (data / "config.json").write_bytes(truncated)
    result = run_synthorg("init", "--data-dir", str(data), "--yes")
    assert result.code == 1
    assert str(data / "config.json") in result.stderr
    assert "left untouched" in result.stderr
    assert (data / "config.json").read_bytes() == truncated


def test_volume_refusal_without_stored_password(tmp_path: Path) -> None:
    request = InitRequest(backend="postgres", environ={})
    with pytest.raises(SynthorgError) as caught:
        run_init(request, tmp_path / "vol", Output(), volume_probe=lambda _: True)
    assert "synthorg-pgdata already exists" in caught.value.message
    assert caught.value.exit_code == 1
    assert not (tmp_path / "vol").exists()


def test_volume_check_skipped_is_announced(tmp_path: Path) -> None:
    request = InitRequest(backend="postgres", environ={})
    result = run_init(request, tmp_path / "v", Output(), volume_probe=lambda _: None)
    assert any("check was skipped" in w for w in result.warnings)


def test_project_rename_refused_while_containers_exist(tmp_path: Path) -> None:
    data = tmp_path / "rename"
    run_init(InitRequest(environ={}), data, Output())
    with pytest.raises(SynthorgError) as caught:
        run_init(
            InitRequest(project_name="other", yes=True, environ={}),
            data,
            Output(),
            container_probe=lambda _: True,
        )
    assert "stop the stack first" in caught.value.message


def test_env_twins_apply_and_flag_wins(tmp_path: Path) -> None:
    env = {
        "SYNTHORG_WEB_PORT": "4100",
        "SYNTHORG_BACKEND_PORT": "4101",
        "SYNTHORG_IMAGE_TAG": "1.2.3",
        "SYNTHORG_LOG_LEVEL": "warn",
    }
    result = run_init(
        InitRequest(web_port="4200", environ=env), tmp_path / "e", Output()
    )
    assert result.config.web_port == 4200
    assert result.config.backend_port == 4101
    assert result.config.image_tag == "1.2.3"
    assert result.config.log_level == "warn"


def test_bad_env_twin_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        run_init(
            InitRequest(environ={"SYNTHORG_WEB_PORT": "x"}), tmp_path / "e", Output()
        )
    assert "SYNTHORG_WEB_PORT" in caught.value.message


def test_wildcard_bind_warns_unsuppressibly(tmp_path: Path) -> None:
    result = run_synthorg(
        "init",
        "--data-dir",
        str(tmp_path / "w"),
        "--quiet",
        "--bind-address",
        "0.0.0.0",
    )
    assert result.code == 0, result.output
    assert "publishes every port" in result.stderr
    compose = (tmp_path / "w" / "compose.yml").read_text()
    assert '"0.0.0.0:3000:8080"' in compose


def test_ipv6_bind_is_bracketed_in_ports(tmp_path: Path) -> None:
    result = run_synthorg(
        "init", "--data-dir", str(tmp_path / "v6"), "--bind-address", "0:0:0:0:0:0:0:1"
    )
    assert result.code == 0, result.output
    assert _config(tmp_path / "v6")["bind_address"] == "::1"
    assert '"[::1]:3001:3001"' in (tmp_path / "v6" / "compose.yml").read_text()


def test_json_output_is_one_document_without_secret(tmp_path: Path) -> None:
    result = run_synthorg(
        "init",
        "--data-dir",
        str(tmp_path / "j"),
        "--backend",
        "postgres",
        "--bus",
        "nats",
        "--json",
    )
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {
        "data_dir",
        "project_name",
        "bind_address",
        "ports",
        "persistence_backend",
        "bus_backend",
        "image_tag",
        "channel",
        "files",
        "reinit",
    }
    password = _config(tmp_path / "j")["postgres_password"]
    assert isinstance(password, str)
    assert password not in result.output


def test_password_never_in_output_or_logs(tmp_path: Path) -> None:
    data = tmp_path / "secret"
    first = run_synthorg(
        "init", "--data-dir", str(data), "--backend", "postgres", "-vv"
    )
    password = _config(data)["postgres_password"]
    assert isinstance(password, str)
    runs = [
        first,
        run_synthorg("init", "--data-dir", str(data), "--yes", "--debug"),
        run_synthorg("init", "--data-dir", str(data), "--yes", "--json"),
        run_synthorg("init", "--data-dir", str(data), "--yes", "--web-port", "3001"),
    ]
    for result in runs:
        for form in (password, percent_encode(password), password.replace("$", "$$")):
            assert form not in result.output


def test_stored_odd_password_is_masked_in_errors(tmp_path: Path) -> None:
    data = tmp_path / "odd"
    assert (
        run_synthorg("init", "--data-dir", str(data), "--backend", "postgres").code == 0
    )
    stored = _config(data)
    odd = "p@ss$w:rd/#%'\"" + "x" * 30
    stored["postgres_password"] = odd
    stored["log_level"] = 7  # invalid type, so the new config fails to load back
    (data / "config.json").write_text(json.dumps(stored))
    result = run_synthorg("init", "--data-dir", str(data), "--yes", "--debug")
    assert result.code != 0
    for form in (odd, percent_encode(odd), odd.replace("$", "$$")):
        assert form not in result.output


def _init_subprocess(
    data: Path, *flags: str, umask: int
) -> subprocess.CompletedProcess[str]:
    code = (
        "import os, sys; os.umask(int(sys.argv[1], 8)); sys.argv = ['synthorg', "
        "*sys.argv[2:]]; from synthorg_tasks.program import main; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            oct(umask)[2:],
            "init",
            "--data-dir",
            str(data),
            *flags,
        ],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077], ids=["0000", "0022", "0077"])
def test_file_modes_under_umask(tmp_path: Path, umask: int) -> None:
    data = tmp_path / "modes"
    flags = ("--backend", "postgres", "--bus", "nats")
    first = _init_subprocess(data, *flags, umask=umask)
    assert first.returncode == 0, first.stderr
    again = _init_subprocess(data, "--yes", *flags, umask=umask)
    assert again.returncode == 0, again.stderr
    assert _mode(data) == 0o700
    assert _mode(data / "config.json") == 0o600
    assert _mode(data / "compose.yml") == 0o600
    assert _mode(data / "nats.conf") == 0o644
    assert _mode(data.with_name("modes.lock")) == 0o600


def test_loose_data_dir_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "loose"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    result = run_synthorg("init", "--data-dir", str(data))
    assert result.code == 0, result.output
    assert _mode(data) == 0o700
    assert "tightened to 0700" in result.stderr


def test_symlinked_config_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "link"
    data.mkdir()
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    (data / "config.json").symlink_to(target)
    result = run_synthorg("init", "--data-dir", str(data))
    assert result.code == 1
    assert "symbolic link" in result.stderr
    assert target.read_text() == "{}"


def test_root_and_home_data_dir_refused(tmp_path: Path) -> None:
    assert run_synthorg("init", "--data-dir", "/").code == 2
    home = run_synthorg("init", "--data-dir", str(Path.home()))
    assert home.code == 2
    assert "home folder" in home.stderr


def test_project_name_derived_from_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "My Synth.Org!"
    assert run_synthorg("init", "--data-dir", str(data)).code == 0
    assert _config(data)["project_name"] == "mysynthorg"
