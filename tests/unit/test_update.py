"""update: check, dry run, drift, the transaction and its rollback, restart."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from synthorg_tasks.errors import (
    ConfigError,
    EngineError,
    ExitCode,
    NotInitialized,
    PullError,
    Unhealthy,
    UsageError,
)
from synthorg_tasks.lifecycle import update
from synthorg_tasks.lifecycle.update_engine import wait_ready
from synthorg_tasks.output import Output
from synthorg_tasks.state.config import Config, load_strict, save_config
from synthorg_tasks.state.lock import LifecycleLock
from synthorg_tasks.verify.pins import load_pins
from tests.unit.conftest import Installer

QUIET = Output(quiet=True)
DIGEST = "sha256:" + "b" * 64


class StandInEngine:
    """Stands in for Compose and the engine at the process boundary.

    Records every call; ``fail_pull`` makes the pull raise (a registry error)
    or interrupt (Ctrl+C), ``running`` lists the running services.
    """

    def __init__(
        self,
        *,
        running: Sequence[str] = (),
        fail_pull: BaseException | None = None,
        missing: Sequence[str] = (),
        stays_running: bool = False,
    ) -> None:
        self.running = list(running)
        self.fail_pull = fail_pull
        self.missing = list(missing)
        self.stays_running = stays_running
        self.calls: list[str] = []
        self.pulled_compose: str | None = None

    def running_services(self, project: str) -> list[str]:
        return list(self.running)

    def platform(self) -> str:
        return "linux/amd64"

    def missing_images(self, references: Sequence[str]) -> list[str]:
        return [ref for ref in references if any(m in ref for m in self.missing)]

    def pull(self, config: Config, services: Sequence[str]) -> None:
        self.calls.append("pull:" + ",".join(services))
        self.pulled_compose = (config.data_dir / "compose.yml").read_text()
        if self.fail_pull is not None:
            raise self.fail_pull

    def down(self, config: Config) -> None:
        self.calls.append("down")
        if not self.stays_running:
            self.running = []

    def up(self, config: Config) -> None:
        self.calls.append("up")
        self.running = ["backend", "web"]

    def wait_ready(self, config: Config, budget_seconds: float) -> None:
        self.calls.append(f"wait:{budget_seconds:g}")


def _factory(engine: StandInEngine) -> update.EngineFactory:
    return lambda timeout, environ: engine


def _verifier(
    calls: list[str], *, fail: BaseException | None = None
) -> update.Verifier:
    def verify(
        config: Config,
        pins: object,
        target: str,
        budget: float,
        root: str | None,
        platform: str,
    ) -> update.VerifyOutcome:
        calls.append(f"verify:{target}:{budget:g}:{platform}")
        if fail is not None:
            raise fail
        digests = {"backend": DIGEST, "web": DIGEST}
        return update.VerifyOutcome(digests, True, "verified")

    return verify


def _request(**flags: object) -> update.UpdateRequest:
    return update.UpdateRequest(environ={}, **flags)  # type: ignore[arg-type]


def _files(data_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {
        path.name: (path.read_bytes(), path.stat().st_mode & 0o777)
        for path in sorted(data_dir.iterdir())
        if path.is_file()
    }


# ---------------------------------------------------------------------------
# Check and dry run


def test_check_up_to_date(install: Installer) -> None:
    data_dir = install()
    result = update.run_update(_request(check=True), data_dir, QUIET)
    assert result.check is not None
    assert result.check.document() == {
        "update_available": False,
        "current_tag": "0.7.0",
        "target_tag": "0.7.0",
        "reasons": [],
    }


def test_check_reports_every_reason(install: Installer) -> None:
    data_dir = install(backend="postgres")
    compose = data_dir / "compose.yml"
    compose.write_text(compose.read_text().replace('"unless-stopped"', '"always"'))
    result = update.run_update(_request(check=True, image_tag="0.8.0"), data_dir, QUIET)
    assert result.check is not None
    assert result.check.reasons == (
        "image tag 0.7.0 differs from 0.8.0",
        "the DHI images are not verified against the current pins",
        "compose.yml differs from its rendering",
    )


def test_check_ignores_header_drift(install: Installer) -> None:
    data_dir = install()
    compose = data_dir / "compose.yml"
    compose.write_text("# an older header\n" + compose.read_text().split("\n", 2)[2])
    result = update.run_update(_request(check=True), data_dir, QUIET)
    assert result.check is not None
    assert not result.check.update_available


def test_check_follows_dev_channel(install: Installer) -> None:
    data_dir = install()
    from synthorg_tasks.lifecycle.config_ops import run_set

    run_set(data_dir, [("channel", "dev")])
    result = update.run_update(_request(check=True), data_dir, QUIET)
    assert result.check is not None
    assert result.check.target_tag == "dev"


def test_dhi_group_current_after_pins(install: Installer) -> None:
    data_dir = install(backend="postgres", bus="nats")
    pins = load_pins()
    config = load_strict(data_dir)
    digests = {
        f"dhi:dhi.io/{pin.repository}:{pin.tag}": pin.index_digest
        for pin in pins.dhi.images.values()
    }
    assert not update.dhi_group_current(config, pins, {})
    assert update.dhi_group_current(config.replace(verified_digests=digests), pins, {})
    stale = dict.fromkeys(digests, DIGEST)
    assert not update.dhi_group_current(
        config.replace(verified_digests=stale), pins, {}
    )


def test_dry_run_plan(install: Installer) -> None:
    data_dir = install()
    before = _files(data_dir)
    result = update.run_update(
        _request(dry_run=True, image_tag="0.8.0", no_restart=True), data_dir, QUIET
    )
    assert result.plan == [
        ("current tag", "0.7.0"),
        ("target tag", "0.8.0"),
        ("compose refresh", "no (already current)"),
        ("image update", "yes"),
        ("restart", "no (excluded by flags)"),
    ]
    assert _files(data_dir) == before


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param({"check": True, "dry_run": True}, id="check-with-dry-run"),
        pytest.param({"image_tag": "-bad"}, id="bad-tag"),
        pytest.param({"timeout": "0s"}, id="zero-timeout"),
        pytest.param({"verify_timeout": "500ms"}, id="verify-under-1s"),
        pytest.param({"timeout": "soon"}, id="timeout-grammar"),
    ],
)
def test_invalid_flags_exit_2(install: Installer, flags: dict[str, object]) -> None:
    data_dir = install()
    with pytest.raises(UsageError):
        update.run_update(_request(**flags), data_dir, QUIET)


def test_update_before_init(tmp_path: Path) -> None:
    with pytest.raises(NotInitialized) as caught:
        update.run_update(_request(check=True), tmp_path / "none", QUIET)
    assert caught.value.message.startswith("not initialized")


# ---------------------------------------------------------------------------
# Drift, redaction and preserve mode


def test_drift_kinds(install: Installer) -> None:
    data_dir = install()
    pins = load_pins()
    config = load_strict(data_dir)
    compose = data_dir / "compose.yml"
    original = compose.read_text()
    assert update.compose_drift(config, pins).kind == "none"
    compose.write_text(original.replace("synthorg-tasks 0.1.0", "synthorg-tasks 0.0.9"))
    assert update.compose_drift(config, pins).kind == "header"
    compose.write_text(original.replace("synthorg-web:0.7.0", "synthorg-web:0.6.0"))
    assert update.compose_drift(config, pins).kind == "images"
    compose.write_text(original.replace("synthorg-web:0.7.0", "other/web:0.7.0"))
    assert update.compose_drift(config, pins).kind == "other"
    compose.unlink()
    assert update.compose_drift(config, pins).kind == "missing"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            '      POSTGRES_PASSWORD: "hunter2-long"',
            "      POSTGRES_PASSWORD: [REDACTED]",
            id="password-key",
        ),
        pytest.param(
            '      SYNTHORG_JWT_SECRET: "x"',
            "      SYNTHORG_JWT_SECRET: [REDACTED]",
            id="secret-key",
        ),
        pytest.param(
            '      SYNTHORG_DATABASE_URL: "postgresql://synthorg:pw@postgres:5432/db"',
            '      SYNTHORG_DATABASE_URL: "postgresql://[REDACTED]@postgres:5432/db"',
            id="url-userinfo",
        ),
        pytest.param(
            '    image: "ghcr.io/a/b:1"', '    image: "ghcr.io/a/b:1"', id="plain"
        ),
    ],
)
def test_redact_line(line: str, expected: str) -> None:
    assert update.redact_line(line) == expected


def test_other_drift_needs_confirmation(install: Installer) -> None:
    data_dir = install()
    compose = data_dir / "compose.yml"
    edited = compose.read_text().replace('"unless-stopped"', '"always"')
    compose.write_text(edited)
    with pytest.raises(UsageError) as caught:
        update.run_update(
            _request(image_tag="0.8.0"),
            data_dir,
            QUIET,
            engine_factory=_factory(StandInEngine()),
            verifier=_verifier([]),
        )
    assert "refusing to replace compose.yml without confirmation" in (
        caught.value.message
    )
    assert compose.read_text() == edited


def test_declined_refresh_uses_preserve_mode(
    install: Installer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from synthorg_tasks import prompts

    data_dir = install()
    compose = data_dir / "compose.yml"
    edited = compose.read_text().replace('"unless-stopped"', '"always"')
    compose.write_text(edited)
    monkeypatch.setattr(prompts, "stdin_is_tty", lambda: True)
    # Answer "no" to the compose refresh and "yes" to the pull.
    monkeypatch.setattr("sys.stdin", io.StringIO("n\ny\n"))
    result = update.run_update(
        _request(image_tag="0.8.0"),
        data_dir,
        QUIET,
        engine_factory=_factory(StandInEngine()),
        verifier=_verifier([]),
    )
    text = compose.read_text()
    assert result.updated
    assert not result.compose_refreshed
    assert '"always"' in text
    assert f'    image: "ghcr.io/aureliolo/synthorg-web@{DIGEST}"' in text
    assert len(text.splitlines()) == len(edited.splitlines())


def test_patch_image_lines_only_touches_images(install: Installer) -> None:
    data_dir = install()
    text = (
        (data_dir / "compose.yml").read_text().replace('"unless-stopped"', '"always"')
    )
    patched = update.patch_image_lines(
        text, {"backend": "127.0.0.1:5000/b:2", "web": "127.0.0.1:5000/w:2"}
    )
    assert '    image: "127.0.0.1:5000/b:2"' in patched
    assert '    image: "127.0.0.1:5000/w:2"' in patched
    assert '"always"' in patched
    assert len(patched.splitlines()) == len(text.splitlines())


def test_patch_image_lines_missing_service(install: Installer) -> None:
    data_dir = install()
    text = (data_dir / "compose.yml").read_text()
    with pytest.raises(ConfigError) as caught:
        update.patch_image_lines(text, {"postgres": "x:1"})
    assert "no image line for postgres" in caught.value.message


# ---------------------------------------------------------------------------
# The transaction


def test_update_moves_to_target(install: Installer) -> None:
    data_dir = install()
    engine = StandInEngine()
    calls: list[str] = []
    result = update.run_update(
        _request(image_tag="0.8.0", yes=True, verify_timeout="30s"),
        data_dir,
        QUIET,
        engine_factory=_factory(engine),
        verifier=_verifier(calls),
    )
    config = load_strict(data_dir)
    assert result.updated
    assert calls == ["verify:0.8.0:30:linux/amd64"]
    assert engine.calls == ["pull:data-init,backend,web"]
    assert config.image_tag == "0.8.0"
    assert config.verified_image_tag == "0.8.0"
    assert config.verified_digests == {"backend": DIGEST, "web": DIGEST}
    assert engine.pulled_compose is not None
    assert f"synthorg-backend@{DIGEST}" in engine.pulled_compose
    assert not result.restarted
    assert "run 'synthorg start' to run the new images" in result.messages


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(PullError("pull failed: registry refused"), id="pull-error"),
        pytest.param(KeyboardInterrupt(), id="ctrl-c"),
    ],
)
def test_failed_pull_restores_everything(
    install: Installer, failure: BaseException
) -> None:
    data_dir = install(bus="nats")
    (data_dir / "nats.conf").chmod(0o640)
    before = _files(data_dir)
    engine = StandInEngine(fail_pull=failure)
    with pytest.raises(type(failure)):
        update.run_update(
            _request(image_tag="0.8.0", yes=True),
            data_dir,
            QUIET,
            engine_factory=_factory(engine),
            verifier=_verifier([]),
        )
    assert engine.pulled_compose is not None
    assert f"synthorg-backend@{DIGEST}" in engine.pulled_compose
    assert _files(data_dir) == before
    assert list(data_dir.glob(".*.tmp-*")) == []


def test_failed_verification_changes_nothing(install: Installer) -> None:
    from synthorg_tasks.errors import VerificationError

    data_dir = install()
    before = _files(data_dir)
    engine = StandInEngine()
    with pytest.raises(VerificationError):
        update.run_update(
            _request(image_tag="0.8.0", yes=True),
            data_dir,
            QUIET,
            engine_factory=_factory(engine),
            verifier=_verifier([], fail=VerificationError("bad signature")),
        )
    assert engine.calls == []
    assert _files(data_dir) == before


def test_restore_removes_file_absent_at_snapshot(install: Installer) -> None:
    data_dir = install()
    snapshot = update._snapshot(data_dir)
    (data_dir / "nats.conf").write_text("port: 4222\n")
    (data_dir / "compose.yml").write_text("changed\n")
    update._restore(data_dir, snapshot)
    saved = snapshot["compose.yml"]
    assert saved is not None
    assert not (data_dir / "nats.conf").exists()
    assert (data_dir / "compose.yml").read_bytes() == saved.data


def test_update_needs_confirmation(install: Installer) -> None:
    data_dir = install()
    before = _files(data_dir)
    with pytest.raises(UsageError) as caught:
        update.run_update(
            _request(image_tag="0.8.0"),
            data_dir,
            QUIET,
            engine_factory=_factory(StandInEngine()),
            verifier=_verifier([]),
        )
    assert caught.value.exit_code == ExitCode.USAGE
    assert _files(data_dir) == before


def test_auto_pull_confirms(install: Installer) -> None:
    data_dir = install()
    from synthorg_tasks.lifecycle.config_ops import run_set

    run_set(data_dir, [("auto_pull", "true")])
    result = update.run_update(
        _request(image_tag="0.8.0"),
        data_dir,
        QUIET,
        engine_factory=_factory(StandInEngine()),
        verifier=_verifier([]),
    )
    assert result.updated


def test_already_current(install: Installer) -> None:
    data_dir = install()
    config = load_strict(data_dir)
    with LifecycleLock(data_dir) as lock:
        save_config(
            config.replace(
                verified_digests={"backend": DIGEST, "web": DIGEST},
                verified_image_tag="0.7.0",
            ),
            lock,
        )
    engine = StandInEngine()
    # The verified cache pins compose.yml to digests, so the file drifts in
    # its image lines only and is refreshed silently.
    result = update.run_update(
        _request(yes=True), data_dir, QUIET, engine_factory=_factory(engine)
    )
    assert "already at 0.7.0" in result.messages
    assert not result.updated
    assert "pull" not in " ".join(engine.calls)


def test_missing_images_force_pull(install: Installer) -> None:
    data_dir = install()
    engine = StandInEngine(missing=["synthorg-web"])
    result = update.run_update(
        _request(yes=True, skip_verify=True),
        data_dir,
        QUIET,
        engine_factory=_factory(engine),
    )
    assert result.updated
    assert engine.calls == ["pull:data-init,backend,web"]
    assert result.verification == "skipped"


def test_unverified_update_drops_old_digests(install: Installer) -> None:
    data_dir = install()
    config = load_strict(data_dir)
    with LifecycleLock(data_dir) as lock:
        save_config(
            config.replace(
                verified_digests={"backend": DIGEST, "web": DIGEST, "dhi:x": DIGEST},
                verified_image_tag="0.7.0",
            ),
            lock,
        )
    update.run_update(
        _request(image_tag="0.8.0", yes=True, skip_verify=True),
        data_dir,
        QUIET,
        engine_factory=_factory(StandInEngine()),
    )
    config = load_strict(data_dir)
    assert config.verified_digests == {"dhi:x": DIGEST}
    assert config.verified_image_tag is None
    assert "synthorg-backend:0.8.0" in (data_dir / "compose.yml").read_text()


# ---------------------------------------------------------------------------
# Restart


def test_restart_sequence(install: Installer) -> None:
    data_dir = install()
    engine = StandInEngine(running=["backend", "web"])
    result = update.run_update(
        _request(image_tag="0.8.0", yes=True, timeout="42s"),
        data_dir,
        QUIET,
        engine_factory=_factory(engine),
        verifier=_verifier([]),
    )
    assert result.restarted
    assert result.ready is True
    assert engine.calls == ["pull:data-init,backend,web", "down", "up", "wait:42"]


def test_restart_fails_closed_when_containers_remain(install: Installer) -> None:
    data_dir = install()
    engine = StandInEngine(running=["backend"], stays_running=True)
    with pytest.raises(EngineError) as caught:
        update.run_update(
            _request(image_tag="0.8.0", yes=True),
            data_dir,
            QUIET,
            engine_factory=_factory(engine),
            verifier=_verifier([]),
        )
    assert "still run after compose down" in caught.value.message
    assert "up" not in engine.calls
    assert load_strict(data_dir).image_tag == "0.8.0"


def test_no_restart_flag(install: Installer) -> None:
    data_dir = install()
    engine = StandInEngine(running=["backend", "web"])
    result = update.run_update(
        _request(image_tag="0.8.0", yes=True, no_restart=True),
        data_dir,
        QUIET,
        engine_factory=_factory(engine),
        verifier=_verifier([]),
    )
    assert not result.restarted
    assert "down" not in engine.calls


# ---------------------------------------------------------------------------
# Readiness wait against a real HTTP server on loopback


@pytest.fixture
def readiness_server() -> Iterator[tuple[int, list[int]]]:
    """Serve /api/v1/readyz on 127.0.0.1; the list sets each response's status."""
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = statuses.pop(0) if statuses else 200
            body = json.dumps({"data": {"status": "ok" if code == 200 else "down"}})
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _fast_config(install: Installer, port: int) -> Config:
    data_dir = install()
    config = load_strict(data_dir)
    return config.replace(
        backend_port=port,
        tunables={
            "health_initial_delay": "10ms",
            "health_poll_interval": "50ms",
            "health_check_timeout": "1s",
        },
    )


