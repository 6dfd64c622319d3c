"""``doctor``: named checks, optional fixes and a redacted diagnostics file.

Each check returns a :class:`CheckResult` with ``ok``, ``warn``, ``error`` or
``skipped`` and its findings. The tolerant loader is used, so doctor runs on
an invalid config; an unparseable file is a finding, never repaired.
"""

from __future__ import annotations

import datetime as dt
import platform
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from synthorg_tasks import __version__
from synthorg_tasks.errors import ConfigError, EngineError, SynthorgError, UsageError
from synthorg_tasks.lifecycle._stack import EngineSession, open_engine, port_needs
from synthorg_tasks.logging import get_logger
from synthorg_tasks.output import Output
from synthorg_tasks.ports_preflight import preflight_ports
from synthorg_tasks.state.atomic import atomic_write, stale_temp_files
from synthorg_tasks.state.config import Config, LoadResult, load_tolerant
from synthorg_tasks.state.lock import LifecycleLock
from synthorg_tasks.state.paths import COMPOSE_FILE, CONFIG_FILE, NATS_CONF_FILE
from synthorg_tasks.state.secrets import REDACTED, mask, register_secret

__all__ = ["CHECK_NAMES", "CheckResult", "DoctorRequest", "DoctorResult", "run_doctor"]

_logger = get_logger("lifecycle")

CHECK_NAMES = (
    "environment",
    "config",
    "files",
    "compose",
    "ports",
    "images",
    "containers",
    "health",
    "verification",
    "disk",
)
# NOTE: the 2 GiB threshold follows the reference's doctor; it is not derived
# from a measured need of the stack.
DISK_WARNING_BYTES = 2 * 1024**3
_EXPECTED_MODES = {CONFIG_FILE: 0o600, COMPOSE_FILE: 0o600, NATS_CONF_FILE: 0o644}


@dataclass(frozen=True)
class DoctorRequest:
    """The flags of ``doctor``."""

    checks: str = "all"
    fix: bool = False
    no_report: bool = False


@dataclass
class CheckResult:
    """The outcome of one check."""

    name: str
    status: str = "ok"
    findings: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    def warn(self, finding: str) -> None:
        """Record a warning."""
        self.findings.append(finding)
        if self.status == "ok":
            self.status = "warn"

    def error(self, finding: str) -> None:
        """Record an error."""
        self.findings.append(finding)
        self.status = "error"


@dataclass
class DoctorResult:
    """All check results, the verdict, the exit code and the report path."""

    checks: list[CheckResult]
    report_path: Path | None = None
    engine_unreachable: bool = False

    @property
    def verdict(self) -> str:
        """``ok``, ``warn`` or ``error`` over every check."""
        statuses = {check.status for check in self.checks}
        if "error" in statuses:
            return "error"
        return "warn" if "warn" in statuses else "ok"

    @property
    def exit_code(self) -> int:
        """0 no findings, 5 warnings only, 3 any error, 4 engine unreachable."""
        if self.engine_unreachable:
            return 4
        return {"ok": 0, "warn": 5, "error": 3}[self.verdict]

    def document(self) -> dict[str, object]:
        """Return the ``--json`` document."""
        return {
            "verdict": self.verdict,
            "checks": [
                {
                    "name": c.name,
                    "status": c.status,
                    "findings": [mask(f) for f in c.findings],
                    "fixed": c.fixed,
                }
                for c in self.checks
            ],
            "report_path": str(self.report_path) if self.report_path else None,
        }


