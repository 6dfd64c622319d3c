"""Run Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1 for tests.

Used by the test fixture and by the ``registry`` Nox session, so it needs
nothing beyond the standard library.

The registry keeps its storage in a temporary folder, listens on a free
loopback port and is stopped by its pid when the context exits. It has no
OCI referrers API, so clients must use the referrers-tag fallback against it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REGISTRY_BINARY_ENV = "SYNTHORG_TEST_DOCKER_REGISTRY"
# Host (127.0.0.1:<port>) of a registry that the Nox session already started.
REGISTRY_HOST_ENV = "SYNTHORG_TEST_REGISTRY_HOST"
DEFAULT_BINARY = "/usr/bin/docker-registry"
_START_TIMEOUT_SECONDS = 15.0


def registry_binary() -> str | None:
    """Return the path of the registry binary, or None when it is not installed."""
    configured = os.environ.get(REGISTRY_BINARY_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    if os.access(DEFAULT_BINARY, os.X_OK):
        return DEFAULT_BINARY
    return shutil.which("docker-registry")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(storage: Path, port: int) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
        # A fixed secret silences the warning about a generated one.
        "  secret: synthorg-tasks-test-registry\n"
    )


def _wait_ready(host: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"docker-registry exited with {process.returncode}: "
                f"{log.read_text(errors='replace')[-2000:]}"
            )
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError),
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer on {host} within 15 s")


@contextlib.contextmanager
def running_registry(binary: str) -> Iterator[str]:
    """Start the registry and yield its ``127.0.0.1:<port>`` host."""
    with tempfile.TemporaryDirectory(prefix="synthorg-registry-") as folder:
        root = Path(folder)
        port = _free_port()
        config = root / "config.yml"
        config.write_text(_config(root / "storage", port), encoding="utf-8")
        log = root / "registry.log"
        host = f"127.0.0.1:{port}"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
            try:
                _wait_ready(host, process, log)
                yield host
            finally:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
