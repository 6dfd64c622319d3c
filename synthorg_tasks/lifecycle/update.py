"""``update``: move an install to a new image tag as one transaction.

Steps, in order:

1. validate the flags and load config.json strictly;
2. ``--check``: report whether an update is available (exit 10) and stop;
3. ``--dry-run``: print the plan and stop;
4. detect the engine and Compose, then take the lifecycle lock;
5. installation health: regenerate a missing compose.yml, note missing images;
6. compose refresh against the current config: header or image-only drift is
   applied silently, other drift is shown redacted and confirmed, and a
   declined refresh switches to preserve mode (only ``image:`` lines change);
7. stop early when the install is already at the target;
8. the transaction: snapshot compose.yml and nats.conf, verify the target,
   write the compose files, pull every image, and only then save config.json.
   Any failure or interrupt before that save restores the snapshot;
9. restart: ``compose down``, check that nothing of the project runs,
   ``compose up -d``, release the lock, wait for readiness (exit 3 on failure).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from synthorg_tasks import grammars
from synthorg_tasks.errors import (
    ConfigError,
    EngineError,
    NotInitialized,
    UsageError,
)
from synthorg_tasks.lifecycle.update_engine import ComposeStackEngine, StackEngine
from synthorg_tasks.logging import get_logger
from synthorg_tasks.output import Output, env_flag
from synthorg_tasks.prompts import confirm, stdin_is_tty
from synthorg_tasks.render.params import active_overrides, effective_overrides
from synthorg_tasks.render.writer import (
    COMPOSE_MODE,
    RenderedFiles,
    render_files,
    write_rendered,
)
from synthorg_tasks.state.atomic import atomic_write
from synthorg_tasks.state.config import Config, load_strict, save_config
from synthorg_tasks.state.lock import LifecycleLock
from synthorg_tasks.state.paths import COMPOSE_FILE, NATS_CONF_FILE
from synthorg_tasks.verify.pins import Pins, load_pins

__all__ = [
    "ComposeDrift",
    "UpdateCheck",
    "UpdateRequest",
    "UpdateResult",
    "Verifier",
    "VerifyOutcome",
    "check_update",
    "compose_drift",
    "dhi_group_current",
    "patch_image_lines",
    "redact_line",
    "resolve_target_tag",
    "run_update",
    "unverified_outcome",
]

_logger = get_logger("update")


@dataclass
class UpdateRequest:
    """The flags of one ``update`` call."""

    check: bool = False
    dry_run: bool = False
    image_tag: str | None = None
    no_restart: bool = False
    timeout: str | None = None
    verify_timeout: str | None = None
    skip_verify: bool = False
    trusted_root: str | None = None
    yes: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


# ---------------------------------------------------------------------------
# Step 1: flags and the target tag


def _validate_flags(req: UpdateRequest, config: Config) -> tuple[float, float]:
    """Return the readiness budget and the verification budget in seconds."""
    if req.check and req.dry_run:
        raise UsageError("--check and --dry-run cannot be combined")
    if req.image_tag is not None and not grammars.TAG_RE.fullmatch(req.image_tag):
        raise UsageError(
            f"--image-tag {req.image_tag!r} is invalid (an image tag: letters, "
            "digits, '.', '_' and '-', starting with a letter or digit, at most "
            "128 characters)",
            hints=["pass --image-tag such as 0.7.1"],
        )
    budget = _duration_flag("--timeout", req.timeout, 0.0)
    verify = _duration_flag("--verify-timeout", req.verify_timeout, 1.0)
    if budget is None:
        budget = config.tunable_seconds("health_wait_timeout", req.environ)
    if verify is None:
        verify = config.tunable_seconds("image_verify_timeout", req.environ)
    if req.trusted_root is not None and not Path(req.trusted_root).is_file():
        raise UsageError(f"--trusted-root {req.trusted_root!r} is not a file")
    return budget, verify


def _duration_flag(flag: str, text: str | None, minimum: float) -> float | None:
    if text is None:
        return None
    try:
        seconds = grammars.parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{flag} {text!r} is invalid ({exc})") from None
    if seconds < minimum:
        raise UsageError(f"{flag} {text!r} is invalid (at least {minimum:g}s)")
    return seconds


def resolve_target_tag(config: Config, pins: Pins, flag: str | None) -> str:
    """Return ``--image-tag``, else ``dev`` on the dev channel, else the pinned tag."""
    if flag is not None:
        return flag
    if config.channel == "dev":
        return "dev"
    return pins.synthorg.default_image_tag


# ---------------------------------------------------------------------------
# Step 2: is an update available?


def dhi_group_current(
    config: Config, pins: Pins, environ: Mapping[str, str] | None = None
) -> bool:
    """Return whether every enabled DHI image is cached at its pinned digest."""
    effective = effective_overrides(config, pins, environ)
    enabled = []
    if config.uses_postgres:
        enabled.append(("postgres", "postgres_image_tag"))
    if config.uses_nats:
        enabled.append(("nats", "nats_image_tag"))
    for name, tag_key in enabled:
        pin = pins.dhi.images[name]
        ref = f"{effective['dhi_registry']}/{pin.repository}:{effective[tag_key]}"
        if config.verified_digests.get(f"dhi:{ref}") != pin.index_digest:
            return False
    return True


@dataclass(frozen=True)
class ComposeDrift:
    """The difference between compose.yml on disk and its rendering.

    ``kind`` is ``none``, ``missing``, ``header`` (only the comment header
    differs), ``images`` (only image tags or digests of unchanged repositories)
    or ``other``.
    """

    kind: str
    files: RenderedFiles
    removed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    nats_conf_stale: bool = False


def _split_header(text: str) -> tuple[list[str], list[str]]:
    lines = text.splitlines()
    index = 0
    while index < len(lines) and lines[index].startswith("#"):
        index += 1
    return lines[:index], lines[index:]


_IMAGE_LINE_RE = re.compile(r'^(\s*)image:\s*"?([^"\s]+)"?\s*$')


def _image_shape(line: str) -> tuple[str, bool, bool] | None:
    match = _IMAGE_LINE_RE.match(line)
    if match is None:
        return None
    ref = grammars.IMAGE_REF_RE.fullmatch(match.group(2))
    if ref is None:
        return None
    repository = f"{ref.group('host') or ''}/{ref.group('path')}"
    return repository, ref.group("tag") is not None, ref.group("digest") is not None


def _only_image_drift(current: list[str], rendered: list[str]) -> bool:
    if len(current) != len(rendered):
        return False
    for old, new in zip(current, rendered, strict=True):
        if old == new:
            continue
        old_shape, new_shape = _image_shape(old), _image_shape(new)
        if old_shape is None or old_shape != new_shape:
            return False
    return True


def compose_drift(config: Config, pins: Pins) -> ComposeDrift:
    """Compare compose.yml and nats.conf with their rendering for ``config``.

    Overrides come from the process environment, as for every rendering.
    """
    files = render_files(config, pins)
    nats_path = config.data_dir / NATS_CONF_FILE
    nats_stale = False
    if files.nats_conf is not None:
        try:
            nats_stale = nats_path.read_text(encoding="utf-8") != files.nats_conf
        except OSError:
            nats_stale = True
    try:
        current = (config.data_dir / COMPOSE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ComposeDrift("missing", files, nats_conf_stale=nats_stale)
    if current == files.compose:
        return ComposeDrift("none", files, nats_conf_stale=nats_stale)
    _old_header, old_body = _split_header(current)
    _new_header, new_body = _split_header(files.compose)
    if old_body == new_body:
        return ComposeDrift("header", files, nats_conf_stale=nats_stale)
    kind = "images" if _only_image_drift(old_body, new_body) else "other"
    rendered_set, current_set = set(new_body), set(old_body)
    return ComposeDrift(
        kind,
        files,
        removed=tuple(line for line in old_body if line not in rendered_set),
        added=tuple(line for line in new_body if line not in current_set),
        nats_conf_stale=nats_stale,
    )


_SECRET_WORDS = (
    "SECRET",
    "PASSWORD",
    "TOKEN",
    "API_KEY",
    "CREDENTIALS",
    "ENCRYPTION_KEY",
    "SETTINGS_KEY",
    "PRIVATE_KEY",
    "CERT",
)
_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s\"']+@")
_KEY_RE = re.compile(r"^(\s*-?\s*)([^:\s][^:]*?)(\s*[:=]\s*)(.*)$")


def redact_line(line: str) -> str:
    """Return a compose line safe to print: secret values and URL user-info hidden."""
    match = _KEY_RE.match(line)
    if match is not None and any(w in match.group(2).upper() for w in _SECRET_WORDS):
        return f"{match.group(1)}{match.group(2)}{match.group(3)}[REDACTED]"
    return _USERINFO_RE.sub(r"\1[REDACTED]@", line)


@dataclass(frozen=True)
class UpdateCheck:
    """Whether an update is available, and why."""

    current_tag: str
    target_tag: str
    reasons: tuple[str, ...]

    @property
    def update_available(self) -> bool:
        """Whether any reason applies."""
        return bool(self.reasons)

    def document(self) -> dict[str, object]:
        """Return the ``--check --json`` document."""
        return {
            "update_available": self.update_available,
            "current_tag": self.current_tag,
            "target_tag": self.target_tag,
            "reasons": list(self.reasons),
        }


def check_update(
    config: Config,
    pins: Pins,
    target: str,
    environ: Mapping[str, str] | None = None,
) -> UpdateCheck:
    """Compute the reasons for an update, as ``--check`` reports them."""
    reasons = []
    if config.image_tag != target:
        reasons.append(f"image tag {config.image_tag} differs from {target}")
    if not active_overrides(config, pins, environ) and not dhi_group_current(
        config, pins, environ
    ):
        reasons.append("the DHI images are not verified against the current pins")
    drift = compose_drift(config, pins)
    if drift.kind == "missing":
        reasons.append("compose.yml is missing")
    elif drift.kind in ("images", "other"):
        reasons.append("compose.yml differs from its rendering")
    return UpdateCheck(config.image_tag, target, tuple(reasons))


# ---------------------------------------------------------------------------
# Verification (the one pipeline start and verify use)


@dataclass(frozen=True)
class VerifyOutcome:
    """The cache to store after verifying the target tag.

    ``digests`` is the merged ``verified_digests``. ``synthorg_verified`` is
    true when the SynthOrg group was verified for the target, so
    ``verified_image_tag`` may be stamped with it.
    """

    digests: dict[str, str]
    synthorg_verified: bool
    mode: str


# (config, pins, target tag, budget in seconds, trusted root, platform)
Verifier = Callable[[Config, Pins, str, float, "str | None", str], VerifyOutcome]


def unverified_outcome(config: Config, target: str, mode: str) -> VerifyOutcome:
    """Return the cache after an update without verification.

    SynthOrg digests verified for another tag no longer describe the images,
    so the bare-name entries are dropped unless they were verified for
    ``target``; DHI entries are kept because they follow the pins.
    """
    if config.verified_image_tag == target:
        return VerifyOutcome(dict(config.verified_digests), False, mode)
    kept = {k: v for k, v in config.verified_digests.items() if k.startswith("dhi:")}
    return VerifyOutcome(kept, False, mode)


def default_verifier(skip: bool, environ: Mapping[str, str]) -> Verifier:
    """Return the verifier ``update`` uses outside tests: the shared pipeline.

    ``skip`` (``--skip-verify``) and active registry or tag overrides turn
    verification off with an unsuppressible warning; the pulled images are
    then unverified.
    """

    def verify(
        config: Config,
        pins: Pins,
        target: str,
        budget: float,
        trusted_root: str | None,
        platform: str,
    ) -> VerifyOutcome:
        from synthorg_tasks.verify import pipeline

        overrides = active_overrides(config, pins, environ)
        if skip:
            pipeline.skip_verification_warning()
            return unverified_outcome(config, target, "skipped")
        if overrides:
            pipeline.override_warning(overrides)
            return unverified_outcome(config, target, "off")
        trust = pipeline.TrustSettings.from_config(config, trusted_root, environ)
        outcome = pipeline.verify_images_with_cache(
            config,
            pins,
            target_tag=target,
            platform=platform,
            trust=trust,
            registry_factory=pipeline.default_registry_factory(trust.http_timeout),
            deadline=budget,
        )
        groups = set(outcome.groups.values())
        mode = "verified" if "verified" in groups else "cached"
        return VerifyOutcome(
            dict(outcome.verified_digests),
            outcome.verified_image_tag == target,
            mode,
        )

    return verify


# ---------------------------------------------------------------------------
# Step 8: the transaction


@dataclass(frozen=True)
class _Saved:
    data: bytes
    mode: int


def _snapshot(data_dir: Path) -> dict[str, _Saved | None]:
    saved: dict[str, _Saved | None] = {}
    for name in (COMPOSE_FILE, NATS_CONF_FILE):
        path = data_dir / name
        try:
            saved[name] = _Saved(path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
        except FileNotFoundError:
            saved[name] = None
    return saved


def _restore(data_dir: Path, snapshot: Mapping[str, _Saved | None]) -> None:
    # nats.conf first: the restored compose.yml may bind-mount it.
    for name in (NATS_CONF_FILE, COMPOSE_FILE):
        saved = snapshot[name]
        path = data_dir / name
        try:
            if saved is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            else:
                atomic_write(path, saved.data, mode=saved.mode)
        except (OSError, ConfigError) as exc:
            _logger.error("restoring %s failed: %s", path, exc)
    _logger.info("restored compose.yml and nats.conf after a failed update")


def patch_image_lines(text: str, images: Mapping[str, str]) -> str:
    """Return compose text with each service's ``image:`` line set to ``images``.

    Raises :class:`ConfigError` when a service in ``images`` has no image line,
    so preserve mode never writes a half-patched file.
    """
    service_re = re.compile(r"^  ([A-Za-z0-9_.-]+):\s*$")
    lines = text.splitlines(keepends=True)
    in_services = False
    service: str | None = None
    patched: set[str] = set()
    for index, line in enumerate(lines):
        if line.rstrip("\n") == "services:":
            in_services = True
            continue
        if in_services and line[:1] not in (" ", "\n", "#", ""):
            in_services = False
        if not in_services:
            continue
        found = service_re.match(line.rstrip("\n"))
        if found is not None:
            service = found.group(1)
            continue
        match = _IMAGE_LINE_RE.match(line.rstrip("\n"))
        if (
            match is not None
            and service is not None
            and service in images
            and service not in patched
        ):
            ref = images[service]
            lines[index] = f'{match.group(1)}image: "{ref}"\n'
            patched.add(service)
    missing = sorted(set(images) - patched)
    if missing:
        raise ConfigError(
            f"compose.yml has no image line for {', '.join(missing)}; nothing was "
            "changed",
            hints=["regenerate it: accept the compose refresh, or run 'synthorg init'"],
        )
    return "".join(lines)


def _write_target_files(
    new: Config, pins: Pins, lock: LifecycleLock, preserve: bool
) -> RenderedFiles:
    files = render_files(new, pins)
    if not preserve:
        write_rendered(new.data_dir, files, lock)
        return files
    path = new.data_dir / COMPOSE_FILE
    patched = patch_image_lines(
        path.read_text(encoding="utf-8"), files.params.images.by_service()
    )
    atomic_write(path, patched.encode("utf-8"), mode=COMPOSE_MODE)
    return files


def _transaction(
    config: Config,
    target: str,
    lock: LifecycleLock,
    pins: Pins,
    engine: StackEngine,
    verify: Callable[[], VerifyOutcome],
    preserve: bool,
) -> tuple[Config, VerifyOutcome]:
    snapshot = _snapshot(config.data_dir)
    try:
        outcome = verify()
        stamped = target if outcome.synthorg_verified else None
        if not outcome.synthorg_verified and config.verified_image_tag == target:
            stamped = target
        new = config.replace(
            image_tag=target,
            verified_digests=outcome.digests,
            verified_image_tag=stamped,
        )
        files = _write_target_files(new, pins, lock, preserve)
        engine.pull(new, list(files.params.images.by_service()))
        save_config(new, lock)
    except BaseException:
        _restore(config.data_dir, snapshot)
        raise
    return new, outcome


# ---------------------------------------------------------------------------
# The whole command


@dataclass
class UpdateResult:
    """Outcome of one ``update`` run."""

    current_tag: str
    target_tag: str
    check: UpdateCheck | None = None
    plan: list[tuple[str, str]] = field(default_factory=list)
    updated: bool = False
    compose_refreshed: bool = False
    restarted: bool = False
    ready: bool | None = None
    verification: str = "none"
    messages: list[str] = field(default_factory=list)


EngineFactory = Callable[[float, Mapping[str, str]], StackEngine]


def _dry_run_plan(
    req: UpdateRequest, config: Config, pins: Pins, target: str
) -> list[tuple[str, str]]:
    drift = compose_drift(config, pins)
    refresh = "no (already current)" if drift.kind == "none" else "yes"
    image = "no (already current)" if target == config.image_tag else "yes"
    if req.no_restart:
        restart = "no (excluded by flags)"
    elif image.startswith("no") and refresh.startswith("no"):
        restart = "no (already current)"
    else:
        restart = "yes, when the stack is running"
    return [
        ("current tag", config.image_tag),
        ("target tag", target),
        ("compose refresh", refresh),
        ("image update", image),
        ("restart", restart),
    ]


def _refresh_compose(
    req: UpdateRequest,
    config: Config,
    pins: Pins,
    lock: LifecycleLock,
    out: Output,
) -> tuple[bool, bool]:
    """Run step 6; return (compose changed, preserve mode)."""
    drift = compose_drift(config, pins)
    auto = req.yes or config.auto_apply_compose
    if drift.kind == "missing":
        if not confirm(
            f"{config.data_dir / COMPOSE_FILE} is missing. Regenerate it?",
            action="regenerate compose.yml",
            yes=auto,
            default=True,
        ):
            raise ConfigError(
                f"compose.yml not found in {config.data_dir}; run 'synthorg init'"
            )
        write_rendered(config.data_dir, drift.files, lock)
        return True, False
    if drift.kind == "none":
        if drift.nats_conf_stale:
            write_rendered(config.data_dir, drift.files, lock)
        return False, False
    if drift.kind in ("header", "images"):
        write_rendered(config.data_dir, drift.files, lock)
        _logger.info("compose.yml refreshed (%s drift)", drift.kind)
        return True, False
    diff = [f"- {redact_line(line)}" for line in drift.removed]
    diff += [f"+ {redact_line(line)}" for line in drift.added]
    out.info("compose.yml differs from its rendering:\n" + "\n".join(diff))
    if confirm(
        "Replace compose.yml with the rendering?",
        action="replace compose.yml",
        yes=auto,
        default=True,
    ):
        write_rendered(config.data_dir, drift.files, lock)
        return True, False
    out.info("keeping compose.yml; only its image lines will be updated")
    return False, True


def _restart(
    req: UpdateRequest,
    config: Config,
    engine: StackEngine,
    out: Output,
    result: UpdateResult,
) -> bool:
    """Run the restart decision and ``down``/``up``; return whether it restarted."""
    running = engine.running_services(config.project_name)
    if req.no_restart or not running:
        result.messages.append("run 'synthorg start' to run the new images")
        return False
    auto = (
        req.yes or config.auto_restart or env_flag("SYNTHORG_AUTO_RESTART", req.environ)
    )
    if not auto and not stdin_is_tty():
        result.messages.append(
            "not restarted without a terminal; run 'synthorg start' or pass --yes"
        )
        return False
    if not confirm("Restart the stack now?", action="restart", yes=auto, default=True):
        result.messages.append("run 'synthorg start' to run the new images")
        return False
    engine.down(config)
    still = engine.running_services(config.project_name)
    if still:
        raise EngineError(
            f"containers of project {config.project_name} still run after compose "
            f"down ({', '.join(still)}); nothing was started",
            hints=["stop them with 'synthorg stop', then run 'synthorg start'"],
        )
    engine.up(config)
    return True


def run_update(
    req: UpdateRequest,
    data_dir: Path,
    out: Output,
    *,
    pins: Pins | None = None,
    engine_factory: EngineFactory | None = None,
    verifier: Verifier | None = None,
    lock_timeout: float | None = None,
) -> UpdateResult:
    """Run ``update`` for ``data_dir``; raise a :class:`SynthorgError` on failure."""
    pins = pins or load_pins()

    # Step 1: flags, then a strict load.
    try:
        config = load_strict(data_dir)
    except NotInitialized as exc:
        raise NotInitialized(
            f"not initialized: {exc.message}", hints=exc.hints
        ) from exc
    budget, verify_budget = _validate_flags(req, config)
    target = resolve_target_tag(config, pins, req.image_tag)
    result = UpdateResult(config.image_tag, target)

    # Steps 2 and 3 only compute; they touch neither files nor the engine.
    if req.check:
        result.check = check_update(config, pins, target, req.environ)
        return result
    if req.dry_run:
        result.plan = _dry_run_plan(req, config, pins, target)
        return result

    # Step 4: an unreachable engine or an old Compose fails before any change.
    if engine_factory is None:

        def engine_factory(timeout: float, environ: Mapping[str, str]) -> StackEngine:
            return ComposeStackEngine.detect(timeout, environ, out)

    engine = engine_factory(
        config.tunable_seconds("status_docker_timeout", req.environ), req.environ
    )
    skip = req.skip_verify or env_flag("SYNTHORG_SKIP_VERIFY", req.environ)
    verify = verifier or default_verifier(skip, req.environ)
    timeout = lock_timeout or config.tunable_seconds("lock_timeout", req.environ)
    lock = LifecycleLock(data_dir, timeout=timeout)
    lock.acquire()
    try:
        restarted = _locked_steps(
            req,
            load_strict(data_dir),
            pins,
            lock,
            engine,
            out,
            result,
            target,
            lambda c: verify(
                c, pins, target, verify_budget, req.trusted_root, engine.platform()
            ),
        )
    except BaseException:
        lock.release()
        _close(engine)
        raise
    lock.release()

    # Step 9, last part: readiness is awaited without the lock.
    try:
        if restarted:
            engine.wait_ready(load_strict(data_dir), budget)
            result.ready = True
    finally:
        _close(engine)
    return result


def _close(engine: StackEngine) -> None:
    close = getattr(engine, "close", None)
    if close is not None:
        close()


def _locked_steps(
    req: UpdateRequest,
    config: Config,
    pins: Pins,
    lock: LifecycleLock,
    engine: StackEngine,
    out: Output,
    result: UpdateResult,
    target: str,
    verify: Callable[[Config], VerifyOutcome],
) -> bool:
    # Step 5 and 6: a missing compose.yml, drift, missing images.
    changed, preserve = _refresh_compose(req, config, pins, lock, out)
    result.compose_refreshed = changed
    current_refs = list(render_files(config, pins).params.images.by_service().values())
    missing = engine.missing_images(current_refs)

    # Step 7: nothing to pull when the target is current and present.
    verification_on = not (
        req.skip_verify
        or env_flag("SYNTHORG_SKIP_VERIFY", req.environ)
        or active_overrides(config, pins, req.environ)
    )
    from synthorg_tasks.render.params import synthorg_group_current

    groups_current = synthorg_group_current(config, pins, target) and (
        dhi_group_current(config, pins, req.environ)
    )
    if (
        target == config.image_tag
        and not missing
        and (groups_current or not verification_on)
    ):
        result.messages.append(f"already at {target}")
        if not changed:
            return False
        new = config
    else:
        # Step 8: confirm, then the transaction.
        auto = (
            req.yes or config.auto_pull or env_flag("SYNTHORG_AUTO_PULL", req.environ)
        )
        if not confirm(
            f"Update from {config.image_tag} to {target} and pull the images?",
            action="pull images",
            yes=auto,
            default=True,
        ):
            raise UsageError("update cancelled; nothing was changed")
        new, outcome = _transaction(
            config, target, lock, pins, engine, lambda: verify(config), preserve
        )
        result.updated = True
        result.verification = outcome.mode

    # Step 9: down, check, up; the readiness wait runs after the lock.
    result.restarted = _restart(req, new, engine, out, result)
    return result.restarted
