"""Drive a real install for the stack tests: init, override keys, commands.

Commands run as subprocesses of ``python -m synthorg_tasks.program`` with
the checkout on PYTHONPATH, so every test sees real exit codes, stdout and
stderr, exactly as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.images.build import IMAGE_TAG, override_settings

CHECKOUT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Completed:
    """Exit code and streams of one command."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, object]:
        """Parse stdout as exactly one JSON document."""
        return dict(json.loads(self.stdout))


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free TCP ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def command_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment of a product command: no caller SYNTHORG_* leaks."""
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if not key.startswith(("SYNTHORG_", "COMPOSE_"))
    }
    env["PYTHONPATH"] = str(CHECKOUT)
    # Short waits keep failure scenarios fast; readiness still has 90 s.
    env["SYNTHORG_HEALTH_INITIAL_DELAY"] = "1s"
    env["SYNTHORG_HEALTH_POLL_INTERVAL"] = "1s"
    return env


class Install:
    """One data dir and project, driven through the ``synthorg`` program."""

    def __init__(self, data_dir: Path, project: str, db: str, bus: str) -> None:
        self.data_dir = data_dir
        self.project = project
        self.db = db
        self.bus = bus
        backend, web, postgres, nats = free_ports(4)
        self.ports = {
            "backend_port": backend,
            "web_port": web,
            "postgres_port": postgres,
            "nats_client_port": nats,
        }

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
    ) -> Completed:
        """Run ``synthorg <args> --data-dir <dir>`` and wait for it."""
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "synthorg_tasks",
                *args,
                "--data-dir",
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            env={**command_environment(), **(env or {})},
            timeout=timeout,
            check=False,
        )
        return Completed(completed.returncode, completed.stdout, completed.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``synthorg <args>`` without waiting, with SIGINT not ignored.

        A runner such as nox may ignore SIGINT, and a child inherits an ignored
        signal across exec; the command must receive SIGINT as a user's Ctrl+C.
        """
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "synthorg_tasks",
                    *args,
                    "--data-dir",
                    str(self.data_dir),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=command_environment(),
            )
        finally:
            if previous is signal.SIG_IGN:
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    def init(self, *extra: str) -> Completed:
        """Run a non-interactive init for this cell, on free ports."""
        args = [
            "init",
            "--backend",
            self.db,
            "--bus",
            self.bus,
            "--project-name",
            self.project,
            "--backend-port",
            str(self.ports["backend_port"]),
            "--web-port",
            str(self.ports["web_port"]),
            "--image-tag",
            IMAGE_TAG,
            "--yes",
        ]
        if self.db == "postgres":
            args += ["--postgres-port", str(self.ports["postgres_port"])]
        if self.bus == "nats":
            args += ["--nats-port", str(self.ports["nats_client_port"])]
        return self.run(*args, *extra)

    def point_at_stand_in_images(self, **extra: str) -> None:
        """Store the override keys in config.json and re-render compose.yml."""
        self.update_config(**override_settings(), **extra)

    def update_config(self, **changes: object) -> None:
        """Change config.json keys and re-render, as ``config set`` does."""
        from synthorg_tasks.render.writer import write_compose_files
        from synthorg_tasks.state.config import load_strict, save_config
        from synthorg_tasks.state.lock import LifecycleLock
        from synthorg_tasks.verify.pins import load_pins

        with LifecycleLock(self.data_dir, 30) as lock:
            config = load_strict(self.data_dir).replace(**changes)
            save_config(config, lock)
            write_compose_files(config, load_pins(), lock)

    def config_document(self) -> dict[str, object]:
        """Return config.json as stored."""
        return dict(json.loads((self.data_dir / "config.json").read_text()))


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI against the engine of DOCKER_HOST."""
    completed = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=120
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {completed.returncode}: "
            f"{completed.stderr.strip()}"
        )
    return completed


def sweep_project_label(prefix: str) -> None:
    """Remove every container and volume whose project label starts with prefix."""
    listed = docker("ps", "-aq", "--filter", "label=com.docker.compose.project")
    for container_id in listed.stdout.split():
        project = docker(
            "inspect",
            "--format",
            '{{index .Config.Labels "com.docker.compose.project"}}',
            container_id,
        ).stdout.strip()
        if project.startswith(prefix):
            docker("rm", "-f", container_id, check=False)
    volumes = docker(
        "volume", "ls", "-q", "--filter", "label=com.docker.compose.project"
    )
    for volume in volumes.stdout.split():
        project = docker(
            "volume",
            "inspect",
            "--format",
            '{{index .Labels "com.docker.compose.project"}}',
            volume,
        ).stdout.strip()
        if project.startswith(prefix):
            docker("volume", "rm", "-f", volume, check=False)
    networks = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    for network in networks:
        if network.startswith(prefix) and network.endswith("-net"):
            docker("network", "rm", network, check=False)


def compose_down(install: Install, *args: Sequence[str]) -> None:
    """``docker-compose down -v`` for the install, ignoring failures."""
    compose = install.data_dir / "compose.yml"
    if not compose.is_file():
        return
    subprocess.run(
        [
            "docker-compose",
            "--project-name",
            install.project,
            "--file",
            str(compose),
            "--project-directory",
            str(install.data_dir),
            "down",
            "-v",
            "--timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def main(argv: list[str] | None = None) -> int:
    """``sweep [PREFIX]``: remove containers, volumes and networks of test projects."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "sweep":
        print("usage: python -m tests.stack.harness sweep [PREFIX]", file=sys.stderr)
        return 2
    sweep_project_label(args[1] if len(args) > 1 else "st-")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
