"""config.json: parsing, strict types, the loaders, coercion and serialisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthorg_tasks.errors import (
    ConfigInvalid,
    ConfigMalformed,
    ConfigTooNew,
    NotInitialized,
)
from synthorg_tasks.state.config import (
    COERCIBLE_ENUMS,
    ENUMS,
    NON_COERCIBLE_ENUMS,
    Config,
    load_reinit,
    load_strict,
    load_teardown,
    load_tolerant,
    serialise_config,
)

PASSWORD = "p@ss$w:rd/#%'\"" + "x" * 30


def _write(folder: Path, document: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def _valid(folder: Path, **changes: object) -> dict[str, object]:
    document: dict[str, object] = {
        "schema_version": 1,
        "data_dir": str(folder),
        "project_name": "demo",
        "image_tag": "1.0.0",
        "persistence_backend": "postgres",
        "bus_backend": "nats",
        "postgres_port": 3002,
        "postgres_password": PASSWORD,
        "nats_client_port": 3003,
    }
    document.update(changes)
    return document


def test_every_enum_is_classified() -> None:
    classified = set(COERCIBLE_ENUMS) | set(NON_COERCIBLE_ENUMS)
    assert classified == set(ENUMS)
    assert not set(COERCIBLE_ENUMS) & set(NON_COERCIBLE_ENUMS)


def test_valid_document_round_trips(tmp_path: Path) -> None:
    path = _write(tmp_path, _valid(tmp_path))
    config = load_strict(tmp_path)
    assert config.postgres_password == PASSWORD
    path.write_bytes(serialise_config(config))
    assert load_strict(tmp_path) == config


def test_serialised_order_and_format(tmp_path: Path) -> None:
    _write(tmp_path, {**_valid(tmp_path), "zzz_unknown": 1, "sandbox": {"a": 1}})
    data = serialise_config(load_strict(tmp_path))
    text = data.decode()
    assert text.endswith("}\n")
    keys = list(json.loads(text))
    assert keys[:3] == ["schema_version", "data_dir", "project_name"]
    assert keys[-2:] == ["zzz_unknown", "sandbox"]
    assert '\n  "project_name": "demo",' in text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("backend_port", True),
        ("backend_port", "3001"),
        ("backend_port", 3001.0),
        ("web_port", 0),
        ("web_port", 65536),
        ("auto_pull", 1),
        ("auto_pull", "true"),
        ("bind_address", "localhost"),
        ("project_name", "UPPER"),
        ("image_tag", "-x"),
        ("persistence_backend", "mysql"),
        ("memory_backend", "redis"),
        ("postgres_password", "short"),
        ("postgres_password", "x" * 40 + "\n"),
        ("nats_max_payload", "128MB"),
        ("nats_max_payload", "16 MB"),
        ("postgres_port", 3003),
        ("verified_digests", {"backend": "sha256:XYZ"}),
        ("verified_image_tag", "!"),
        ("health_wait_timeout", "90"),
        ("health_wait_timeout", "0s"),
        ("image_verify_timeout", "500ms"),
        ("image_pull_attempts", 3),
        ("image_pull_attempts", "101"),
        ("max_api_response_bytes", "2GiB"),
        ("registry_host", "bad host"),
        ("registry_host", "host:70000"),
        ("data_init_image", "Busybox:1"),
    ],
)
def test_strict_rejects_invalid_values(tmp_path: Path, key: str, value: object) -> None:
    path = _write(tmp_path, _valid(tmp_path, **{key: value}))
    before = path.read_bytes()
    with pytest.raises(ConfigInvalid) as caught:
        load_strict(tmp_path)
    assert key in caught.value.message
    assert PASSWORD not in caught.value.message
    assert path.read_bytes() == before


def test_invalid_password_is_masked(tmp_path: Path) -> None:
    _write(tmp_path, _valid(tmp_path, postgres_password="secret-but-short"))
    with pytest.raises(ConfigInvalid) as caught:
        load_strict(tmp_path)
    assert "secret-but-short" not in caught.value.message
    assert "****" in caught.value.message


def _prefixes(data: bytes) -> list[bytes]:
    return [data[:n] for n in range(len(data))]


def test_every_truncation_is_a_hard_error(tmp_path: Path) -> None:
    path = _write(tmp_path, _valid(tmp_path))
    full = path.read_bytes()
    loaders = (load_strict, load_tolerant, load_reinit, load_teardown)
    for prefix in _prefixes(full.rstrip()):
        path.write_bytes(prefix)
        for loader in loaders:
            with pytest.raises(ConfigMalformed) as caught:
                loader(tmp_path)
            assert str(path) in caught.value.message
            assert "left untouched" in caught.value.message
        assert path.read_bytes() == prefix


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"", "byte offset 0"),
        (b"   \n", "byte offset 0"),
        (b'{"a": "\xff"}', "byte offset 7"),
        (b'{"a": 1, "a": 2}', "line 1, column 10"),
        (b"[1, 2]", "top level is not an object"),
        (b'{"a": 1,\n  "b" 2}', "line 2, column 7"),
    ],
    ids=["empty", "blank", "not-utf8", "duplicate-key", "array", "syntax"],
)
def test_malformed_files_name_the_position(
    tmp_path: Path, content: bytes, where: str
) -> None:
    tmp_path.joinpath("config.json").write_bytes(content)
    with pytest.raises(ConfigMalformed) as caught:
        load_strict(tmp_path)
    assert where in caught.value.message
    assert tmp_path.joinpath("config.json").read_bytes() == content


def test_missing_file_per_loader(tmp_path: Path) -> None:
    with pytest.raises(NotInitialized):
        load_strict(tmp_path)
    with pytest.raises(NotInitialized):
        load_teardown(tmp_path)
    assert load_reinit(tmp_path) is None
    tolerant = load_tolerant(tmp_path)
    assert not tolerant.initialized
    assert tolerant.config.persistence_backend == "sqlite"


def test_schema_zero_is_upgraded_and_too_new_refused(tmp_path: Path) -> None:
    document = _valid(tmp_path)
    del document["schema_version"]
    path = _write(tmp_path, document)
    config = load_strict(tmp_path)
    assert json.loads(serialise_config(config))["schema_version"] == 1
    _write(tmp_path, _valid(tmp_path, schema_version=2))
    with pytest.raises(ConfigTooNew) as caught:
        load_strict(tmp_path)
    assert "schema_version 2 is newer" in caught.value.message
    assert path.exists()


@pytest.mark.parametrize("key", COERCIBLE_ENUMS)
def test_coercible_enum_replaced_with_one_line(
    tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, _valid(tmp_path, **{key: "x" * 100}))
    before = path.read_bytes()
    config = load_strict(tmp_path)
    assert getattr(config, key) in ENUMS[key]
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f'{key}: unknown value "{"x" * 64}..." replaced by' in err
    assert path.read_bytes() == before


@pytest.mark.parametrize("key", NON_COERCIBLE_ENUMS)
def test_non_coercible_enum_is_an_error(tmp_path: Path, key: str) -> None:
    _write(tmp_path, _valid(tmp_path, **{key: "other"}))
    with pytest.raises(ConfigInvalid):
        load_strict(tmp_path)


def test_reinit_loader_does_not_coerce(tmp_path: Path) -> None:
    _write(tmp_path, _valid(tmp_path, bus_backend="kafka"))
    document = load_reinit(tmp_path)
    assert document is not None
    assert document["bus_backend"] == "kafka"


def test_tolerant_loader_reports_and_defaults(tmp_path: Path) -> None:
    _write(tmp_path, _valid(tmp_path, web_port="x", backend_port=True))
    result = load_tolerant(tmp_path)
    assert result.initialized
    assert result.config.web_port == 3000
    assert result.config.backend_port == 3001
    assert [f.key for f in result.findings] == ["web_port", "backend_port"]


def test_teardown_loader_needs_only_project(tmp_path: Path) -> None:
    _write(tmp_path, _valid(tmp_path, web_port="x"))
    assert load_teardown(tmp_path).project_name == "demo"
    _write(tmp_path, _valid(tmp_path, project_name="Bad Name"))
    with pytest.raises(ConfigInvalid):
        load_teardown(tmp_path)


def test_teardown_malformed_hints_manual_down(tmp_path: Path) -> None:
    tmp_path.joinpath("config.json").write_text("{")
    with pytest.raises(ConfigMalformed) as caught:
        load_teardown(tmp_path)
    assert any("down" in hint for hint in caught.value.hints)


def test_unknown_keys_preserved_verbatim(tmp_path: Path) -> None:
    extra = {
        "jwt_secret": "abc",
        "sandbox": {"nested": [1, 2]},
        "telemetry_opt_in": False,
    }
    _write(tmp_path, {**_valid(tmp_path), **extra})
    config = load_strict(tmp_path)
    document = json.loads(serialise_config(config))
    for key, value in extra.items():
        assert document[key] == value


def test_tunable_env_twin_wins(tmp_path: Path) -> None:
    _write(tmp_path, _valid(tmp_path, health_wait_timeout="30s"))
    config = load_strict(tmp_path)
    assert config.tunable_seconds("health_wait_timeout", {}) == 30
    env = {"SYNTHORG_HEALTH_WAIT_TIMEOUT": " 1m30s "}
    assert config.tunable_seconds("health_wait_timeout", env) == 90
    assert config.tunable_seconds("lock_timeout", {"SYNTHORG_LOCK_TIMEOUT": ""}) == 5


def test_readable_config_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path, _valid(tmp_path))
    path.chmod(0o644)
    import logging

    logger = logging.getLogger("synthorg")
    logger.propagate = True
    try:
        with caplog.at_level(logging.WARNING, logger="synthorg"):
            load_strict(tmp_path)
    finally:
        logger.propagate = False
    assert any("readable by group or others" in r.getMessage() for r in caplog.records)


def test_config_defaults_are_sqlite_internal(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, project_name="p", image_tag="1")
    assert config.ports() == {"web_port": 3000, "backend_port": 3001}
