"""The four config.json loaders: coercion, schema versions, unknown keys, damage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from synthorg_tasks.errors import (
    ConfigInvalid,
    ConfigMalformed,
    ConfigTooNew,
    NotInitialized,
)
from synthorg_tasks.state import config as model
from synthorg_tasks.state.lock import LifecycleLock

TAG = "0.7.0"


def _write(data_dir: Path, document: dict[str, Any]) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "config.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.chmod(0o600)
    return path


def _base(folder: Path, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema_version": 1,
        "data_dir": str(folder),
        "project_name": "demo",
        "image_tag": TAG,
        "persistence_backend": "sqlite",
        "bus_backend": "internal",
        "backend_port": 3001,
        "web_port": 3000,
    }
    document.update(changes)
    return document


def test_every_enum_is_classified() -> None:
    coercible = set(model.COERCIBLE_ENUMS)
    fixed = set(model.NON_COERCIBLE_ENUMS)
    assert not coercible & fixed
    assert coercible | fixed == set(model.ENUMS)


def test_classification_matches_the_rule() -> None:
    assert set(model.COERCIBLE_ENUMS) == {"bus_backend", "channel", "log_level"}
    assert set(model.NON_COERCIBLE_ENUMS) == {"persistence_backend", "memory_backend"}


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(model.load_strict, id="strict"),
        pytest.param(lambda d: model.load_tolerant(d).config, id="tolerant"),
        pytest.param(model.load_teardown, id="teardown"),
    ],
)
def test_coercion_one_line_per_field(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    load: Callable[[Path], model.Config],
) -> None:
    path = _write(
        tmp_path,
        _base(tmp_path, bus_backend="kafka", channel="beta", log_level="x" * 80),
    )
    before = path.read_bytes()
    config = load(tmp_path)
    lines = capsys.readouterr().err.splitlines()
    assert config.bus_backend == "internal"
    assert config.channel == "stable"
    assert config.log_level == "info"
    assert lines == [
        'bus_backend: unknown value "kafka" replaced by "internal" for this run '
        "(allowed: internal, nats)",
        'channel: unknown value "beta" replaced by "stable" for this run '
        "(allowed: stable, dev)",
        f'log_level: unknown value "{"x" * 64}..." replaced by "info" for this run '
        "(allowed: debug, info, warn, error)",
    ]
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("persistence_backend", "mysql", id="persistence"),
        pytest.param("memory_backend", "redis", id="memory"),
    ],
)
def test_required_enums_are_never_coerced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    _write(tmp_path, _base(tmp_path, **{key: value}))
    with pytest.raises(ConfigInvalid) as caught:
        model.load_strict(tmp_path)
    assert key in caught.value.message
    result = model.load_tolerant(tmp_path)
    assert [finding.key for finding in result.findings] == [key]
    assert result.coerced == ()
    assert "replaced by" not in capsys.readouterr().err


def test_reinit_loader_does_not_coerce(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, _base(tmp_path, bus_backend="kafka"))
    document = model.load_reinit(tmp_path)
    assert document is not None
    assert document["bus_backend"] == "kafka"
    assert capsys.readouterr().err == ""


def test_schema_zero_is_upgraded_on_save(tmp_path: Path) -> None:
    document = _base(tmp_path)
    del document["schema_version"]
    path = _write(tmp_path, document)
    config = model.load_strict(tmp_path)
    with LifecycleLock(tmp_path) as lock:
        model.save_config(config, lock)
    assert json.loads(path.read_text())["schema_version"] == 1


@pytest.mark.parametrize(
    "load",
    [
        pytest.param(model.load_strict, id="strict"),
        pytest.param(model.load_tolerant, id="tolerant"),
        pytest.param(model.load_teardown, id="teardown"),
    ],
)
def test_schema_too_new(tmp_path: Path, load: Callable[[Path], object]) -> None:
    _write(tmp_path, _base(tmp_path, schema_version=2))
    with pytest.raises(ConfigTooNew) as caught:
        load(tmp_path)
    assert caught.value.message == (
        "config.json schema_version 2 is newer than this toolkit supports (1)"
    )
    assert caught.value.exit_code == 1


def test_unknown_keys_preserved_verbatim(tmp_path: Path) -> None:
    unknown = {
        "sandbox": {"enabled": True, "images": ["a", "b"]},
        "jwt_secret": "keep-me",
        "telemetry_opt_in": False,
        "fine_tuning": None,
    }
    path = _write(tmp_path, {**_base(tmp_path), **unknown})
    config = model.load_strict(tmp_path)
    with LifecycleLock(tmp_path) as lock:
        model.save_config(config.replace(web_port=3005), lock)
    stored = json.loads(path.read_text())
    assert list(stored)[-4:] == list(unknown)
    for key, value in unknown.items():
        assert stored[key] == value


def test_bool_is_not_a_port(tmp_path: Path) -> None:
    _write(tmp_path, _base(tmp_path, web_port=True))
    with pytest.raises(ConfigInvalid) as caught:
        model.load_strict(tmp_path)
    assert "web_port" in caught.value.message


def test_teardown_tolerates_other_fields(tmp_path: Path) -> None:
    _write(tmp_path, _base(tmp_path, web_port="3000", bind_address="nowhere"))
    config = model.load_teardown(tmp_path)
    assert config.project_name == "demo"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("project_name", "Bad Name", id="project-name"),
        pytest.param("data_dir", 7, id="data-dir-type"),
        pytest.param("data_dir", "relative/dir", id="data-dir-relative"),
    ],
)
def test_teardown_validates_identity(tmp_path: Path, key: str, value: object) -> None:
    _write(tmp_path, _base(tmp_path, **{key: value}))
    with pytest.raises(ConfigInvalid) as caught:
        model.load_teardown(tmp_path)
    assert key in caught.value.message


def test_teardown_malformed_hint(tmp_path: Path) -> None:
    tmp_path.joinpath("config.json").write_text("{")
    with pytest.raises(ConfigMalformed) as caught:
        model.load_teardown(tmp_path)
    assert any("docker compose -p" in hint for hint in caught.value.hints)


def test_missing_file_per_loader(tmp_path: Path) -> None:
    with pytest.raises(NotInitialized):
        model.load_strict(tmp_path)
    with pytest.raises(NotInitialized):
        model.load_teardown(tmp_path)
    assert model.load_reinit(tmp_path) is None
    assert model.load_tolerant(tmp_path).initialized is False


LOADERS: list[Callable[[Path], object]] = [
    model.load_strict,
    model.load_tolerant,
    model.load_reinit,
    model.load_teardown,
]


def test_every_truncation_is_a_hard_error(tmp_path: Path) -> None:
    document = _base(tmp_path, postgres_password="p" * 43)
    document["persistence_backend"] = "postgres"
    full = (json.dumps(document, indent=2) + "\n").encode()
    path = tmp_path / "config.json"
    for size in range(len(full.rstrip())):
        prefix = full[:size]
        path.write_bytes(prefix)
        for load in LOADERS:
            with pytest.raises(ConfigMalformed) as caught:
                load(tmp_path)
            assert str(path) in caught.value.message
            assert "line" in caught.value.message or "offset" in caught.value.message
        assert path.read_bytes() == prefix