def test_wait_ready_after_retries(
    install: Installer, readiness_server: tuple[int, list[int]]
) -> None:
    port, statuses = readiness_server
    statuses.extend([503, 503])
    wait_ready(_fast_config(install, port), 5.0, {})
    assert statuses == []


def test_wait_ready_times_out(
    install: Installer, readiness_server: tuple[int, list[int]]
) -> None:
    port, statuses = readiness_server
    statuses.extend([503] * 1000)
    with pytest.raises(Unhealthy) as caught:
        wait_ready(_fast_config(install, port), 0.3, {})
    assert caught.value.exit_code == ExitCode.CRITICAL
    assert caught.value.message.startswith("health check timed out after 0.3s")
    assert "503" in caught.value.message


# ---------------------------------------------------------------------------
# The task through the program


def test_cli_check_exit_10_json(install: Installer, synthorg: Any) -> None:
    data_dir = install()
    result = synthorg(
        "update",
        "--check",
        "--image-tag",
        "0.8.0",
        "--json",
        "--data-dir",
        str(data_dir),
    )
    assert result.code == ExitCode.UPDATE_AVAILABLE
    assert json.loads(result.stdout) == {
        "update_available": True,
        "current_tag": "0.7.0",
        "target_tag": "0.8.0",
        "reasons": ["image tag 0.7.0 differs from 0.8.0"],
    }
    assert "error" not in result.stderr


