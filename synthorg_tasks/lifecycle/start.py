"""``start``: verify, pull, preflight and bring the stack up, then wait for ready.

The steps, in order (each is one function below):

1. check the flags and strict-load the config; ``--dry-run`` prints the plan
   here and contacts no engine;
2. detect the engine (exit 4) and Compose (exit 1) before anything is
   touched, then take the lifecycle lock;
3. verify the images (or warn that verification is off, and why), then pull
   them, or with ``--no-pull`` prove every image is local;
4. bind-test every published host port;
5. ``compose up -d`` under a crash-loop monitor (or attached with
   ``--no-detach``), then release the lock;
6. wait for ``/readyz`` unless ``--no-wait``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthorg_tasks import grammars
from synthorg_tasks.engine.compose_cli import ComposeResult
from synthorg_tasks.errors import (
    ComposeFailed,
    ConfigError,
    Interrupted,
    NotInitialized,
    SynthorgError,
    Unhealthy,
    UsageError,
    VerificationError,
)
from synthorg_tasks.health.readiness import (
    ReadinessResult,
    api_prefix,
    probe_host,
    probe_readiness,
    wait_for_ready,
)
from synthorg_tasks.lifecycle._stack import (
    Baseline,
    EngineSession,
    check_crash_loop,
    container_diagnostics,
    crash_baseline,
    open_engine,
    port_needs,
    require_compose_file,
)
from synthorg_tasks.logging import get_logger
from synthorg_tasks.output import Output
from synthorg_tasks.ports_preflight import preflight_ports
from synthorg_tasks.render.writer import RenderedFiles, render_files
from synthorg_tasks.state.atomic import atomic_write
from synthorg_tasks.state.config import Config, load_strict
from synthorg_tasks.state.lock import LifecycleLock
from synthorg_tasks.state.paths import CONFIG_FILE, NATS_CONF_FILE
from synthorg_tasks.verify.pins import Pins, load_pins

__all__ = ["StartRequest", "StartResult", "run_start", "up_detached", "wait_ready"]

_logger = get_logger("lifecycle")

MONITOR_INTERVAL_SECONDS = 2.0
SPINNER_INTERVAL_SECONDS = 10.0
_DEPENDENCY_FAILURES = (
    "is unhealthy",
    "didn't complete successfully",
    "dependency failed",
)


@dataclass(frozen=True)
class StartRequest:
    """The flags of ``start``, as given."""

    no_wait: bool = False
    timeout: str | None = None
    no_pull: bool = False
    dry_run: bool = False
    no_detach: bool = False
    skip_verify: bool = False
    trusted_root: str | None = None


@dataclass
class StartResult:
    """Outcome of a start, for the summary and ``--json``."""

    ready: bool
    urls: dict[str, str]
    images: dict[str, str]
    verification: dict[str, str]
    dry_run: bool = False
    plan: list[tuple[str, str]] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        """Return the ``--json`` document."""
        return {
            "ready": self.ready,
            "urls": self.urls,
            "images": self.images,
            "verification": self.verification,
        }


# -- step 1 -------------------------------------------------------------------


def _check_flags(request: StartRequest, environ: Mapping[str, str]) -> float | None:
    if request.no_detach and (request.no_wait or request.timeout is not None):
        raise UsageError("--no-detach cannot be combined with --no-wait or --timeout")
    if request.timeout is None:
        return None
    try:
        return grammars.parse_duration(request.timeout)
    except ValueError as exc:
        raise UsageError(
            f"--timeout: {request.timeout!r} is invalid ({exc})",
            hints=["for example --timeout 120s"],
        ) from None


def _load(data_dir: Path) -> Config:
    if not (data_dir / CONFIG_FILE).is_file():
        raise NotInitialized(
            f"no configuration in {data_dir}; run 'synthorg init' first",
            hints=["synthorg init"],
        )
    config = load_strict(data_dir)
    require_compose_file(config.data_dir)
    return config


def _urls(config: Config) -> dict[str, str]:
    host = probe_host(config.bind_address)
    host = f"[{host}]" if ":" in host else host
    return {
        "dashboard": f"http://{host}:{config.web_port}",
        "api": f"http://{host}:{config.backend_port}",
    }


def _verification_mode(
    request: StartRequest, overrides: list[str]
) -> tuple[str, list[str]]:
    """Return the verification mode and every warning that applies to it.

    Each reason to skip verification prints its own warning, so an override
    and ``--skip-verify`` together print both. A broken installation without
    the verification pipeline fails closed instead of starting unverified.
    """
    warnings = []
    if request.skip_verify:
        warnings.append(
            "WARNING: --skip-verify is set; images will be pulled WITHOUT "
            "signature or provenance checks"
        )
    if overrides:
        warnings.append(
            f"WARNING: {', '.join(overrides)} override the pinned registry or "
            "tags; image verification is OFF"
        )
    if warnings or request.no_pull:
        return "skipped", warnings
    if _pipeline() is None:
        raise VerificationError(
            "image verification is unavailable: synthorg_tasks.verify.pipeline "
            "cannot be imported; nothing was started",
            hints=[
                "reinstall synthorg-tasks with its dependencies, or pass "
                "--skip-verify to start unverified images"
            ],
        )
    return "verify", []


def _plan(
    config: Config,
    files: RenderedFiles,
    request: StartRequest,
    budget: float,
    verification: str,
) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for service, reference in files.params.images.by_service().items():
        rows.append((f"image {service}", reference))
    for key, port in config.ports().items():
        rows.append((key, f"{config.bind_address}:{port}"))
    rows += [
        ("persistence", config.persistence_backend),
        ("bus", config.bus_backend),
        ("verification", verification),
        ("pull", "off (--no-pull: images must be local)" if request.no_pull else "on"),
        ("detach", "no (--no-detach)" if request.no_detach else "yes"),
        ("health wait", "off (--no-wait)" if request.no_wait else f"{budget:g}s"),
    ]
    return rows


# -- step 2 -------------------------------------------------------------------


def _sync_nats_conf(config: Config, files: RenderedFiles, lock: LifecycleLock) -> None:
    if files.nats_conf is None or not lock.held:
        return
    path = config.data_dir / NATS_CONF_FILE
    wanted = files.nats_conf.encode("utf-8")
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        current = None
    if current != wanted:
        atomic_write(path, wanted, mode=0o644)
        _logger.info("rewrote %s to match its rendering", path)


# -- step 3 -------------------------------------------------------------------


def _pipeline() -> Any:
    """Return ``verify_images_with_cache`` when the verification package has it."""
    try:
        module = importlib.import_module("synthorg_tasks.verify.pipeline")
    except ImportError:
        return None
    return getattr(module, "verify_images_with_cache", None)


def _verify(
    config: Config,
    pins: Pins,
    request: StartRequest,
    session: EngineSession,
    lock: LifecycleLock,
    out: Output,
    pipeline_options: Mapping[str, Any] | None = None,
) -> tuple[Config, RenderedFiles | None, dict[str, str]]:
    """Verify the stale groups, save the cache and pin compose.yml to the digests.

    Returns the config carrying the new cache, the re-rendered files when the
    SynthOrg group was verified (else ``None``), and the state of each group.
    ``pipeline_options`` replaces arguments of ``verify_images_with_cache``
    (trust, registry factory, API clients); tests inject local servers here.
    """
    from synthorg_tasks.engine.platform import oci_architecture
    from synthorg_tasks.render.writer import write_compose_files
    from synthorg_tasks.state.config import save_config
    from synthorg_tasks.verify.pipeline import (
        TrustSettings,
        apply_outcome,
        default_registry_factory,
        verify_images_with_cache,
    )

    engine = session.api.engine
    platform = f"{engine.os or 'linux'}/{oci_architecture(engine.arch)}"
    trust = TrustSettings.from_config(config, request.trusted_root)

    def progress(service: str, event: str) -> None:
        out.info(
            f"verify {service}: {event} ok"
            if event != "cached"
            else f"verify {service}: (cached)"
        )

    arguments: dict[str, Any] = {
        "target_tag": config.image_tag,
        "platform": platform,
        "trust": trust,
        "registry_factory": default_registry_factory(trust.http_timeout),
        "deadline": config.tunable_seconds("image_verify_timeout"),
        "progress": progress,
        **(pipeline_options or {}),
    }
    outcome = verify_images_with_cache(config, pins, **arguments)
    verified = apply_outcome(config, outcome)
    files = None
    if outcome.groups.get("synthorg") == "verified":
        # Pin compose.yml to the digests just verified, before anything pulls.
        files = write_compose_files(verified, pins, lock)
    if outcome.changed:
        try:
            save_config(verified, lock)
        except SynthorgError as exc:
            out.warn(f"the verified digests could not be saved: {exc.message}")
    return verified, files, dict(outcome.groups)


def _require_local(session: EngineSession, images: Mapping[str, str]) -> None:
    missing = [
        f"{service} ({reference})"
        for service, reference in images.items()
        if not session.api.image_present(reference)
    ]
    if missing:
        raise ConfigError(
            "--no-pull needs every image locally, but these are missing: "
            + ", ".join(missing),
            hints=["pull them (run start without --no-pull) or load them first"],
        )


def _pull(
    session: EngineSession, config: Config, services: list[str], out: Output
) -> None:
    from synthorg_tasks.engine.pull import pull_services

    attempts = int(config.tunable("image_pull_attempts"))
    delay = config.tunable_seconds("image_pull_retry_delay")
    pull_services(
        session.compose,
        config.project_name,
        config.data_dir,
        services,
        attempts=attempts,
        retry_delay=delay,
        report=out.info,
    )


# -- step 5 -------------------------------------------------------------------


def _terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _up_arguments(session: EngineSession, detach: bool) -> list[str]:
    arguments = ["-d"] if detach else []
    if session.compose.is_v2:
        arguments += ["--pull", "never"]
    return arguments


def up_detached(session: EngineSession, config: Config, out: Output) -> Baseline:
    """Run ``compose up -d`` under the crash-loop monitor; return its baseline.

    The monitor polls the project's containers every 2 s and terminates
    Compose when a container crash-loops or ``data-init`` fails. ``update``
    restarts the stack through this function too.
    """
    baseline = crash_baseline(
        session.api.list_containers(config.project_name, inspect_all=True)
    )
    process = session.compose.popen(
        config.project_name, config.data_dir, "up", _up_arguments(session, True)
    )
    started = time.monotonic()
    next_note = started + SPINNER_INTERVAL_SECONDS
    try:
        while process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=MONITOR_INTERVAL_SECONDS)
            containers = session.api.list_containers(
                config.project_name, inspect_all=True
            )
            check_crash_loop(containers, baseline)
            if time.monotonic() >= next_note:
                elapsed = time.monotonic() - started
                note = "backend starting; a first run applies every migration"
                if config.uses_postgres:
                    note += " (the backend waits for PostgreSQL)"
                out.info(f"... {elapsed:.0f}s: {note}")
                next_note += SPINNER_INTERVAL_SECONDS
    except BaseException:
        _terminate(process)
        raise
    output = process.stdout.read() if process.stdout is not None else ""
    result = ComposeResult(process.returncode, output)
    if result.returncode == 0:
        return baseline
    failure = session.compose.failure("up", result)
    if any(marker in output for marker in _DEPENDENCY_FAILURES):
        _print_diagnostics(session, config, out)
        check_crash_loop(
            session.api.list_containers(config.project_name, inspect_all=True),
            baseline,
        )
        raise Unhealthy(failure.message, hints=["run 'synthorg doctor'"])
    raise failure


def _up_attached(session: EngineSession, config: Config) -> None:
    process = session.compose.popen(
        config.project_name,
        config.data_dir,
        "up",
        _up_arguments(session, False),
        capture=False,
    )
    try:
        code = process.wait()
    except KeyboardInterrupt:
        # Compose received the same SIGINT from the terminal and stops the
        # containers; wait for it so nothing is left half-stopped.
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        raise Interrupted("start interrupted; the containers were stopped") from None
    if code != 0:
        raise ComposeFailed(f"{session.compose.binary} up exited with code {code}")


# -- step 6 -------------------------------------------------------------------


def wait_ready(
    session: EngineSession,
    config: Config,
    budget: float,
    out: Output,
    environ: Mapping[str, str],
    baseline: Baseline | None,
) -> ReadinessResult:
    """Wait up to ``budget`` seconds for ``/readyz``, aborting on a crash loop."""
    host = probe_host(config.bind_address)
    prefix = api_prefix(environ)
    timeout = config.tunable_seconds("health_check_timeout", environ)

    def abort_check() -> None:
        check_crash_loop(
            session.api.list_containers(config.project_name, inspect_all=True),
            baseline,
        )

    def on_poll(result: ReadinessResult, elapsed: float) -> None:
        if not result.ready:
            out.info(f"... {elapsed:.0f}s: backend {result.describe()}")

    try:
        return wait_for_ready(
            lambda: probe_readiness(host, config.backend_port, timeout, prefix),
            budget=budget,
            initial_delay=config.tunable_seconds("health_initial_delay", environ),
            poll_interval=config.tunable_seconds("health_poll_interval", environ),
            abort_check=abort_check,
            on_poll=on_poll,
        )
    except SynthorgError:
        _print_diagnostics(session, config, out)
        raise


def _print_diagnostics(session: EngineSession, config: Config, out: Output) -> None:
    try:
        containers = session.api.list_containers(config.project_name, inspect_all=True)
    except SynthorgError as exc:
        out.warn(f"no container diagnostics: {exc.message}")
        return
    for line in container_diagnostics(containers):
        out.warn(line, unsuppressible=True)


# -- the verb -------------------------------------------------------------------


def run_start(
    request: StartRequest,
    data_dir: Path,
    out: Output,
    environ: Mapping[str, str] | None = None,
) -> StartResult:
    """Run every step of ``start`` and return its summary."""
    env = dict(os.environ if environ is None else environ)

    # Step 1: flags, config and the rendering that names the images.
    timeout = _check_flags(request, env)
    config = _load(data_dir)
    pins = load_pins()
    files = render_files(config, pins)
    images = files.params.images.by_service()
    budget = timeout or config.tunable_seconds("health_wait_timeout", env)
    mode, warnings = _verification_mode(request, list(files.params.overrides))
    if request.dry_run:
        for warning in warnings:
            out.warn(warning, unsuppressible=True)
        plan = _plan(config, files, request, budget, mode)
        return StartResult(False, _urls(config), images, {}, dry_run=True, plan=plan)

    # Step 2: engine and Compose before any write, then the lock.
    session = open_engine(config.tunable_seconds("status_docker_timeout", env), out)
    try:
        verification, baseline = _locked_steps(
            request, session, config, pins, files, mode, warnings, out
        )
        ready = False
        if not request.no_detach and not request.no_wait:
            ready = wait_ready(session, config, budget, out, env, baseline).ready
    finally:
        session.close()
    return StartResult(ready, _urls(config), images, verification)


def _locked_steps(
    request: StartRequest,
    session: EngineSession,
    config: Config,
    pins: Pins,
    files: RenderedFiles,
    mode: str,
    warnings: list[str],
    out: Output,
) -> tuple[dict[str, str], Baseline | None]:
    from synthorg_tasks.lifecycle.init import bind_address_warning

    images = files.params.images.by_service()
    lock_timeout = config.tunable_seconds("lock_timeout")
    with LifecycleLock(config.data_dir, lock_timeout) as lock:
        require_compose_file(config.data_dir)
        bind_warning = bind_address_warning(config.bind_address)
        if bind_warning:
            out.warn(bind_warning, unsuppressible=True)
        _sync_nats_conf(config, files, lock)

        # Step 3: verification, then pull (or prove the images are local).
        verification = {"synthorg": "skipped", "dhi": "skipped"}
        for warning in warnings:
            out.warn(warning, unsuppressible=True)
        if mode == "verify":
            config, pinned, verification = _verify(
                config, pins, request, session, lock, out
            )
            if pinned is not None:
                images = pinned.params.images.by_service()
        if request.no_pull:
            _require_local(session, images)
        else:
            _pull(session, config, list(images), out)

        # Step 4: host ports, skipping the ones this project already publishes.
        own = session.api.bound_ports(config.project_name)
        preflight_ports(config.bind_address, port_needs(config), own)

        # Step 5: compose up.
        out.info(f"starting project {config.project_name}")
        baseline: Baseline | None = None
        if request.no_detach:
            _up_attached(session, config)
        else:
            baseline = up_detached(session, config, out)
    return verification, baseline
