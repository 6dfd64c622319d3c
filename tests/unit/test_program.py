"""The synthorg program: help, the space form, usage errors and packaging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from synthorg_tasks.namespace import build_namespace
from synthorg_tasks.program import rewrite_space_form
from tests.conftest import run_synthorg

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["synthorg", "config", "get", "web_port"],
            ["synthorg", "config.get", "web_port"],
        ),
        (["synthorg", "-d", "db", "migrate"], ["synthorg", "-d", "db.migrate"]),
        (
            ["synthorg", "-f", "x.yml", "config", "set", "a", "b"],
            ["synthorg", "-f", "x.yml", "config.set", "a", "b"],
        ),
        (["synthorg", "config", "bogus"], ["synthorg", "config", "bogus"]),
        (["synthorg", "init", "config", "get"], ["synthorg", "init", "config", "get"]),
        (["synthorg", "--", "config", "get"], ["synthorg", "--", "config", "get"]),
        (["synthorg", "config", "--help"], ["synthorg", "--list", "config"]),
        (["synthorg", "db"], ["synthorg", "--list", "db"]),
    ],
    ids=[
        "config-get",
        "after-core-flag",
        "after-valued-flag",
        "unknown-task",
        "not-first-positional",
        "after-double-dash",
        "collection-help",
        "collection-alone",
    ],
)
def test_space_form_rewrite(argv: list[str], expected: list[str]) -> None:
    assert rewrite_space_form(argv) == expected


def test_help_lists_init() -> None:
    result = run_synthorg("--help")
    assert result.code == 0
    assert "init" in result.stdout


def test_unknown_flag_is_usage_error() -> None:
    result = run_synthorg("init", "--no-such-flag")
    assert result.code == 2
    assert "no-such-flag" in result.stderr


def test_quiet_with_verbose_is_usage_error(tmp_path: Path) -> None:
    result = run_synthorg("init", "--data-dir", str(tmp_path / "q"), "-q", "-v")
    assert result.code == 2
    assert not (tmp_path / "q").exists()


def test_plain_with_json_is_usage_error(tmp_path: Path) -> None:
    result = run_synthorg(
        "init", "--data-dir", str(tmp_path / "p"), "--plain", "--json"
    )
    assert result.code == 2


def test_json_error_document(tmp_path: Path) -> None:
    import json

    result = run_synthorg(
        "init", "--data-dir", str(tmp_path / "j"), "--web-port", "x", "--json"
    )
    assert result.code == 2
    document = json.loads(result.stdout)
    assert document["exit_code"] == 2
    assert document["error"]["code"] == "usage"
    assert "--web-port" in document["error"]["message"]


def test_tasks_have_no_automatic_short_flags() -> None:
    task = build_namespace().tasks["init"]
    names = {name for arg in task.get_arguments() for name in arg.names}
    short = {name for name in names if len(name) == 1}
    assert short == {"q", "v", "y"}


def test_dev_namespace_is_a_superset() -> None:
    public = set(build_namespace(include_dev=False).task_names)
    dev = set(build_namespace(include_dev=True).task_names)
    assert public <= dev


def test_invoke_checkout_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoke",
            "--search-root",
            str(REPO),
            "init",
            "--data-dir",
            str(tmp_path / "inv"),
            "--backend",
            "postgres",
            "--json",
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        cwd=REPO,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "HOME": str(tmp_path),
            "DOCKER_HOST": "unix:///nonexistent",
        },
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "inv" / "compose.yml").exists()


def test_sigterm_exits_130(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys, time\n"
        "from synthorg_tasks.tasks._base import synthorg_task\n"
        "from invoke.collection import Collection\n"
        "from invoke.program import Program\n"
        "@synthorg_task()\n"
        "def wait(c, *, common):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "ns = Collection(); ns.add_task(wait)\n"
        "Program(namespace=ns).run(['x', 'wait'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
        check=False,
        timeout=30,
    )
    assert result.returncode == 130
    assert "interrupted" in result.stderr


def test_common_flags_before_task_name(tmp_path: Path) -> None:
    import json

    data = tmp_path / "before"
    result = run_synthorg(
        "--json", "--data-dir", str(data), "init", "--backend", "sqlite"
    )
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["data_dir"] == str(data)
    again = run_synthorg("-q", "--data-dir", str(data), "init", "--yes")
    assert again.code == 0, again.output
    assert again.stderr == ""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["synthorg", "init", "--backend", "sqlite"], "init"),
        (["synthorg", "--json", "--data-dir", "/x", "status"], "status"),
        (["synthorg", "config", "get", "web_port"], "config"),
        (["synthorg", "db.migrate"], "db"),
        (["synthorg", "--help"], None),
        (["synthorg", "--list"], None),
        (["synthorg", "nosuch"], None),
        (["synthorg", "config"], None),
    ],
    ids=[
        "root-task",
        "after-core-flags",
        "space-form",
        "dotted",
        "help",
        "list",
        "unknown",
        "collection-alone",
    ],
)
def test_requested_name(argv: list[str], expected: str | None) -> None:
    from synthorg_tasks.program import requested_name

    assert requested_name(argv) == expected


def test_one_task_namespace_matches_full_one() -> None:
    from synthorg_tasks.program import build_program

    alone = build_program(["synthorg", "init"]).namespace
    assert alone.task_names == {"init": []} or list(alone.task_names) == ["init"]
    full = build_namespace()
    assert [a.names for a in alone.tasks["init"].get_arguments()] == [
        a.names for a in full.tasks["init"].get_arguments()
    ]


def test_two_tasks_in_one_call_build_everything() -> None:
    from synthorg_tasks.program import build_program

    program = build_program(["synthorg", "init", "status"])
    assert {"init", "status"} <= set(program.namespace.task_names)
