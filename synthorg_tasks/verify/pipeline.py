"""The one entry point of image verification, shared by start, update and verify.

:func:`verify_images_with_cache` decides which cache groups are stale,
verifies only those (one image per worker thread), and returns the new
``verified_digests`` map without writing anything: each caller saves it at the
point its own transaction allows. A current group makes no network request.

The module also contains the two unsuppressible warnings of verification being
off: :func:`skip_verification_warning` and :func:`override_warning`.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from synthorg_tasks.errors import TransportError, VerificationError
from synthorg_tasks.logging import get_logger
from synthorg_tasks.verify import cache

if TYPE_CHECKING:
    from synthorg_tasks.state.config import Config
    from synthorg_tasks.verify.attestations import AttestationsClient
    from synthorg_tasks.verify.pins import Pins
    from synthorg_tasks.verify.registry import RegistryClient

__all__ = [
    "SKIP_VERIFY_WARNING",
    "TRUSTED_ROOT_ENV",
    "ImageOutcome",
    "ProgressCallback",
    "TrustSettings",
    "VerificationOutcome",
    "apply_outcome",
    "default_registry_factory",
    "override_warning",
    "skip_verification_warning",
    "verify_images_with_cache",
]

_logger = get_logger("verify")

SKIP_VERIFY_WARNING = (
    "WARNING: --skip-verify is set; images will be pulled WITHOUT signature or "
    "provenance checks"
)
TRUSTED_ROOT_ENV = "SYNTHORG_SIGSTORE_TRUSTED_ROOT"
SYNTHORG_GROUP = "synthorg"
DHI_GROUP = "dhi"
SYNTHORG_CHECKS = ("sig", "slsa")
DHI_CHECKS = ("sig", "slsa", "rekor")

# ``progress(service, event)``: event is "cached" for a cache hit, else the
# name of a check as it passes ("sig", "slsa", "rekor").
ProgressCallback = Callable[[str, str], None]


# Builds a registry client for one registry host, such as ``ghcr.io``.
RegistryFactory = Callable[[str], "RegistryClient"]


@dataclass(frozen=True)
class TrustSettings:
    """Trust inputs and per-request budgets of one verification call.

    ``trusted_root_path`` replaces the public-good Sigstore root (and prints a
    warning naming it). Times are in seconds: ``tuf_fetch_timeout`` bounds the
    TUF refresh, ``http_timeout`` each HTTP request and ``dhi_timeout`` the
    whole DHI group.
    """

    trusted_root_path: Path | None = None
    tuf_fetch_timeout: float = 30.0
    http_timeout: float = 30.0
    dhi_timeout: float = 120.0

    @classmethod
    def from_config(
        cls,
        config: Config,
        trusted_root: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> TrustSettings:
        """Return the settings from ``--trusted-root`` (or its env twin) and tunables.

        Each timeout is resolved by ``Config.tunable_seconds``: env twin, then
        config.json, then the default.
        """
        env = os.environ if environ is None else environ
        path_text = trusted_root or env.get(TRUSTED_ROOT_ENV, "").strip() or None
        return cls(
            trusted_root_path=Path(path_text).expanduser() if path_text else None,
            tuf_fetch_timeout=config.tunable_seconds("tuf_fetch_timeout", environ),
            http_timeout=config.tunable_seconds("attestation_http_timeout", environ),
            dhi_timeout=config.tunable_seconds("dhi_verify_timeout", environ),
        )


def default_registry_factory(timeout: float) -> RegistryFactory:
    """Return a factory of real registry clients with ``timeout`` per request."""

    def build(host: str) -> RegistryClient:
        from synthorg_tasks.verify.registry import RegistryClient

        return RegistryClient(host, timeout=timeout)

    return build


@dataclass(frozen=True)
class ImageOutcome:
    """One image of the verification result."""

    service: str
    group: str
    ref: str
    digest: str
    checks: tuple[str, ...]
    cached: bool


@dataclass(frozen=True)
class VerificationOutcome:
    """The result of one call: the new cache content and per-group state.

    ``groups`` maps ``synthorg`` and ``dhi`` to ``verified`` or ``cached``.
    Nothing is saved. ``changed`` is true when the cache content differs from
    the config's.
    """

    verified_digests: dict[str, str]
    verified_image_tag: str | None
    groups: dict[str, str]
    images: tuple[ImageOutcome, ...] = field(default_factory=tuple)
    changed: bool = False


def skip_verification_warning() -> None:
    """Print the skipped-verification warning on stderr, whatever the output mode."""
    print(SKIP_VERIFY_WARNING, file=sys.stderr, flush=True)


def override_warning(keys: Sequence[str]) -> None:
    """Print the warning that registry or tag overrides turn verification off."""
    print(
        f"WARNING: {', '.join(keys)} override the pinned registry or tags; "
        "image verification is OFF",
        file=sys.stderr,
        flush=True,
    )


ConfigT = TypeVar("ConfigT")


def apply_outcome(config: ConfigT, outcome: VerificationOutcome) -> ConfigT:
    """Return ``config`` (a dataclass) carrying the outcome's cache fields."""
    changes: dict[str, Any] = {
        "verified_digests": dict(outcome.verified_digests),
        "verified_image_tag": outcome.verified_image_tag,
    }
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


