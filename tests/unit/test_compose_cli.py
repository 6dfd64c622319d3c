"""Compose detection, the version gate, argv and the sanitised environment."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from synthorg_tasks.engine.compose_cli import (
    ComposeCli,
    compose_argv,
    detect_compose,
    output_tail,
    parse_compose_version,
    sanitized_environment,
    strip_control_characters,
)
from synthorg_tasks.errors import ComposeFailed, ComposeMissing, ComposeTooOld
from synthorg_tasks.state.secrets import clear_secrets, register_secret


@pytest.mark.parametrize(
    ("text", "triple", "is_v2"),
    [
        ("v2.24.5", (2, 24, 5), True),
        ("2.24.5-desktop.1", (2, 24, 5), True),
        ("1.29.2", (1, 29, 2), False),
        ("1.28.6\n", (1, 28, 6), False),
        ("v5.0.0+build.7", (5, 0, 0), True),
    ],
    ids=["leading-v", "desktop-suffix", "v1-minimum-ok", "v1-too-old", "build-meta"],
)
def test_parse_compose_version(
    text: str, triple: tuple[int, int, int], is_v2: bool
) -> None:
    version = parse_compose_version(text)
    assert version.triple == triple
    assert version.is_v2 is is_v2


@pytest.mark.parametrize("text", ["", "compose", "2.24", "vx.1.2"])
def test_parse_compose_version_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a Compose version"):
        parse_compose_version(text)


class FakeRunner:
    """Answers ``version --short`` per implementation; records every call."""

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> Any:
        self.calls.append((list(argv), dict(kwargs["env"])))
        key = "v2" if argv[:2] == ["docker", "compose"] else "v1"
        answer = self.answers.get(key)
        if answer is None:
            return subprocess.CompletedProcess(argv, 1, "", "unknown command")
        return subprocess.CompletedProcess(argv, 0, answer + "\n", "")


def test_detect_prefers_v2_plugin() -> None:
    runner = FakeRunner({"v2": "v2.24.5", "v1": "1.29.2"})
    cli = detect_compose({}, runner=runner)
    assert cli.implementation == ["docker", "compose"]
    assert cli.is_v2
    assert len(runner.calls) == 1


def test_detect_falls_back_to_docker_compose() -> None:
    cli = detect_compose({}, runner=FakeRunner({"v1": "1.29.2"}))
    assert cli.implementation == ["docker-compose"]
    assert str(cli.version) == "1.29.2"
    assert not cli.is_v2


def test_detect_docker_compose_reporting_v2_counts_as_v2() -> None:
    cli = detect_compose({}, runner=FakeRunner({"v1": "2.20.0"}))
    assert cli.binary == "docker-compose"
    assert cli.is_v2


def test_detect_too_old_v1() -> None:
    with pytest.raises(ComposeTooOld) as caught:
        detect_compose({}, runner=FakeRunner({"v1": "1.28.6"}))
    assert caught.value.message == (
        "Docker Compose 1.28.6 (docker-compose) is too old: at least 1.29.0 is required"
    )
    assert caught.value.exit_code == 1


def test_detect_none_found() -> None:
    with pytest.raises(ComposeMissing) as caught:
        detect_compose({}, runner=FakeRunner({}))
    assert caught.value.message == (
        "Docker Compose not found: install the Compose v2 plugin or "
        "docker-compose >= 1.29.0"
    )
    assert caught.value.exit_code == 1


def test_detect_missing_binary_is_not_found() -> None:
    def runner(argv: Sequence[str], **kwargs: Any) -> Any:
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    with pytest.raises(ComposeMissing):
        detect_compose({}, runner=runner)


def test_detect_probes_with_sanitised_environment() -> None:
    runner = FakeRunner({"v1": "1.29.2"})
    detect_compose(
        {"PATH": "/usr/bin", "COMPOSE_FILE": "x.yml", "SYNTHORG_NATS_URL": "n"},
        runner=runner,
    )
    for _argv, env in runner.calls:
        assert env == {"PATH": "/usr/bin"}


def test_sanitized_environment_drops_compose_and_synthorg() -> None:
    env = sanitized_environment(
        {
            "PATH": "/bin",
            "HOME": "/root",
            "COMPOSE_PROJECT_NAME": "other",
            "COMPOSE_PROFILES": "x",
            "SYNTHORG_DATA_DIR": "/d",
            "synthorg_lower": "y",
            "DOCKER_HOST": "unix:///s",
        }
    )
    assert env == {"PATH": "/bin", "HOME": "/root", "DOCKER_HOST": "unix:///s"}


def test_compose_argv_carries_project_file_and_directory() -> None:
    argv = compose_argv(["docker-compose"], "demo", Path("/srv/synthorg"), "up", ["-d"])
    assert argv == [
        "docker-compose",
        "--project-name",
        "demo",
        "--file",
        "/srv/synthorg/compose.yml",
        "--project-directory",
        "/srv/synthorg",
        "up",
        "-d",
    ]


def test_cli_argv_for_v2_plugin() -> None:
    cli = ComposeCli(
        ["docker", "compose"], "docker compose", parse_compose_version("2.24.5"), {}
    )
    argv = cli.argv("p", Path("/d"), "ps")
    assert argv[:4] == ["docker", "compose", "--project-name", "p"]
    assert argv[-1] == "ps"


def test_output_tail_keeps_twenty_lines() -> None:
    text = "\n".join(f"line {n}" for n in range(50))
    tail = output_tail(text).splitlines()
    assert len(tail) == 20
    assert tail[0] == "line 30"
    assert tail[-1] == "line 49"


def test_output_tail_strips_controls_and_masks() -> None:
    clear_secrets()
    register_secret("hunter2-secret-value")
    try:
        tail = output_tail("\x1b[31mERROR\x1b[0m pw=hunter2-secret-value\x07\r\n")
    finally:
        clear_secrets()
    assert tail == "ERROR pw=****"


def test_strip_control_characters_keeps_tab() -> None:
    assert strip_control_characters("a\tb\x00c\x9bd") == "a\tbcd"


def _fake_compose(tmp_path: Path, exit_code: int, lines: int) -> ComposeCli:
    script = tmp_path / "fake-compose"
    script.write_text(
        "#!/bin/sh\n"
        f'i=0; while [ $i -lt {lines} ]; do echo "out $i $*"; i=$((i+1)); done\n'
        'env | grep -E "^(COMPOSE|SYNTHORG)_" && echo LEAKED\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    env = sanitized_environment({"PATH": "/usr/bin:/bin", "COMPOSE_FILE": "x"})
    return ComposeCli(
        [str(script)], "fake-compose", parse_compose_version("2.0.0"), env
    )


def test_run_failure_carries_output_tail(tmp_path: Path) -> None:
    cli = _fake_compose(tmp_path, exit_code=3, lines=30)
    with pytest.raises(ComposeFailed) as caught:
        cli.run("demo", tmp_path, "up", ["-d"])
    message = caught.value.message
    assert message.startswith("fake-compose up failed with exit code 3:")
    assert "out 29 --project-name demo" in message
    assert "out 9 " not in message
    assert "LEAKED" not in message


def test_run_success_returns_output(tmp_path: Path) -> None:
    cli = _fake_compose(tmp_path, exit_code=0, lines=1)
    result = cli.run("demo", tmp_path, "ps")
    assert result.returncode == 0
    assert f"--file {tmp_path}/compose.yml" in result.output


@pytest.mark.compose
def test_detect_real_docker_compose() -> None:
    from tests.capabilities import require

    require(
        "compose",
        shutil.which("docker-compose") is not None
        or shutil.which("docker") is not None,
        "neither docker-compose nor docker is on PATH",
    )
    cli = detect_compose()
    assert cli.version.triple >= (1, 29, 0)
