"""The stack on a real engine: init, start, status, faults in the data path, stop.

The tests of this module run in order on one install (one per matrix cell),
each leaving the stack as the next expects: running after start, stopped
after stop.
"""

from __future__ import annotations

import json
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from synthorg_tasks.status.render import load_schema
from tests.images.build import CRASH_TAG, IMAGE_TAG, StandInImages
from tests.stack.conftest import Cell
from tests.stack.harness import Install, docker

pytestmark = pytest.mark.docker

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


def _container(install: Install, service: str) -> dict[str, object]:
    listed = docker(
        "ps",
        "-aq",
        "--filter",
        f"label={PROJECT_LABEL}={install.project}",
        "--filter",
        f"label={SERVICE_LABEL}={service}",
    ).stdout.split()
    assert listed, f"no container for {service}"
    return dict(json.loads(docker("inspect", listed[0]).stdout)[0])


def _volumes(install: Install) -> list[str]:
    return docker(
        "volume", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={install.project}"
    ).stdout.split()


def _status(install: Install) -> tuple[int, dict[str, object]]:
    completed = install.run("status", "--json")
    document = json.loads(completed.stdout)
    jsonschema.validate(document, load_schema())
    return completed.code, document


def _codes(document: dict[str, object]) -> list[str]:
    return [issue["code"] for issue in document["issues"]]  # type: ignore[attr-defined,index]


def _start(install: Install, *extra: str) -> None:
    completed = install.run("start", "--no-pull", *extra)
    assert completed.code == 0, completed.stderr


def _expected_services(cell: Cell) -> set[str]:
    services = {"data-init", "backend", "web"}
    if cell.db == "postgres":
        services.add("postgres")
    if cell.bus == "nats":
        services.add("nats")
    return services


def test_init_writes_private_files(stack: Install, images: StandInImages) -> None:
    completed = stack.init()
    assert completed.code == 0, completed.stderr
    stack.point_at_stand_in_images()
    modes = {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in [stack.data_dir, *stack.data_dir.iterdir()]
    }
    assert modes[stack.data_dir.name] == 0o700
    assert modes["config.json"] == 0o600
    assert modes["compose.yml"] == 0o600
    if stack.bus == "nats":
        assert modes["nats.conf"] == 0o644
    else:
        assert "nats.conf" not in modes


def test_start_brings_stack_up(stack: Install) -> None:
    started = time.monotonic()
    completed = stack.run("start", "--no-pull")
    assert completed.code == 0, completed.stderr
    assert "image verification is OFF" in completed.stderr
    assert "Ready" in completed.stdout
    assert time.monotonic() - started < 120


def test_containers_carry_project_label(stack: Install, cell: Cell) -> None:
    listed = docker(
        "ps",
        "-a",
        "--filter",
        f"label={PROJECT_LABEL}={stack.project}",
        "--format",
        f'{{{{.Label "{SERVICE_LABEL}"}}}}',
    ).stdout.split()
    assert set(listed) == _expected_services(cell)


def test_status_ok_one_document(stack: Install) -> None:
    completed = stack.run("status", "--json")
    assert completed.code == 0, completed.stdout + completed.stderr
    document = json.loads(completed.stdout)
    jsonschema.validate(document, load_schema())
    assert document["verdict"] == "OK"
    assert document["health"]["ready"] is True


def test_doctor_on_running_stack(stack: Install) -> None:
    completed = stack.run("doctor", "--json")
    # The override keys turn verification off, which doctor reports as a
    # warning, so the clean stack exits 5.
    assert completed.code == 5, completed.stdout + completed.stderr
    document = completed.json()
    statuses = {c["name"]: c["status"] for c in document["checks"]}  # type: ignore[attr-defined]
    for name in ("environment", "config", "files", "compose", "containers", "health"):
        assert statuses[name] == "ok", (name, document)
    assert statuses["ports"] == "ok"
    assert statuses["verification"] == "warn"
    report = Path(str(document["report_path"]))
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    password = stack.config_document().get("postgres_password")
    if password:
        assert str(password) not in report.read_text()


