"""The config collection: views, all-or-nothing changes, edit and import."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from synthorg_tasks.errors import (
    ConfigError,
    ExitCode,
    NotInitialized,
    UsageError,
)
from synthorg_tasks.lifecycle import config_ops
from synthorg_tasks.program import SynthorgProgram
from synthorg_tasks.state.config import load_strict, save_config
from synthorg_tasks.state.lock import LifecycleLock
from tests.unit.conftest import Installer

DIGEST = "sha256:" + "a" * 64


def _files(data_dir: Path) -> dict[str, bytes]:
    return {
        path.name: path.read_bytes()
        for path in sorted(data_dir.iterdir())
        if path.is_file()
    }


@pytest.fixture(autouse=True)
def _no_engine_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Answer "unknown" for the running-stack probe behind the restart hint.

    The probe connects to a Docker engine; these tests check the files and the
    output, and run where no engine exists.
    """
    from synthorg_tasks.tasks import config as config_tasks

    monkeypatch.setattr(config_tasks, "_project_running", lambda project: None)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from synthorg_tasks.namespace import build_namespace

    program = SynthorgProgram(
        name="synthorg",
        binary="synthorg",
        binary_names=["synthorg"],
        namespace=build_namespace(include_dev=False),
    )
    code = 0
    try:
        program.run(["synthorg", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _with_cache(data_dir: Path) -> None:
    config = load_strict(data_dir)
    cached = config.replace(
        verified_digests={"backend": DIGEST, "web": DIGEST},
        verified_image_tag=config.image_tag,
    )
    with LifecycleLock(data_dir) as lock:
        save_config(cached, lock)


# ---------------------------------------------------------------------------
# set and unset


def test_set_writes_every_pair(install: Installer) -> None:
    data_dir = install()
    result = config_ops.run_set(
        data_dir,
        [("web_port", "3005"), ("backend_port", "3006"), ("auto_pull", "true")],
    )
    config = load_strict(data_dir)
    assert config.web_port == 3005
    assert config.backend_port == 3006
    assert config.auto_pull is True
    assert result.compose_regenerated
    assert '"127.0.0.1:3005:8080"' in (data_dir / "compose.yml").read_text()


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param(
            [("web_port", "3005"), ("backend_port", "not-a-port")], id="bad-grammar"
        ),
        pytest.param([("web_port", "3005"), ("nope", "1")], id="unknown-key"),
        pytest.param(
            [("web_port", "3005"), ("project_name", "other")], id="read-only-key"
        ),
        pytest.param([("web_port", "3005"), ("auto_pull", "True")], id="bool-case"),
        pytest.param(
            [("image_tag", "0.9.0"), ("backend_port", "3000")], id="collision"
        ),
        pytest.param(
            [("web_port", "3005"), ("nats_client_port", "4000")],
            id="disabled-service",
        ),
    ],
)
def test_set_with_one_invalid_pair_writes_nothing(
    install: Installer, pairs: list[tuple[str, str]]
) -> None:
    data_dir = install()
    _with_cache(data_dir)
    before = _files(data_dir)
    with pytest.raises(UsageError) as caught:
        config_ops.run_set(data_dir, pairs)
    assert caught.value.exit_code == ExitCode.USAGE
    assert _files(data_dir) == before


def test_set_collision_message(install: Installer) -> None:
    data_dir = install()
    with pytest.raises(UsageError) as caught:
        config_ops.run_set(data_dir, [("backend_port", "3000")])
    assert caught.value.message.startswith(
        "the change would make the configuration invalid: "
    )
    assert "web_port" in caught.value.message


def test_set_disabled_service_message(install: Installer) -> None:
    data_dir = install()
    with pytest.raises(UsageError) as caught:
        config_ops.run_set(data_dir, [("postgres_port", "4000")])
    assert caught.value.message == (
        "postgres_port only applies when the persistence backend is postgres"
    )


def test_set_before_init_is_not_initialized(tmp_path: Path) -> None:
    with pytest.raises(NotInitialized) as caught:
        config_ops.run_set(tmp_path / "none", [("web_port", "3005")])
    assert caught.value.exit_code == ExitCode.FAILURE
    assert "not initialized" in caught.value.message
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("image_tag", "0.9.0", id="image-tag"),
        pytest.param("registry_host", "127.0.0.1:5000", id="registry-host"),
        pytest.param("image_repo_prefix", "local/", id="repo-prefix"),
        pytest.param("dhi_registry", "127.0.0.1:5001", id="dhi-registry"),
        pytest.param("postgres_image_tag", "15", id="postgres-tag"),
        pytest.param("data_init_image", "busybox:1", id="data-init"),
    ],
)
def test_set_image_keys_clear_cache(install: Installer, key: str, value: str) -> None:
    data_dir = install()
    _with_cache(data_dir)
    result = config_ops.run_set(data_dir, [(key, value)])
    config = load_strict(data_dir)
    assert result.cache_cleared
    assert config.verified_digests == {}
    assert config.verified_image_tag is None
    stored = json.loads((data_dir / "config.json").read_text())
    assert "verified_digests" not in stored
    assert "verified_image_tag" not in stored


