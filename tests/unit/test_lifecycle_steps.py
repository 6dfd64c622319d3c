"""Steps of start, stop and logs that need no engine: gates, flags, arguments."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from synthorg_tasks.engine.compose_cli import ComposeCli, parse_compose_version
from synthorg_tasks.engine.pull import retry_delays
from synthorg_tasks.errors import Unhealthy, UsageError
from synthorg_tasks.lifecycle._stack import (
    check_crash_loop,
    container_diagnostics,
    crash_baseline,
)
from synthorg_tasks.lifecycle.logs import LogsRequest, logs_arguments
from synthorg_tasks.lifecycle.start import (
    StartRequest,
    _check_flags,
    _verification_mode,
)
from synthorg_tasks.lifecycle.stop import parse_stop_timeout
from synthorg_tasks.state.secrets import clear_secrets, register_secret
from tests.unit._status_fakes import container


def test_crash_loop_two_restarts_not_healthy() -> None:
    looping = container("backend", health="starting", restart_count=2)
    with pytest.raises(Unhealthy) as caught:
        check_crash_loop([looping])
    assert caught.value.message == "backend keeps restarting (crash loop); aborting"
    assert caught.value.exit_code == 3


def test_crash_loop_ignores_healthy_and_single_restart() -> None:
    check_crash_loop(
        [
            container("backend", health="healthy", restart_count=5),
            container("web", health="starting", restart_count=1),
        ]
    )


def test_crash_loop_counts_only_restarts_since_baseline() -> None:
    old = container("backend", health="starting", restart_count=7)
    baseline = crash_baseline([old])
    check_crash_loop([dataclasses.replace(old, restart_count=8)], baseline)
    with pytest.raises(Unhealthy):
        check_crash_loop([dataclasses.replace(old, restart_count=9)], baseline)


def test_data_init_failure_aborts() -> None:
    failed = container(
        "data-init", "exited", exit_code=1, finished_at="2026-01-01T00:00:02Z"
    )
    with pytest.raises(Unhealthy, match="data-init exited with code 1"):
        check_crash_loop([failed])


def test_data_init_old_failure_ignored_until_it_runs_again() -> None:
    failed = container(
        "data-init", "exited", exit_code=1, finished_at="2026-01-01T00:00:02Z"
    )
    baseline = crash_baseline([failed])
    check_crash_loop([failed], baseline)
    rerun = dataclasses.replace(failed, finished_at="2026-01-01T00:10:00Z")
    with pytest.raises(Unhealthy):
        check_crash_loop([rerun], baseline)


def test_diagnostics_are_masked() -> None:
    clear_secrets()
    register_secret("probe-secret-value")
    try:
        lines = container_diagnostics(
            [container("postgres", last_health_output="auth probe-secret-value")]
        )
    finally:
        clear_secrets()
    assert lines[0].startswith("postgres: running, ")
    assert "probe-secret-value" not in lines[0]
    assert "last probe: auth ****" in lines[0]


@pytest.mark.parametrize(
    ("attempts", "delay", "expected"),
    [(1, 2.0, []), (3, 2.0, [2.0, 4.0]), (4, 200.0, [200.0, 300.0, 300.0])],
    ids=["one-attempt", "doubling", "capped-at-5-minutes"],
)
def test_retry_delays(attempts: int, delay: float, expected: list[float]) -> None:
    assert retry_delays(attempts, delay) == expected


@pytest.mark.parametrize(
    ("text", "seconds"), [(None, None), ("0", 0), ("30", 30), ("15s", 15)]
)
def test_stop_timeout(text: str | None, seconds: int | None) -> None:
    assert parse_stop_timeout(text) == seconds


@pytest.mark.parametrize("text", ["-1", "1.5", "10m", "s", ""])
def test_stop_timeout_invalid(text: str) -> None:
    with pytest.raises(UsageError, match="whole seconds"):
        parse_stop_timeout(text)


def _cli(version: str) -> ComposeCli:
    binary = "docker compose" if version.startswith("2") else "docker-compose"
    return ComposeCli([binary], binary, parse_compose_version(version), {})


def test_logs_arguments_full() -> None:
    request = LogsRequest(
        follow=True,
        tail="all",
        timestamps=True,
        no_log_prefix=True,
        since="10m",
        services=["backend", "web"],
    )
    assert logs_arguments(request, _cli("2.24.5")) == [
        "--no-color",
        "--tail=all",
        "--follow",
        "--timestamps",
        "--no-log-prefix",
        "--since",
        "10m",
        "--",
        "backend",
        "web",
    ]


@pytest.mark.parametrize("option", ["since", "until"])
def test_logs_option_missing_in_v1_is_usage_error(option: str) -> None:
    request = LogsRequest(**{option: "5m"})  # type: ignore[arg-type]
    with pytest.raises(UsageError) as caught:
        logs_arguments(request, _cli("1.29.2"))
    assert caught.value.message.startswith(f"--{option} is not supported by ")
    assert "(docker-compose)" in caught.value.message
    assert caught.value.exit_code == 2


def test_logs_no_log_prefix_allowed_in_v1() -> None:
    arguments = logs_arguments(LogsRequest(no_log_prefix=True), _cli("1.29.2"))
    assert "--no-log-prefix" in arguments


@pytest.mark.parametrize("tail", ["-1", "ten", ""])
def test_logs_invalid_tail(tail: str) -> None:
    with pytest.raises(UsageError, match="--tail"):
        logs_arguments(LogsRequest(tail=tail), _cli("2.0.0"))


def test_logs_invalid_service() -> None:
    with pytest.raises(UsageError, match="service"):
        logs_arguments(LogsRequest(services=["bad name"]), _cli("2.0.0"))


@pytest.mark.parametrize(
    "request_",
    [
        StartRequest(no_detach=True, no_wait=True),
        StartRequest(no_detach=True, timeout="5s"),
    ],
    ids=["no-wait", "timeout"],
)
def test_start_no_detach_exclusions(request_: StartRequest) -> None:
    with pytest.raises(UsageError, match="--no-detach"):
        _check_flags(request_, {})


@pytest.mark.parametrize("timeout", ["0s", "abc", "-5s"])
def test_start_invalid_timeout(timeout: str) -> None:
    with pytest.raises(UsageError, match="--timeout"):
        _check_flags(StartRequest(timeout=timeout), {})


def test_start_timeout_parsed() -> None:
    assert _check_flags(StartRequest(timeout="1m30s"), {}) == 90.0


def test_verification_off_for_custom_registry() -> None:
    mode, warnings = _verification_mode(
        StartRequest(), ["registry_host", "nats_image_tag"]
    )
    assert mode == "skipped"
    assert warnings == [
        "WARNING: registry_host, nats_image_tag override the pinned registry or "
        "tags; image verification is OFF"
    ]


def test_verification_off_for_custom_registry_even_with_no_pull() -> None:
    _mode, warnings = _verification_mode(StartRequest(no_pull=True), ["registry_host"])
    assert len(warnings) == 1
    assert "image verification is OFF" in warnings[0]


def test_verification_skip_verify_warns() -> None:
    mode, warnings = _verification_mode(StartRequest(skip_verify=True), [])
    assert mode == "skipped"
    assert warnings == [
        "WARNING: --skip-verify is set; images will be pulled WITHOUT signature or "
        "provenance checks"
    ]


def test_skip_verify_and_override_both_warn() -> None:
    _mode, warnings = _verification_mode(
        StartRequest(skip_verify=True), ["registry_host"]
    )
    assert len(warnings) == 2
    assert "--skip-verify" in warnings[0]
    assert "registry_host" in warnings[1]


def test_verification_without_pipeline_fails_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synthorg_tasks.errors import VerificationError
    from synthorg_tasks.lifecycle import start

    assert _verification_mode(StartRequest(), []) == ("verify", [])
    monkeypatch.setattr(start, "_pipeline", lambda: None)
    with pytest.raises(VerificationError) as caught:
        _verification_mode(StartRequest(), [])
    assert "unavailable" in caught.value.message


def test_logs_unknown_service_is_usage_error(tmp_path: Path) -> None:
    from synthorg_tasks.errors import UsageError
    from synthorg_tasks.lifecycle.init import InitRequest, run_init
    from synthorg_tasks.lifecycle.logs import LogsRequest, run_logs
    from synthorg_tasks.output import Output

    data = tmp_path / "logs"
    run_init(InitRequest(environ={}), data, Output())
    with pytest.raises(UsageError) as caught:
        run_logs(LogsRequest(services=["backend", "nope"]), data)
    assert "unknown service 'nope'" in caught.value.message
    assert caught.value.exit_code == 2
