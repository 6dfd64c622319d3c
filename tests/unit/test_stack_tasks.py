"""The start, stop, status, logs and doctor tasks without an engine."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jsonschema
import pytest

from synthorg_tasks.lifecycle.doctor import CHECK_NAMES, parse_checks
from synthorg_tasks.lifecycle.status import StatusRequest, run_status
from synthorg_tasks.output import Output
from synthorg_tasks.status.collect import Snapshot
from synthorg_tasks.status.render import load_schema
from tests.conftest import run_synthorg
from tests.unit._status_fakes import healthy_snapshot


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "install"
    completed = run_synthorg(
        "init",
        "--backend",
        "postgres",
        "--bus",
        "nats",
        "--yes",
        "--data-dir",
        str(directory),
    )
    assert completed.code == 0, completed.stderr
    return directory


def test_status_not_initialized_exit_3(tmp_path: Path) -> None:
    completed = run_synthorg("status", "--json", "--data-dir", str(tmp_path / "none"))
    assert completed.code == 3
    document = json.loads(completed.stdout)
    jsonschema.validate(document, load_schema())
    assert [i["code"] for i in document["issues"]] == ["not_initialized"]


def test_status_engine_unreachable_exit_4(data_dir: Path) -> None:
    completed = run_synthorg("status", "--json", "--data-dir", str(data_dir))
    assert completed.code == 4
    document = json.loads(completed.stdout)
    jsonschema.validate(document, load_schema())
    codes = [issue["code"] for issue in document["issues"]]
    assert codes[0] == "engine_unreachable"
    assert "backend_unreachable" in codes


def test_status_check_prints_nothing(data_dir: Path) -> None:
    completed = run_synthorg("status", "--check", "--data-dir", str(data_dir))
    assert completed.code == 4
    assert completed.stdout == ""


def test_status_watch_with_json_is_usage_error(data_dir: Path) -> None:
    completed = run_synthorg("status", "--watch", "--json", "--data-dir", str(data_dir))
    assert completed.code == 2


def test_status_invalid_interval_is_usage_error(data_dir: Path) -> None:
    completed = run_synthorg("status", "--interval", "0s", "--data-dir", str(data_dir))
    assert completed.code == 2
    assert "--interval" in completed.stderr


def test_status_malformed_config_exit_1(data_dir: Path) -> None:
    (data_dir / "config.json").write_text("{", encoding="utf-8")
    completed = run_synthorg("status", "--data-dir", str(data_dir))
    assert completed.code == 1


def test_status_plain_is_ascii(data_dir: Path) -> None:
    completed = run_synthorg("status", "--plain", "--wide", "--data-dir", str(data_dir))
    assert completed.code == 4
    assert completed.stdout.isascii()
    assert "Status: CRITICAL" in completed.stdout


def test_status_watch_separates_snapshots(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[int] = []

    def collect(*args: object, **kwargs: object) -> Snapshot:
        calls.append(1)
        return healthy_snapshot()

    def sleep(seconds: float) -> None:
        if len(calls) >= 2:
            raise KeyboardInterrupt

    from synthorg_tasks.errors import Interrupted

    with pytest.raises(Interrupted):
        run_status(
            StatusRequest(watch=True, interval="1s"),
            data_dir,
            Output(plain=True, color=False),
            collect=collect,
            sleep=sleep,
        )
    text = capsys.readouterr().out
    assert text.count("All systems operational") == 2
    assert "\n---\n" in text


def test_status_services_filter_warns_invalid_name(data_dir: Path) -> None:
    completed = run_synthorg(
        "status",
        "--services",
        "backend,bad name",
        "--json",
        "--data-dir",
        str(data_dir),
    )
    assert "ignoring invalid service name 'bad name'" in completed.stderr
    json.loads(completed.stdout)


def test_start_dry_run_contacts_no_engine(data_dir: Path) -> None:
    completed = run_synthorg("start", "--dry-run", "--data-dir", str(data_dir))
    assert completed.code == 0, completed.stderr
    assert "Start plan (dry run)" in completed.stdout
    assert "image backend" in completed.stdout
    assert "health wait" in completed.stdout


def test_start_without_config(tmp_path: Path) -> None:
    completed = run_synthorg("start", "--data-dir", str(tmp_path / "none"))
    assert completed.code == 1
    assert "no configuration in" in completed.stderr
    assert "run 'synthorg init' first" in completed.stderr


def test_start_without_compose_file(data_dir: Path) -> None:
    (data_dir / "compose.yml").unlink()
    completed = run_synthorg("start", "--data-dir", str(data_dir))
    assert completed.code == 1
    assert "compose.yml not found in" in completed.stderr


def test_start_engine_unreachable_exit_4(data_dir: Path) -> None:
    completed = run_synthorg("start", "--data-dir", str(data_dir))
    assert completed.code == 4
    assert "Docker engine not reachable" in completed.stderr
    leftovers = [p.name for p in data_dir.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_stop_invalid_timeout_before_work(tmp_path: Path) -> None:
    completed = run_synthorg(
        "stop", "--timeout", "1.5", "--data-dir", str(tmp_path / "none")
    )
    assert completed.code == 2


def test_stop_engine_unreachable_exit_4(data_dir: Path) -> None:
    completed = run_synthorg("stop", "--data-dir", str(data_dir))
    assert completed.code == 4


@pytest.mark.parametrize(
    ("value", "expected"),
    [("all", list(CHECK_NAMES)), ("disk,files", ["files", "disk"])],
)
def test_doctor_parse_checks(value: str, expected: list[str]) -> None:
    assert parse_checks(value) == expected


def test_doctor_unknown_check_lists_valid_ones(data_dir: Path) -> None:
    completed = run_synthorg("doctor", "--checks", "nope", "--data-dir", str(data_dir))
    assert completed.code == 2
    assert "valid checks: all, environment" in completed.stderr


def test_doctor_report_is_private_and_redacted(data_dir: Path) -> None:
    password = json.loads((data_dir / "config.json").read_text())["postgres_password"]
    (data_dir / "compose.yml").chmod(0o644)
    completed = run_synthorg(
        "doctor", "--checks", "files,config,disk", "--json", "--data-dir", str(data_dir)
    )
    assert completed.code == 5, completed.stderr
    document = json.loads(completed.stdout)
    report = Path(document["report_path"])
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert password not in report.read_text()
    files = next(c for c in document["checks"] if c["name"] == "files")
    assert files["status"] == "warn"
    assert "compose.yml has mode 0644, expected 0600" in files["findings"]


def test_doctor_fix_restores_modes(data_dir: Path) -> None:
    (data_dir / "compose.yml").chmod(0o644)
    completed = run_synthorg(
        "doctor",
        "--checks",
        "files",
        "--fix",
        "--no-report",
        "--data-dir",
        str(data_dir),
    )
    assert "fixed: compose.yml mode set to 0600" in completed.stdout
    assert stat.S_IMODE((data_dir / "compose.yml").stat().st_mode) == 0o600


def test_doctor_environment_without_engine_exit_4(data_dir: Path) -> None:
    completed = run_synthorg(
        "doctor", "--checks", "environment", "--no-report", "--data-dir", str(data_dir)
    )
    assert completed.code == 4


def test_logs_without_config(tmp_path: Path) -> None:
    completed = run_synthorg("logs", "--data-dir", str(tmp_path / "none"))
    assert completed.code == 1
