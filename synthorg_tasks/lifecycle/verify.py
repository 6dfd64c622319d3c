"""The ``verify`` command: verify the configured images and store the cache.

Steps: strict load, then reject the run when a registry or tag override is
active, then take the platform from the engine (or the host) and call
:func:`verify_images_with_cache`. Unless ``--no-save`` is given, the cache is
saved under the lifecycle lock and an existing ``compose.yml`` is re-rendered
so that it pins the verified digests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthorg_tasks import grammars
from synthorg_tasks.errors import UsageError, VerificationError
from synthorg_tasks.logging import get_logger
from synthorg_tasks.verify.pipeline import (
    ProgressCallback,
    TrustSettings,
    VerificationOutcome,
    apply_outcome,
    default_registry_factory,
    verify_images_with_cache,
)

if TYPE_CHECKING:
    from synthorg_tasks.state.config import Config
    from synthorg_tasks.verify.attestations import AttestationsClient
    from synthorg_tasks.verify.pins import Pins
    from synthorg_tasks.verify.registry import RegistryClient
    from synthorg_tasks.verify.rekor import RekorClient

__all__ = [
    "VerifyReport",
    "VerifyRequest",
    "resolve_platform",
    "run_verify",
    "verify_document",
    "verify_timeout_seconds",
]

_logger = get_logger("verify")

MIN_VERIFY_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class VerifyRequest:
    """The flags of one ``verify`` run, as given."""

    image_tag: str | None = None
    force: bool = False
    no_save: bool = False
    trusted_root: str | None = None
    verify_timeout: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    """The result of one ``verify`` run: the outcome and whether it was saved."""

    outcome: VerificationOutcome
    target_tag: str
    platform: str
    saved: bool


def verify_document(report: VerifyReport) -> dict[str, Any]:
    """Return the ``--json`` document of a ``verify`` run."""
    return {
        "images": [
            {
                "service": image.service,
                "ref": image.ref,
                "digest": image.digest,
                "checks": list(image.checks),
                "cached": image.cached,
            }
            for image in report.outcome.images
        ],
        "saved": report.saved,
    }


def verify_timeout_seconds(config: Config, flag: str | None) -> float:
    """Return the whole-call budget: ``--verify-timeout``, else the tunable."""
    if flag is None:
        seconds = config.tunable_seconds("image_verify_timeout")
    else:
        try:
            seconds = grammars.parse_duration(flag)
        except ValueError as exc:
            raise UsageError(f"--verify-timeout: {flag!r} is invalid ({exc})") from None
    if seconds < MIN_VERIFY_TIMEOUT_SECONDS:
        raise UsageError(
            f"--verify-timeout: {flag or seconds!r} is invalid (at least 1s, because "
            "a shorter deadline makes verification a silent timeout)"
        )
    return seconds


def resolve_platform(engine_lookup: Callable[[], str | None] | None = None) -> str:
    """Return the engine's platform, else the host's with a DEBUG note."""
    from synthorg_tasks.engine.platform import engine_platform, host_image_platform

    found = (engine_lookup or engine_platform)()
    if found is not None:
        return found
    host = host_image_platform()
    _logger.debug("Docker engine unreachable; verifying for the host platform %s", host)
    return host


def run_verify(
    data_dir: Path,
    request: VerifyRequest,
    *,
    pins: Pins | None = None,
    registry_factory: Callable[[str], RegistryClient] | None = None,
    attestations_client: AttestationsClient | None = None,
    rekor_client: RekorClient | None = None,
    platform: str | None = None,
    progress: ProgressCallback | None = None,
    environ: Mapping[str, str] | None = None,
) -> VerifyReport:
    """Verify the images of the install in ``data_dir``; save unless ``no_save``.

    ``pins``, ``registry_factory``, the API clients and ``platform`` are
    injected by tests; by default the packaged pins and real clients are used.
    """
    from synthorg_tasks.grammars import TAG_RE
    from synthorg_tasks.render.params import active_overrides
    from synthorg_tasks.state.config import load_strict
    from synthorg_tasks.verify.pins import load_pins

    pins = pins or load_pins()
    config = load_strict(data_dir, default_tag=pins.synthorg.default_image_tag)
    target_tag = request.image_tag or config.image_tag
    if not TAG_RE.fullmatch(target_tag):
        raise UsageError(f"--image-tag: {target_tag!r} is invalid (an image tag)")

    overrides = active_overrides(config, pins, environ)
    if overrides:
        raise VerificationError(
            f"verification is disabled because {', '.join(overrides)} override the "
            "pinned registry or tags",
            hints=["unset the overrides with 'synthorg config unset <key>'"],
        )

    deadline = verify_timeout_seconds(config, request.verify_timeout)
    trust = TrustSettings.from_config(config, request.trusted_root, environ)
    platform = platform or resolve_platform()
    outcome = verify_images_with_cache(
        config,
        pins,
        target_tag=target_tag,
        platform=platform,
        trust=trust,
        registry_factory=registry_factory
        or default_registry_factory(trust.http_timeout),
        force=request.force,
        deadline=deadline,
        rekor_client=rekor_client,
        attestations_client=attestations_client,
        progress=progress,
    )

    saved = False
    if request.no_save:
        _logger.debug("--no-save: the verified digests are not stored")
    elif target_tag != config.image_tag:
        _logger.info(
            "verified tag %s differs from the configured %s; cache not saved",
            target_tag,
            config.image_tag,
        )
    else:
        saved = _save(data_dir, pins, outcome, target_tag)
    return VerifyReport(outcome, target_tag, platform, saved)


def _save(
    data_dir: Path, pins: Pins, outcome: VerificationOutcome, target_tag: str
) -> bool:
    """Store the outcome under the lock and re-render an existing compose.yml.

    The config is reloaded under the lock, so a concurrent ``config set`` of
    another key is kept. When the image tag changed meanwhile, the digests no
    longer describe the configuration and nothing is saved.
    """
    from synthorg_tasks.render.writer import write_compose_files
    from synthorg_tasks.state.config import load_strict, save_config
    from synthorg_tasks.state.lock import LifecycleLock
    from synthorg_tasks.state.paths import COMPOSE_FILE

    config = load_strict(data_dir, default_tag=pins.synthorg.default_image_tag)
    lock_timeout = config.tunable_seconds("lock_timeout")
    with LifecycleLock(data_dir, timeout=lock_timeout) as lock:
        current = load_strict(data_dir, default_tag=pins.synthorg.default_image_tag)
        if current.image_tag != target_tag:
            _logger.warning(
                "image_tag changed to %s during verification; cache not saved",
                current.image_tag,
            )
            return False
        updated: Any = apply_outcome(current, outcome)
        if updated != current:
            save_config(updated, lock)
        if (data_dir / COMPOSE_FILE).exists():
            write_compose_files(updated, pins, lock)
    return True