# -- concurrency -------------------------------------------------------------------


class _Jobs:
    """Runs one daemon thread per job and collects results within deadlines.

    Daemon threads are used instead of an executor because a timed-out job is
    abandoned: it must not keep the interpreter from exiting. Each HTTP
    request inside a job has its own timeout, so abandoned jobs end soon.
    """

    def __init__(self) -> None:
        self._done: queue.Queue[tuple[str, Any, BaseException | None]] = queue.Queue()
        self._deadlines: dict[str, tuple[float, str]] = {}

    def start(
        self, key: str, job: Callable[[], Any], deadline: float, label: str
    ) -> None:
        def run() -> None:
            try:
                self._done.put((key, job(), None))
            except BaseException as exc:
                self._done.put((key, None, exc))

        self._deadlines[key] = (deadline, label)
        threading.Thread(target=run, name=f"verify-{key}", daemon=True).start()

    def collect(self) -> dict[str, Any]:
        """Return every result, or raise the first failure or missed deadline."""
        results: dict[str, Any] = {}
        while len(results) < len(self._deadlines):
            pending = {k: v for k, v in self._deadlines.items() if k not in results}
            key, (deadline, label) = min(pending.items(), key=lambda kv: kv[1][0])
            remaining = deadline - time.monotonic()
            try:
                done_key, value, error = self._done.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise TransportError(
                    f"verifying {key} did not finish within {label}",
                    hints=[
                        "raise the timeout when the registry is slow "
                        "(image_verify_timeout, dhi_verify_timeout)"
                    ],
                ) from None
            if error is not None:
                raise error
            results[done_key] = value
        return results


# -- the entry point ---------------------------------------------------------------


def verify_images_with_cache(
    config: cache.VerifyConfig,
    pins: Pins,
    *,
    target_tag: str,
    platform: str,
    trust: TrustSettings,
    registry_factory: RegistryFactory,
    force: bool = False,
    deadline: float,
    rekor_client: Any | None = None,
    attestations_client: AttestationsClient | None = None,
    progress: ProgressCallback | None = None,
) -> VerificationOutcome:
    """Verify the stale cache groups of ``config`` and return the new cache.

    ``target_tag`` is the SynthOrg tag to verify (the configured ``image_tag``,
    or the update target). ``platform`` is ``os/arch[/variant]`` for DHI
    platform selection. ``deadline`` is the budget of the whole call in
    seconds; the DHI group also gets ``trust.dhi_timeout``. ``force`` treats
    both groups as stale. Any failure raises before anything is returned, so
    a caller never sees a partial cache. Registry or tag overrides must be
    checked by the caller first (``render.params.active_overrides``): this
    function verifies the pinned registries only.
    """
    started = time.monotonic()
    call_deadline = started + deadline
    digests = dict(config.verified_digests)
    names = cache.synthorg_images(pins)
    dhi = cache.dhi_images(config, pins)

    # Decide which groups need work; a current group is not contacted at all.
    synthorg_stale = force or not cache.synthorg_group_current(
        digests, config.verified_image_tag, target_tag, names
    )
    dhi_stale = bool(dhi) and (force or not cache.dhi_group_current(digests, dhi))

    # DHI jobs start first because step 0 of the SynthOrg group (the trust
    # root, possibly a TUF refresh) runs on this thread.
    jobs = _Jobs()
    if dhi_stale:
        dhi_deadline = min(call_deadline, time.monotonic() + trust.dhi_timeout)
        budget = f"{min(deadline, trust.dhi_timeout):g}s"
        for image in dhi:
            jobs.start(
                image.service,
                _dhi_job(image, pins, platform, registry_factory, rekor_client),
                dhi_deadline,
                budget,
            )
    if synthorg_stale:
        _start_synthorg(
            jobs,
            pins,
            names,
            target_tag,
            trust=trust,
            registry_factory=registry_factory,
            attestations_client=attestations_client,
            progress=progress,
            deadline=call_deadline,
            budget=f"{deadline:g}s",
        )
    results = jobs.collect()

    images: list[ImageOutcome] = []
    groups = {SYNTHORG_GROUP: "cached", DHI_GROUP: "cached"}
    verified_tag = config.verified_image_tag
    if synthorg_stale:
        entries = {name: results[name].digest for name in names}
        digests = cache.replace_synthorg_group(digests, entries)
        verified_tag = target_tag
        groups[SYNTHORG_GROUP] = "verified"
    if dhi_stale:
        dhi_new: dict[str, str] = {}
        for image in dhi:
            dhi_new.update(_dhi_cache_entries(image, results[image.service]))
            _report(progress, image.service, DHI_CHECKS)
        digests = cache.replace_dhi_group(digests, dhi_new)
        groups[DHI_GROUP] = "verified"

    for name in names:
        _, ref = _synthorg_ref(pins, name, target_tag)
        if not synthorg_stale:
            _report(progress, name, ("cached",))
        images.append(
            ImageOutcome(
                service=name,
                group=SYNTHORG_GROUP,
                ref=ref,
                digest=digests[name],
                checks=SYNTHORG_CHECKS,
                cached=not synthorg_stale,
            )
        )
    for image in dhi:
        if not dhi_stale:
            _report(progress, image.service, ("cached",))
        images.append(
            ImageOutcome(
                service=image.service,
                group=DHI_GROUP,
                ref=image.ref,
                digest=digests[cache.dhi_key(image.ref)],
                checks=DHI_CHECKS,
                cached=not dhi_stale,
            )
        )
    _logger.debug(
        "verification finished in %.1f ms: synthorg %s, dhi %s",
        (time.monotonic() - started) * 1000,
        groups[SYNTHORG_GROUP],
        groups[DHI_GROUP],
    )
    changed = (
        digests != dict(config.verified_digests)
        or verified_tag != config.verified_image_tag
    )
    return VerificationOutcome(
        verified_digests=digests,
        verified_image_tag=verified_tag,
        groups=groups,
        images=tuple(images),
        changed=changed,
    )


