"""The settings table: one declaration per config.json key, matching the model."""

from __future__ import annotations

import pytest

from synthorg_tasks import options
from synthorg_tasks.state import config as config_model

SETTABLE = {
    "backend_port",
    "web_port",
    "postgres_port",
    "nats_client_port",
    "bind_address",
    "image_tag",
    "channel",
    "log_level",
    "auto_pull",
    "auto_restart",
    "auto_apply_compose",
    "registry_host",
    "image_repo_prefix",
    "dhi_registry",
    "postgres_image_tag",
    "nats_image_tag",
    "data_init_image",
    "nats_max_payload",
    "nats_max_pending",
    *config_model.TUNABLE_KEYS,
}
READ_ONLY_GETTABLE = {
    "schema_version",
    "data_dir",
    "project_name",
    "persistence_backend",
    "memory_backend",
    "bus_backend",
    "postgres_password",
    "verified_image_tag",
    "verified_digests",
}
COMPOSE_AFFECTING = {
    "backend_port",
    "web_port",
    "postgres_port",
    "nats_client_port",
    "bind_address",
    "image_tag",
    "log_level",
    "registry_host",
    "image_repo_prefix",
    "dhi_registry",
    "postgres_image_tag",
    "nats_image_tag",
    "data_init_image",
    "nats_max_payload",
    "nats_max_pending",
}


def test_settings_cover_every_model_key() -> None:
    declared = [s.key for s in options.SETTINGS]
    assert len(declared) == len(set(declared))
    assert set(declared) == set(config_model.KEY_ORDER)


def test_settable_keys_match_the_rule() -> None:
    assert set(options.settable_keys()) == SETTABLE


def test_gettable_keys_are_settable_plus_read_only() -> None:
    assert set(options.gettable_keys()) == SETTABLE | READ_ONLY_GETTABLE


def test_compose_affecting_keys_match_the_rule() -> None:
    assert options.compose_affecting_keys() == COMPOSE_AFFECTING


def test_tunables_match_the_model() -> None:
    for tunable in config_model.TUNABLES:
        spec = options.setting(tunable.key)
        assert spec is not None
        assert spec.tunable
        assert spec.env == tunable.env
        assert spec.default == tunable.default


def test_enum_settings_match_the_model() -> None:
    for key, allowed in config_model.ENUMS.items():
        spec = options.setting(key)
        assert spec is not None
        assert spec.kind == "enum:" + ",".join(allowed)
        assert spec.default == config_model.ENUM_DEFAULTS[key]


def test_every_setting_has_one_sentence_help() -> None:
    for spec in options.SETTINGS:
        assert spec.help.endswith("."), spec.key
        assert spec.help.count(". ") == 0, spec.key


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        pytest.param("web_port", "3005", 3005, id="port"),
        pytest.param("auto_pull", "true", True, id="bool-true"),
        pytest.param("auto_pull", "false", False, id="bool-false"),
        pytest.param("bind_address", "::1", "::1", id="bind-v6"),
        pytest.param("image_tag", "0.7.1", "0.7.1", id="tag"),
        pytest.param("channel", "dev", "dev", id="enum"),
        pytest.param("registry_host", "127.0.0.1:5000", "127.0.0.1:5000", id="host"),
        pytest.param("nats_max_payload", "8MB", "8MB", id="nats-size"),
        pytest.param("lock_timeout", "1m30s", "1m30s", id="duration"),
        pytest.param("image_pull_attempts", "7", "7", id="attempts"),
        pytest.param("max_api_response_bytes", "8MiB", "8MiB", id="bytes"),
    ],
)
def test_parse_value_accepts(key: str, text: str, expected: object) -> None:
    spec = options.setting(key)
    assert spec is not None
    assert options.parse_value(spec, text) == expected


@pytest.mark.parametrize(
    ("key", "text"),
    [
        pytest.param("web_port", "0", id="port-zero"),
        pytest.param("web_port", "03000", id="port-leading-zero"),
        pytest.param("web_port", "true", id="port-bool"),
        pytest.param("auto_pull", "True", id="bool-capital"),
        pytest.param("auto_pull", "1", id="bool-digit"),
        pytest.param("auto_pull", "yes", id="bool-yes"),
        pytest.param("bind_address", "[::1]", id="bind-brackets"),
        pytest.param("image_tag", "-x", id="tag-dash"),
        pytest.param("channel", "beta", id="enum-unknown"),
        pytest.param("registry_host", "host:70000", id="host-port-range"),
        pytest.param("image_repo_prefix", "Upper/", id="prefix-upper"),
        pytest.param("data_init_image", "Busybox", id="image-upper"),
        pytest.param("nats_max_payload", "16 MB", id="nats-space"),
        pytest.param("lock_timeout", "5", id="duration-unitless"),
        pytest.param("image_verify_timeout", "500ms", id="verify-under-1s"),
        pytest.param("image_pull_attempts", "0", id="attempts-zero"),
        pytest.param("image_pull_attempts", "101", id="attempts-over"),
        pytest.param("max_api_response_bytes", "2GiB", id="bytes-over"),
    ],
)
def test_parse_value_rejects(key: str, text: str) -> None:
    spec = options.setting(key)
    assert spec is not None
    with pytest.raises(ValueError):
        options.parse_value(spec, text)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        pytest.param("jwt_secret", True, id="jwt-secret"),
        pytest.param("settings_key", True, id="settings-key"),
        pytest.param("master_key", True, id="master-key"),
        pytest.param("cursor_secret", True, id="cursor-secret"),
        pytest.param("github_token", True, id="token"),
        pytest.param("telemetry_opt_in", False, id="telemetry"),
        pytest.param("sandbox", False, id="sandbox"),
        pytest.param("keyboard_layout", False, id="key-prefix-only"),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert options.is_secret_name(name) is secret