def parse_checks(value: str) -> list[str]:
    """Parse ``--checks``: a comma list of check names or ``all``."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names or names == ["all"]:
        return list(CHECK_NAMES)
    unknown = [name for name in names if name not in CHECK_NAMES]
    if unknown:
        raise UsageError(
            f"--checks: unknown check {', '.join(unknown)}; valid checks: "
            + ", ".join(("all", *CHECK_NAMES))
        )
    return [name for name in CHECK_NAMES if name in names]


class _Context:
    """State shared by the checks: the tolerant load and a lazily opened engine."""

    def __init__(self, data_dir: Path, out: Output, fix: bool) -> None:
        self.data_dir = data_dir
        self.out = out
        self.fix = fix
        self.load: LoadResult | None = None
        self.load_error: str | None = None
        self._session: EngineSession | None = None
        self.engine_error: str | None = None
        try:
            self.load = load_tolerant(data_dir)
        except ConfigError as exc:
            self.load_error = exc.message
        if self.config and self.config.postgres_password:
            register_secret(self.config.postgres_password)

    @property
    def config(self) -> Config | None:
        return self.load.config if self.load else None

    def session(self) -> EngineSession | None:
        if self._session is None and self.engine_error is None:
            timeout = 15.0
            if self.config is not None:
                try:
                    timeout = self.config.tunable_seconds("status_docker_timeout")
                except ConfigError:
                    timeout = 15.0
            try:
                self._session = open_engine(timeout, self.out)
            except EngineError as exc:
                self.engine_error = exc.message
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def _check_environment(ctx: _Context, result: CheckResult) -> None:
    result.findings.append(
        f"info: {platform.system()} {platform.machine()}, synthorg-tasks {__version__}"
    )
    docker_cli = shutil.which("docker")
    result.findings.append(f"info: docker CLI: {docker_cli or 'not on PATH'}")
    session = ctx.session()
    if session is None:
        result.error(ctx.engine_error or "Docker engine not reachable")
        return
    result.findings.append(
        f"info: engine {session.api.engine.version}, Docker Compose "
        f"{session.compose.version} ({session.compose.binary}); minimum 1.29.0 for v1"
    )


def _check_config(ctx: _Context, result: CheckResult) -> None:
    if ctx.load_error is not None:
        result.error(ctx.load_error)
        return
    assert ctx.load is not None
    if not ctx.load.initialized:
        result.error(f"no configuration in {ctx.data_dir}; run 'synthorg init'")
        return
    for finding in ctx.load.findings:
        (result.error if finding.level == "error" else result.warn)(finding.message)
    for key in ctx.load.coerced:
        result.warn(f"{key}: an unknown value was replaced by the default in memory")
    if ctx.load.config.extra:
        result.warn("unknown keys kept: " + ", ".join(ctx.load.config.extra))


def _check_files(ctx: _Context, result: CheckResult) -> None:
    directory = ctx.data_dir
    if not directory.is_dir():
        result.error(f"data dir {directory} does not exist")
        return
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        result.warn(f"data dir {directory} has mode {mode:04o}, expected 0700")
        if ctx.fix:
            directory.chmod(0o700)
            result.fixed.append("data dir mode set to 0700")
    for name, expected in _EXPECTED_MODES.items():
        path = directory / name
        if path.is_symlink():
            result.error(f"{path} is a symbolic link")
            continue
        if not path.exists():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode != expected:
            result.warn(f"{name} has mode {mode:04o}, expected {expected:04o}")
            if ctx.fix:
                path.chmod(expected)
                result.fixed.append(f"{name} mode set to {expected:04o}")
        for temp in stale_temp_files(directory, name):
            result.warn(f"stale temporary file {temp}")
            if ctx.fix:
                temp.unlink(missing_ok=True)
                result.fixed.append(f"removed {temp.name}")
    if (directory / ".env").exists():
        result.warn(f"{directory / '.env'} exists; Compose would read it")


def _check_compose(ctx: _Context, result: CheckResult) -> None:
    config = ctx.config
    if config is None or ctx.load is None or not ctx.load.initialized:
        result.status = "skipped"
        return
    from synthorg_tasks.render.writer import render_files, write_rendered
    from synthorg_tasks.verify.pins import load_pins

    try:
        files = render_files(config, load_pins())
    except SynthorgError as exc:
        result.error(f"cannot render the compose files: {exc.message}")
        return
    compose_path = ctx.data_dir / COMPOSE_FILE
    nats_path = ctx.data_dir / NATS_CONF_FILE
    drifted = False
    if not compose_path.is_file():
        result.error("compose.yml is missing")
        drifted = True
    elif compose_path.read_text(encoding="utf-8") != files.compose:
        result.warn("compose.yml differs from its rendering")
        drifted = True
    if files.nats_conf is not None:
        if not nats_path.is_file() or nats_path.read_text("utf-8") != files.nats_conf:
            result.warn("nats.conf is missing or differs from its rendering")
            drifted = True
    elif nats_path.exists():
        result.warn("nats.conf exists but the bus is not nats")
        drifted = True
    if drifted and ctx.fix:
        with LifecycleLock(
            ctx.data_dir, config.tunable_seconds("lock_timeout")
        ) as lock:
            write_rendered(ctx.data_dir, files, lock)
        result.fixed.append("regenerated compose.yml and nats.conf")
    session = ctx.session()
    if session is not None and compose_path.is_file():
        check = session.compose.run(
            config.project_name, ctx.data_dir, "config", ["-q"], check=False
        )
        if check.returncode != 0:
            result.error("compose config -q failed: " + check.output.strip()[-300:])


def _check_ports(ctx: _Context, result: CheckResult) -> None:
    config = ctx.config
    if config is None:
        result.status = "skipped"
        return
    session = ctx.session()
    own = [] if session is None else session.api.bound_ports(config.project_name)
    try:
        preflight_ports(config.bind_address, port_needs(config), own)
    except SynthorgError as exc:
        result.error(exc.message)


def _check_images(ctx: _Context, result: CheckResult) -> None:
    config = ctx.config
    session = ctx.session()
    if config is None or session is None:
        result.status = "skipped"
        return
    from synthorg_tasks.render.writer import render_files
    from synthorg_tasks.verify.pins import load_pins

    try:
        images = render_files(config, load_pins()).params.images.by_service()
    except SynthorgError as exc:
        result.error(exc.message)
        return
    for service, reference in images.items():
        if not session.api.image_present(reference):
            result.warn(f"{service}: image {reference} is not present locally")


def _check_containers(ctx: _Context, result: CheckResult) -> None:
    from synthorg_tasks.status.collect import collect_snapshot
    from synthorg_tasks.status.verdict import Level, evaluate

    snapshot = collect_snapshot(ctx.data_dir)
    verdict = evaluate(snapshot)
    for issue in verdict.issues:
        if issue.level is Level.CRITICAL:
            result.error(f"{issue.code}: {issue.message}")
        else:
            result.warn(f"{issue.code}: {issue.message}")
    session = ctx.session()
    if ctx.fix and session is not None and ctx.config is not None:
        for container in snapshot.containers:
            broken = container.health == "unhealthy" or (
                container.state == "exited" and container.service != "data-init"
            )
            if broken:
                session.compose.run(
                    ctx.config.project_name,
                    ctx.data_dir,
                    "restart",
                    [container.service],
                )
                result.fixed.append(f"restarted {container.service}")


def _check_health(ctx: _Context, result: CheckResult) -> None:
    config = ctx.config
    if config is None:
        result.status = "skipped"
        return
    from synthorg_tasks.health.readiness import api_prefix, probe_host, probe_readiness

    readiness = probe_readiness(
        probe_host(config.bind_address),
        config.backend_port,
        config.tunable_seconds("health_check_timeout"),
        api_prefix(),
    )
    if readiness.ready:
        result.findings.append(f"info: {readiness.url} HTTP {readiness.http_status}")
        return
    result.error(f"{readiness.url}: {readiness.describe()}")


def _check_verification(ctx: _Context, result: CheckResult) -> None:
    config = ctx.config
    if config is None:
        result.status = "skipped"
        return
    from synthorg_tasks.render.params import active_overrides, synthorg_group_current
    from synthorg_tasks.verify.pins import load_pins

    pins = load_pins()
    overrides = active_overrides(config, pins)
    if overrides:
        result.warn(
            f"{', '.join(overrides)} override the pinned registry or tags; image "
            "verification is OFF"
        )
        return
    state = (
        "current"
        if synthorg_group_current(config, pins, config.image_tag)
        else ("stale" if config.verified_digests else "empty")
    )
    result.findings.append(f"info: SynthOrg cache {state}")
    if state != "current":
        result.warn(f"SynthOrg verification cache is {state}; run 'synthorg verify'")


def _check_disk(ctx: _Context, result: CheckResult) -> None:
    target = ctx.data_dir if ctx.data_dir.exists() else ctx.data_dir.parent
    free = shutil.disk_usage(target).free
    result.findings.append(f"info: {free / 1024**3:.1f} GiB free on {target}")
    if free < DISK_WARNING_BYTES:
        result.warn(f"only {free / 1024**3:.1f} GiB free on {target} (under 2 GiB)")


_CHECKS: dict[str, Callable[[_Context, CheckResult], None]] = {
    "environment": _check_environment,
    "config": _check_config,
    "files": _check_files,
    "compose": _check_compose,
    "ports": _check_ports,
    "images": _check_images,
    "containers": _check_containers,
    "health": _check_health,
    "verification": _check_verification,
    "disk": _check_disk,
}


def _report_text(result: DoctorResult, data_dir: Path) -> str:
    lines = [
        f"synthorg-tasks {__version__} diagnostics",
        f"written {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}",
        f"data dir {data_dir}",
        f"verdict {result.verdict}",
        "",
    ]
    for check in result.checks:
        lines.append(f"[{check.status}] {check.name}")
        lines += [f"  {finding}" for finding in check.findings]
        lines += [f"  fixed: {fix}" for fix in check.fixed]
    return mask("\n".join(lines) + "\n", REDACTED)


def run_doctor(request: DoctorRequest, data_dir: Path, out: Output) -> DoctorResult:
    """Run the selected checks, apply fixes, and write the report."""
    names = parse_checks(request.checks)
    ctx = _Context(data_dir, out, request.fix)
    checks: list[CheckResult] = []
    try:
        for name in names:
            result = CheckResult(name)
            try:
                _CHECKS[name](ctx, result)
            except SynthorgError as exc:
                result.error(exc.message)
            checks.append(result)
    finally:
        ctx.close()
    doctor = DoctorResult(
        checks,
        engine_unreachable="environment" in names and ctx.engine_error is not None,
    )
    if not request.no_report and data_dir.is_dir():
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = data_dir / f"synthorg-diagnostic-{stamp}.txt"
        # Two runs within one second must not overwrite each other's report.
        serial = 1
        while path.exists():
            serial += 1
            path = data_dir / f"synthorg-diagnostic-{stamp}-{serial}.txt"
        atomic_write(path, _report_text(doctor, data_dir).encode("utf-8"), mode=0o600)
        doctor.report_path = path
    _logger.info("doctor verdict %s", doctor.verdict)
    return doctor


def report_doctor(result: DoctorResult, out: Output, *, fix: bool = False) -> None:
    """Print the doctor results."""
    if out.json:
        out.document(result.document())
        return
    for check in result.checks:
        out.data(f"[{check.status:>7}] {check.name}")
        for finding in check.findings:
            out.data(f"          {finding}")
        for applied in check.fixed:
            out.data(f"          fixed: {applied}")
    without_fix = [
        f"{c.name}"
        for c in result.checks
        if c.status in {"warn", "error"} and not c.fixed
    ]
    if fix and without_fix:
        out.info("no automatic fix for: " + ", ".join(without_fix))
    if result.report_path is not None:
        out.data(f"diagnostics written to {result.report_path}")