def test_set_other_key_keeps_cache(install: Installer) -> None:
    data_dir = install()
    _with_cache(data_dir)
    config_ops.run_set(data_dir, [("web_port", "3005")])
    config = load_strict(data_dir)
    assert config.verified_digests == {"backend": DIGEST, "web": DIGEST}
    assert config.verified_image_tag == config.image_tag


def test_set_without_compose_does_not_create_it(install: Installer) -> None:
    data_dir = install()
    (data_dir / "compose.yml").unlink()
    result = config_ops.run_set(data_dir, [("web_port", "3005")])
    assert not result.compose_regenerated
    assert not (data_dir / "compose.yml").exists()
    assert load_strict(data_dir).web_port == 3005


def test_set_non_compose_key_keeps_compose(install: Installer) -> None:
    data_dir = install()
    before = (data_dir / "compose.yml").read_bytes()
    result = config_ops.run_set(data_dir, [("lock_timeout", "9s")])
    assert not result.compose_regenerated
    assert (data_dir / "compose.yml").read_bytes() == before


def test_set_nats_size_rewrites_nats_conf(install: Installer) -> None:
    data_dir = install(bus="nats")
    result = config_ops.run_set(data_dir, [("nats_max_payload", "8MB")])
    assert result.compose_regenerated
    assert "8MB" in (data_dir / "nats.conf").read_text()


def test_set_payload_above_pending_rejected(install: Installer) -> None:
    data_dir = install(bus="nats")
    before = _files(data_dir)
    with pytest.raises(UsageError):
        config_ops.run_set(data_dir, [("nats_max_payload", "128MB")])
    assert _files(data_dir) == before


def test_set_keeps_unknown_keys(install: Installer) -> None:
    data_dir = install()
    path = data_dir / "config.json"
    document = json.loads(path.read_text())
    document["jwt_secret"] = "s3cr3t-value"
    document["sandbox"] = {"enabled": True}
    path.write_text(json.dumps(document, indent=2) + "\n")
    config_ops.run_set(data_dir, [("web_port", "3005")])
    stored = json.loads(path.read_text())
    assert stored["jwt_secret"] == "s3cr3t-value"
    assert stored["sandbox"] == {"enabled": True}


def test_set_bind_address_warns(install: Installer) -> None:
    data_dir = install()
    result = config_ops.run_set(data_dir, [("bind_address", "0.0.0.0")])
    assert len(result.warnings) == 1
    assert "all network interfaces" in result.warnings[0]


def test_unset_restores_default_and_omits_key(install: Installer) -> None:
    data_dir = install()
    config_ops.run_set(data_dir, [("lock_timeout", "9s"), ("web_port", "3005")])
    config_ops.run_unset(data_dir, "lock_timeout")
    config_ops.run_unset(data_dir, "web_port")
    stored = json.loads((data_dir / "config.json").read_text())
    assert "lock_timeout" not in stored
    assert stored["web_port"] == 3000


def test_unset_port_rechecks_collisions(install: Installer) -> None:
    data_dir = install()
    config_ops.run_set(data_dir, [("web_port", "3005"), ("backend_port", "3000")])
    before = _files(data_dir)
    with pytest.raises(UsageError) as caught:
        config_ops.run_unset(data_dir, "web_port")
    assert "invalid" in caught.value.message
    assert _files(data_dir) == before


# ---------------------------------------------------------------------------
# get, list and show


def test_get_reports_source(install: Installer) -> None:
    data_dir = install()
    config_ops.run_set(data_dir, [("lock_timeout", "9s")])
    stored = config_ops.view_one(data_dir, "lock_timeout", environ={})
    default = config_ops.view_one(data_dir, "health_wait_timeout", environ={})
    assert stored.document() == {
        "key": "lock_timeout",
        "value": "9s",
        "source": "config",
    }
    assert default.document() == {
        "key": "health_wait_timeout",
        "value": "90s",
        "source": "default",
    }


def test_get_env_twin_wins(install: Installer) -> None:
    data_dir = install()
    config_ops.run_set(data_dir, [("lock_timeout", "9s")])
    view = config_ops.view_one(
        data_dir, "lock_timeout", environ={"SYNTHORG_LOCK_TIMEOUT": " 12s "}
    )
    assert view.value == "12s"
    assert view.source == "env"


