"""Parallel pulls with retries, against a fake Compose executable."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthorg_tasks.engine.compose_cli import ComposeCli, parse_compose_version
from synthorg_tasks.engine.pull import pull_services
from synthorg_tasks.errors import PullError


def _compose(tmp_path: Path, failures: dict[str, int], message: str = "") -> ComposeCli:
    """A compose that fails ``failures[service]`` times per service, then pulls."""
    counters = tmp_path / "counters"
    counters.mkdir()
    cases = "\n".join(
        f"  {service}) limit={count};;" for service, count in failures.items()
    )
    failure = message or "error pulling $last"
    script = tmp_path / "fake-compose"
    script.write_text(
        "#!/bin/sh\n"
        "for last; do :; done\n"
        f'file="{counters}/$last"\n'
        'n=$(cat "$file" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$file"\n'
        "limit=0\n"
        f'case "$last" in\n{cases}\nesac\n'
        f'if [ $n -le $limit ]; then echo "{failure}"; exit 1; fi\n'
        'echo "pulled $last"\n'
    )
    script.chmod(0o755)
    return ComposeCli(
        [str(script)],
        "fake-compose",
        parse_compose_version("2.0.0"),
        {"PATH": "/usr/bin:/bin"},
    )


def test_pull_retries_until_success(tmp_path: Path) -> None:
    cli = _compose(tmp_path, {"backend": 2})
    sleeps: list[float] = []
    lines: list[str] = []
    outcomes = pull_services(
        cli,
        "demo",
        tmp_path,
        ["backend", "web"],
        attempts=3,
        retry_delay=2.0,
        report=lines.append,
        sleep=sleeps.append,
    )
    attempts = {o.service: o.attempts for o in outcomes}
    assert attempts == {"backend": 3, "web": 1}
    assert sleeps == [2.0, 4.0]
    assert "pulled backend" in lines


def test_pull_failures_reported_together(tmp_path: Path) -> None:
    cli = _compose(tmp_path, {"backend": 9, "web": 9})
    with pytest.raises(PullError) as caught:
        pull_services(
            cli,
            "demo",
            tmp_path,
            ["backend", "web", "nats"],
            attempts=2,
            retry_delay=0.0,
            sleep=lambda seconds: None,
        )
    message = caught.value.message
    assert message.startswith("could not pull backend, web:")
    assert "backend after 2 attempt(s):" in message
    assert "error pulling web" in message
    assert caught.value.exit_code == 1


def test_pull_dhi_auth_failure_hint(tmp_path: Path) -> None:
    cli = _compose(
        tmp_path, {"postgres": 9}, "unauthorized: dhi.io/postgres 401 Unauthorized"
    )
    with pytest.raises(PullError) as caught:
        pull_services(
            cli,
            "demo",
            tmp_path,
            ["postgres"],
            attempts=1,
            retry_delay=0.0,
        )
    assert caught.value.hints == ["run: docker login dhi.io"]