def test_cli_check_up_to_date(install: Installer, synthorg: Any) -> None:
    data_dir = install()
    result = synthorg("update", "--check", "--data-dir", str(data_dir))
    assert result.code == 0
    assert result.stdout == "Up to date\n"


def test_cli_update_without_engine_exits_4(install: Installer, synthorg: Any) -> None:
    data_dir = install()
    before = _files(data_dir)
    result = synthorg(
        "update", "--image-tag", "0.8.0", "--yes", "--data-dir", str(data_dir)
    )
    assert result.code == ExitCode.UNREACHABLE
    assert "Docker engine not reachable" in result.stderr
    assert _files(data_dir) == before


# ---------------------------------------------------------------------------
# The default verifier: the shared pipeline, or loudly off


def test_default_verifier_uses_cache_offline(install: Installer) -> None:
    data_dir = install()
    config = load_strict(data_dir).replace(
        verified_digests={"backend": DIGEST, "web": DIGEST},
        verified_image_tag="0.7.0",
    )
    verify = update.default_verifier(False, {})
    # Both groups are current (SQLite has no DHI image), so the pipeline
    # answers from the cache without any request.
    outcome = verify(config, load_pins(), "0.7.0", 30.0, None, "linux/amd64")
    assert outcome.mode == "cached"
    assert outcome.synthorg_verified
    assert outcome.digests == {"backend": DIGEST, "web": DIGEST}


@pytest.mark.parametrize(
    ("skip", "overrides", "mode", "warning"),
    [
        pytest.param(True, {}, "skipped", "--skip-verify is set", id="skip"),
        pytest.param(
            False,
            {"registry_host": "127.0.0.1:5000"},
            "off",
            "registry_host override the pinned registry",
            id="override",
        ),
    ],
)
def test_default_verifier_off_warns(
    install: Installer,
    capsys: pytest.CaptureFixture[str],
    skip: bool,
    overrides: dict[str, str],
    mode: str,
    warning: str,
) -> None:
    data_dir = install()
    config = load_strict(data_dir).replace(
        verified_digests={"backend": DIGEST, "web": DIGEST, "dhi:x": DIGEST},
        verified_image_tag="0.7.0",
        **overrides,
    )
    verify = update.default_verifier(skip, {})
    outcome = verify(config, load_pins(), "0.8.0", 30.0, None, "linux/amd64")
    assert outcome.mode == mode
    assert not outcome.synthorg_verified
    assert outcome.digests == {"dhi:x": DIGEST}
    assert warning in capsys.readouterr().err
