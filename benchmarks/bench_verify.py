"""Timings of verify_images_with_cache: a cached call and a full verification.

The script starts Debian's docker-registry on 127.0.0.1 with temporary
storage, publishes four images through the product's registry client
(backend and web with Sigstore bundles and SLSA provenance from a private
test Sigstore instance; postgres and nats as DHI images with cosign-style
signatures and Rekor entries), serves the GitHub attestations API from a
loopback stub, and then measures:

- a full verification of all four images, verified concurrently (``force``);
- a cached call, which must send no request at all.

Medians over ``--runs`` timed runs are printed after one warm-up run each.
Run from the checkout: ``python benchmarks/bench_verify.py`` or
``nox -s bench_verify``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synthorg_tasks.state.config import Config  # noqa: E402
from synthorg_tasks.verify.pipeline import (  # noqa: E402
    TrustSettings,
    VerificationOutcome,
    verify_images_with_cache,
)
from tests.verify.factories import TrustKeys  # noqa: E402
from tests.verify.http_stub import run_stub  # noqa: E402
from tests.verify.local_registry import registry_binary, running_registry  # noqa: E402
from tests.verify.registry_release import LocalRelease, publish_local_release  # noqa: E402
from tests.verify.sigstore_factory import SigstoreFactory  # noqa: E402

CACHED_TARGET_MS = 5.0


def _median_ms(call: Callable[[], object], runs: int) -> float:
    call()  # warm-up: imports, TLS-free connection pools, page cache
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _verify(
    local: LocalRelease, root: Path, config: Config, *, force: bool
) -> VerificationOutcome:
    return verify_images_with_cache(
        config,
        local.pins,
        target_tag=config.image_tag,
        platform="linux/amd64",
        trust=TrustSettings(trusted_root_path=root),
        registry_factory=local.registry_factory,
        force=force,
        deadline=60,
        attestations_client=local.attestations,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per case")
    args = parser.parse_args()
    binary = registry_binary()
    if binary is None:
        sys.exit("docker-registry not found (apt-get install docker-registry)")

    work = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    sigstore = SigstoreFactory(work)
    config = Config(
        data_dir=work,
        project_name="bench",
        image_tag="0.7.0",
        persistence_backend="postgres",
        bus_backend="nats",
    )

    with running_registry(binary) as host, run_stub() as github_stub:
        local = publish_local_release(
            host, sigstore, github_stub, TrustKeys.generate(), config
        )
        root = sigstore.trusted_root_path

        # Full runs use force=True, so every call verifies all four images.
        full_ms = _median_ms(
            lambda: _verify(local, root, config, force=True), args.runs
        )
        outcome = _verify(local, root, config, force=True)
        cached_config = config.replace(
            verified_digests=outcome.verified_digests,
            verified_image_tag=outcome.verified_image_tag,
        )

        # Cached runs reuse the cache of one full run: nothing may be sent.
        requests_before = local.session.count + len(github_stub.requests)
        cached_ms = _median_ms(
            lambda: _verify(local, root, cached_config, force=False), args.runs
        )
        requests_cached = local.session.count + len(github_stub.requests)
    cached_requests = requests_cached - requests_before

    print(f"runs per case: {args.runs} (after one warm-up run)")
    print(f"full verification, 4 images concurrently: {full_ms:.1f} ms median")
    print(
        f"cached verification: {cached_ms:.3f} ms median, "
        f"{cached_requests} requests (target < {CACHED_TARGET_MS} ms and 0)"
    )
    if cached_requests or cached_ms >= CACHED_TARGET_MS:
        sys.exit("cached verification missed its target")


if __name__ == "__main__":
    main()