def test_logs_of_one_service(stack: Install) -> None:
    completed = stack.run("logs", "--services", "backend", "--tail", "20")
    assert completed.code == 0, completed.stderr
    assert "[backend] serving on port 3001" in completed.stdout
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    prefixes = {line.split("|", 1)[0].strip() for line in lines if "|" in line}
    # Compose v1 prefixes lines with backend_1, v2 with backend-1.
    assert prefixes
    assert all(prefix.startswith("backend") for prefix in prefixes), prefixes


def test_logs_since_needs_compose_v2(stack: Install) -> None:
    completed = stack.run("logs", "--since", "5m")
    assert completed.code == 2
    assert "--since is not supported by Docker Compose 1.29.2 (docker-compose)" in (
        completed.stderr
    )


def test_data_init_exited_zero(stack: Install) -> None:
    state = _container(stack, "data-init")["State"]
    assert state["Status"] == "exited"  # type: ignore[index]
    assert state["ExitCode"] == 0  # type: ignore[index]


def test_volume_ownership(stack: Install, images: StandInImages) -> None:
    mounts = ["-v", f"{stack.project}_synthorg-data:/data"]
    paths = ["/data"]
    if stack.db == "postgres":
        mounts += ["-v", f"{stack.project}_synthorg-pgdata:/pgdata"]
        paths.append("/pgdata")
    if stack.bus == "nats":
        mounts += ["-v", f"{stack.project}_synthorg-nats-data:/nats-data"]
        paths.append("/nats-data")
    completed = docker(
        "run",
        "--rm",
        "--pull",
        "never",
        "--network",
        "none",
        *mounts,
        images.data_init,
        "stat",
        "-c",
        "%n %u:%g %a",
        *paths,
    )
    found = dict(line.split(" ", 1) for line in completed.stdout.splitlines())
    assert found["/data"].startswith("65532:65532 ")
    if stack.db == "postgres":
        assert found["/pgdata"] == "70:70 700"
    if stack.bus == "nats":
        assert found["/nats-data"].startswith("65532:65532 ")


@pytest.mark.cell("nats")
def test_live_nats_max_payload(stack: Install) -> None:
    from synthorg_tasks.health.nats_probe import probe_nats

    result = probe_nats("127.0.0.1", stack.ports["nats_client_port"], 16 * 1024 * 1024)
    assert result.probe == "ok"
    assert result.max_payload == 16777216
    _code, document = _status(stack)
    assert document["bus"]["max_payload_actual"] == 16777216  # type: ignore[index]


LIMITS = {
    "backend": (4 * 1024**3, 2_000_000_000, 256),
    "web": (256 * 1024**2, 500_000_000, 64),
    "postgres": (1024**3, 1_000_000_000, 128),
    "nats": (256 * 1024**2, 500_000_000, 64),
}


def test_limits_visible_in_host_config(stack: Install, cell: Cell) -> None:
    for service, (memory, nano_cpus, pids) in LIMITS.items():
        if service not in _expected_services(cell):
            continue
        host_config = _container(stack, service)["HostConfig"]
        assert host_config["Memory"] == memory, service  # type: ignore[index]
        assert host_config["NanoCpus"] == nano_cpus, service  # type: ignore[index]
        assert host_config["PidsLimit"] == pids, service  # type: ignore[index]


def test_second_start_not_blocked_by_own_ports(stack: Install, cell: Cell) -> None:
    completed = stack.run("start", "--no-pull", "--json")
    assert completed.code == 0, completed.stderr
    document = completed.json()
    assert document["ready"] is True
    assert set(document["images"]) == _expected_services(cell)  # type: ignore[arg-type]
    assert document["verification"] == {"synthorg": "skipped", "dhi": "skipped"}


@pytest.fixture
def foreign_socket() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_foreign_port_fails_preflight(stack: Install, foreign_socket: int) -> None:
    original = stack.ports["web_port"]
    stack.update_config(web_port=foreign_socket)
    try:
        completed = stack.run("start", "--no-pull")
    finally:
        stack.update_config(web_port=original)
    assert completed.code == 1
    assert f"port {foreign_socket} on 127.0.0.1 is already in use (needed by web)" in (
        completed.stderr
    )
    code, _document = _status(stack)
    assert code == 0