def test_get_unknown_key_exits_2(install: Installer) -> None:
    data_dir = install()
    with pytest.raises(UsageError):
        config_ops.view_one(data_dir, "no_such_key")


def test_list_json_sources(
    install: Installer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_dir = install()
    config_ops.run_set(data_dir, [("web_port", "3005"), ("lock_timeout", "9s")])
    monkeypatch.setenv("SYNTHORG_LOCK_TIMEOUT", "11s")
    code, out, _ = _run(
        ["config", "list", "--json", "--data-dir", str(data_dir)], capsys
    )
    assert code == 0
    rows = {row["key"]: row for row in json.loads(out)}
    assert rows["web_port"] == {"key": "web_port", "value": 3005, "source": "config"}
    assert rows["lock_timeout"] == {
        "key": "lock_timeout",
        "value": "11s",
        "source": "env",
    }
    assert rows["health_wait_timeout"]["source"] == "default"
    assert rows["registry_host"]["value"] == "ghcr.io"


def test_list_shows_unknown_keys(install: Installer) -> None:
    data_dir = install()
    path = data_dir / "config.json"
    document = json.loads(path.read_text())
    document["telemetry_opt_in"] = False
    document["master_key"] = "m4ster-value"
    path.write_text(json.dumps(document))
    views, _ = config_ops.view_all(data_dir, environ={})
    by_key = {view.key: view for view in views}
    assert by_key["telemetry_opt_in"].source == "unknown"
    assert by_key["telemetry_opt_in"].value is False
    assert by_key["master_key"].value == "****"


def _postgres_password(data_dir: Path) -> str:
    password = json.loads((data_dir / "config.json").read_text())["postgres_password"]
    assert isinstance(password, str)
    return password


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["config", "get", "postgres_password"], id="get"),
        pytest.param(["config", "get", "postgres_password", "--json"], id="get-json"),
        pytest.param(["config", "list"], id="list"),
        pytest.param(["config", "list", "--json"], id="list-json"),
        pytest.param(["config", "show"], id="show"),
        pytest.param(["config", "show", "--json"], id="show-json"),
        pytest.param(["config", "set", "web_port", "3005"], id="set"),
        pytest.param(["config", "set", "web_port", "3000", "--json"], id="set-json"),
        pytest.param(["config", "set", "backend_port", "3000"], id="set-invalid"),
    ],
)
def test_secret_masked_in_every_view(
    install: Installer, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    data_dir = install(backend="postgres")
    password = _postgres_password(data_dir)
    capsys.readouterr()
    code, out, err = _run([*argv, "--data-dir", str(data_dir)], capsys)
    assert code in (0, 2)
    assert password not in out
    assert password not in err
    if "get" in argv:
        assert "****" in out


def test_get_unset_secret_shows_not_set(install: Installer) -> None:
    data_dir = install(backend="postgres")
    config_ops.view_one(data_dir, "postgres_password")
    sqlite_dir = install(name="sqlite")
    view = config_ops.view_one(sqlite_dir, "postgres_password")
    assert view.text == "(not applicable)"
    assert view.value is None


def test_space_form_get(install: Installer, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = install()
    code, out, _ = _run(
        ["config", "get", "web_port", "--data-dir", str(data_dir)], capsys
    )
    assert code == 0
    assert out == "3000\n"


def test_path_before_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "fresh"
    code, out, _ = _run(["config", "path", "--data-dir", str(data_dir)], capsys)
    assert code == 0
    assert out == f"{data_dir / 'config.json'}\n"
    assert not data_dir.exists()


def test_set_cli_multi_pair_output(
    install: Installer, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = install()
    argv = ["config", "set", "web_port", "3005", "--data-dir", str(data_dir)]
    code, out, err = _run([*argv, "--pair", "channel=dev"], capsys)
    assert code == 0
    assert "Set web_port = 3005\n" in out
    assert "Set channel = dev\n" in out
    assert "(compose regenerated)\n" in out
    assert "synthorg start" in err


def test_set_cli_usage_errors_exit_2(
    install: Installer, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = install()
    argv = ["config", "set", "web_port", "3005", "--data-dir", str(data_dir)]
    code, _, err = _run([*argv, "--pair", "novalue"], capsys)
    assert code == 2
    assert "KEY=VALUE" in err


# ---------------------------------------------------------------------------
# edit and import

EDITOR_SCRIPT = """
import json, sys
path = sys.argv[-1]
mode = {mode!r}
text = open(path).read()
if mode == "valid":
    document = json.loads(text)
    document["web_port"] = 3009
    text = json.dumps(document, indent=2)
elif mode == "invalid-json":
    text = text.replace('"web_port": 3000', '"web_port": 3000,,')
elif mode == "invalid-value":
    text = text.replace('"web_port": 3000', '"web_port": "3000"')
elif mode == "raced":
    config = {config!r}
    other = json.loads(open(config).read())
    other["backend_port"] = 3011
    open(config, "w").write(json.dumps(other, indent=2) + "\\n")
    document = json.loads(text)
    document["web_port"] = 3009
    text = json.dumps(document, indent=2)
elif mode == "fail":
    sys.exit(3)
open(path, "w").write(text)
"""


def _editor(tmp_path: Path, data_dir: Path, mode: str) -> dict[str, str]:
    script = tmp_path / f"editor-{mode}.py"
    config = str(data_dir / "config.json")
    script.write_text(EDITOR_SCRIPT.format(mode=mode, config=config))
    return {"EDITOR": f"{sys.executable} {script}"}


def _edit_copies(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("config.json.edit-*"))


def test_edit_valid_swaps_in(install: Installer, tmp_path: Path) -> None:
    data_dir = install()
    result = config_ops.run_edit(data_dir, environ=_editor(tmp_path, data_dir, "valid"))
    assert result.changed
    assert result.compose_regenerated
    assert load_strict(data_dir).web_port == 3009
    assert '"127.0.0.1:3009:8080"' in (data_dir / "compose.yml").read_text()
    assert _edit_copies(data_dir) == []


@pytest.mark.parametrize(
    ("mode", "position"),
    [
        pytest.param("invalid-json", "line ", id="json"),
        pytest.param("invalid-value", "line ", id="value"),
    ],
)
def test_edit_invalid_keeps_copy(
    install: Installer, tmp_path: Path, mode: str, position: str
) -> None:
    data_dir = install()
    before = _files(data_dir)
    with pytest.raises(ConfigError) as caught:
        config_ops.run_edit(data_dir, environ=_editor(tmp_path, data_dir, mode))
    copies = _edit_copies(data_dir)
    assert caught.value.exit_code == ExitCode.FAILURE
    assert position in caught.value.message
    assert len(copies) == 1
    assert str(copies[0]) in caught.value.message
    assert copies[0].stat().st_mode & 0o777 == 0o600
    copies[0].unlink()
    assert _files(data_dir) == before


def test_edit_raced_keeps_copy(install: Installer, tmp_path: Path) -> None:
    data_dir = install()
    with pytest.raises(ConfigError) as caught:
        config_ops.run_edit(data_dir, environ=_editor(tmp_path, data_dir, "raced"))
    copies = _edit_copies(data_dir)
    assert caught.value.message.startswith("config.json changed while editing; ")
    assert len(copies) == 1
    assert str(copies[0]) in caught.value.message
    config = load_strict(data_dir)
    assert config.backend_port == 3011
    assert config.web_port == 3000


def test_edit_editor_failure_keeps_config(install: Installer, tmp_path: Path) -> None:
    data_dir = install()
    before = (data_dir / "config.json").read_bytes()
    with pytest.raises(ConfigError):
        config_ops.run_edit(data_dir, environ=_editor(tmp_path, data_dir, "fail"))
    assert (data_dir / "config.json").read_bytes() == before


def test_edit_without_change(install: Installer) -> None:
    data_dir = install()
    result = config_ops.run_edit(data_dir, environ={"EDITOR": "true"})
    assert not result.changed
    assert _edit_copies(data_dir) == []


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({"VISUAL": "code --wait", "EDITOR": "nano"}, ["code", "--wait"]),
        pytest.param({"VISUAL": " ", "EDITOR": "nano -w"}, ["nano", "-w"]),
        pytest.param({"EDITOR": "'my editor' -x"}, ["my editor", "-x"]),
        pytest.param({}, ["vi"]),
    ],
    ids=["visual", "editor", "quoted", "fallback-vi"],
)
def test_editor_argv(environ: dict[str, str], expected: list[str]) -> None:
    assert config_ops.editor_argv(environ) == expected


def test_import_valid(install: Installer, tmp_path: Path) -> None:
    data_dir = install()
    document = json.loads((data_dir / "config.json").read_text())
    document["web_port"] = 3007
    source = tmp_path / "import.json"
    source.write_text(json.dumps(document))
    result = config_ops.run_import(data_dir, source)
    assert result.changed
    assert load_strict(data_dir).web_port == 3007


def test_import_invalid_writes_nothing(install: Installer, tmp_path: Path) -> None:
    data_dir = install()
    before = _files(data_dir)
    source = tmp_path / "import.json"
    source.write_text('{"schema_version": 1, "bus_backend": "kafka"}')
    with pytest.raises(ConfigError) as caught:
        config_ops.run_import(data_dir, source)
    assert "bus_backend" in caught.value.message
    assert "line 1" in caught.value.message
    assert _files(data_dir) == before