def _report(
    progress: ProgressCallback | None, service: str, events: Sequence[str]
) -> None:
    if progress is None:
        return
    for event in events:
        progress(service, event)


def _synthorg_ref(pins: Pins, name: str, tag: str) -> tuple[str, str]:
    from synthorg_tasks.verify.keyless import synthorg_image_ref

    return synthorg_image_ref(pins, name, tag)


def _start_synthorg(
    jobs: _Jobs,
    pins: Pins,
    names: Sequence[str],
    target_tag: str,
    *,
    trust: TrustSettings,
    registry_factory: RegistryFactory,
    attestations_client: AttestationsClient | None,
    progress: ProgressCallback | None,
    deadline: float,
    budget: str,
) -> None:
    """Load the trust root once (step 0), then start one job per SynthOrg image."""
    from synthorg_tasks.verify import keyless
    from synthorg_tasks.verify.attestations import AttestationsClient

    tuf_timeout = min(trust.tuf_fetch_timeout, max(deadline - time.monotonic(), 0.0))
    root = keyless.load_trusted_root(
        trust.trusted_root_path, tuf_fetch_timeout=tuf_timeout
    )
    verifier = keyless.build_verifier(root)
    policy = keyless.identity_policy(pins.synthorg.identity)
    attestations = attestations_client or AttestationsClient(
        pins.synthorg.identity.attestations_api, timeout=trust.http_timeout
    )
    for name in names:

        def job(name: str = name) -> keyless.KeylessResult:
            return keyless.verify_synthorg_image(
                name,
                target_tag,
                pins=pins,
                registry=registry_factory(pins.synthorg.registry),
                verifier=verifier,
                policy=policy,
                attestations=attestations,
                on_check=progress,
            )

        jobs.start(name, job, deadline, budget)


def _dhi_job(
    image: cache.DhiImage,
    pins: Pins,
    platform: str,
    registry_factory: RegistryFactory,
    rekor_client: Any | None,
) -> Callable[[], Any]:
    def job() -> Any:
        from synthorg_tasks.verify.dhi import verify_dhi_image

        return verify_dhi_image(
            image.service,
            pins.dhi.images[image.service],
            pins=pins,
            platform=platform,
            registry=registry_factory(pins.dhi.registry),
            rekor_client=rekor_client,
        )

    return job


def _dhi_cache_entries(image: cache.DhiImage, result: Any) -> dict[str, str]:
    """Return the cache entries of one DHI result, after checking its index digest."""
    index_digest = str(result.index_digest)
    if index_digest != image.index_digest:
        raise VerificationError(
            f"verifying {image.ref}: index digest {index_digest} is not the pinned "
            f"{image.index_digest}"
        )
    return cache.dhi_entries(
        image.ref,
        index_digest=index_digest,
        platform_digest=str(result.platform_digest),
        attestation_digest=str(result.attestation_digest),
        signature_digest=str(result.signature_digest),
    )