def _rows(stack: Install) -> list[str]:
    import urllib.request

    url = f"http://127.0.0.1:{stack.ports['backend_port']}/api/v1/rows"
    with urllib.request.urlopen(url, timeout=5) as response:
        return list(json.loads(response.read())["data"]["rows"])


def test_row_survives_stop_and_start(stack: Install) -> None:
    import urllib.request

    value = f"row-{stack.project}"
    url = f"http://127.0.0.1:{stack.ports['backend_port']}/api/v1/rows?value={value}"
    request = urllib.request.Request(url, method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
    stopped = stack.run("stop", "--timeout", "5")
    assert stopped.code == 0, stopped.stderr
    assert "data preserved in volumes" in stopped.stdout
    _start(stack)
    assert value in _rows(stack)


@pytest.mark.cell("full")
def test_killed_postgres_is_critical(stack: Install, cell: Cell) -> None:
    docker("kill", str(_container(stack, "postgres")["Id"]))
    code, document = _status(stack)
    assert code == 3
    assert "service_not_running" in _codes(document)
    _start(stack)
    code, _document = _status(stack)
    assert code == 0


@pytest.mark.cell("postgres")
def test_wrong_password_is_auth_failed(stack: Install, cell: Cell) -> None:
    stored = str(stack.config_document()["postgres_password"])
    wrong = "W" * 43
    stack.update_config(postgres_password=wrong)
    try:
        code, document = _status(stack)
    finally:
        stack.update_config(postgres_password=stored)
    assert code == 3
    assert "postgres_auth_failed" in _codes(document)
    assert document["persistence"]["probe"] == "auth_failed"  # type: ignore[index]
    assert wrong not in json.dumps(document)
    code, _document = _status(stack)
    assert code == 0


@pytest.mark.cell("full")
def test_crash_loop_aborts_start_early(stack: Install, cell: Cell) -> None:
    stack.update_config(image_tag=CRASH_TAG)
    started = time.monotonic()
    try:
        completed = stack.run("start", "--no-pull", "--timeout", "90s")
    finally:
        stack.update_config(image_tag=IMAGE_TAG)
    elapsed = time.monotonic() - started
    # Either the monitor sees two restarts first, or Compose reports the
    # backend unhealthy to web's dependency; both abort with exit 3 and the
    # per-container diagnostics.
    assert completed.code == 3, completed.stderr
    assert elapsed < 60
    assert "warning: backend: " in completed.stderr
    assert "keeps restarting (crash loop)" in completed.stderr or (
        "is unhealthy" in completed.stderr
    )
    _start(stack)


@pytest.mark.cell("postgres")
def test_reinit_keeps_password(stack: Install, cell: Cell) -> None:
    before = stack.config_document()["postgres_password"]
    completed = stack.init()
    assert completed.code == 0, completed.stderr
    assert stack.config_document()["postgres_password"] == before


@pytest.mark.cell("postgres")
def test_reinit_without_config_refused_while_volume_exists(stack: Install) -> None:
    config = stack.data_dir / "config.json"
    saved = config.read_bytes()
    config.unlink()
    try:
        completed = stack.init()
    finally:
        if not config.exists():
            config.write_bytes(saved)
            config.chmod(0o600)
    assert completed.code == 1
    assert "already exists for project" in completed.stderr


def test_stop_volumes_needs_confirmation(stack: Install) -> None:
    completed = stack.run("stop", "--volumes")
    assert completed.code == 2
    assert "pass --yes" in completed.stderr
    assert _volumes(stack)


def test_stop_keeps_volumes(stack: Install) -> None:
    completed = stack.run("stop")
    assert completed.code == 0, completed.stderr
    assert _volumes(stack)
    code, document = _status(stack)
    assert code == 4
    assert "no_containers" in _codes(document)


def test_stop_volumes_yes_removes_them(stack: Install) -> None:
    completed = stack.run("stop", "--volumes", "--yes")
    assert completed.code == 0, completed.stderr
    assert _volumes(stack) == []
