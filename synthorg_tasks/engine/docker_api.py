"""The docker SDK adapter: the only module that talks to the Engine API.

Every docker, requests and urllib3 exception is translated here into the
product's tree. Containers and volumes are found by the Compose labels
``com.docker.compose.project`` (plus ``.service`` / ``.volume``); one-off
containers (``compose run``) are excluded.

A status snapshot must cost a constant number of Engine API calls whatever
the number of containers, so containers come from one filtered list call
(``GET /containers/json``) and are described from its summary: state, health
and exit code are read from the ``State`` and ``Status`` fields. Only a
container that is restarting, unhealthy or stopped is inspected, because the
restart count, the OOM flag and the times exist only in the inspect document.
Container environments (``Config.Env``) are dropped as soon as a document is
received, so they are never logged, printed or serialised.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synthorg_tasks.errors import EngineError, EngineUnreachable
from synthorg_tasks.logging import get_logger

__all__ = [
    "PROJECT_LABEL",
    "SERVICE_LABEL",
    "VOLUME_LABEL",
    "ContainerInfo",
    "DockerApi",
    "EngineVersion",
    "PublishedPort",
    "connect",
    "parse_status_text",
]

_logger = get_logger("engine")

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
VOLUME_LABEL = "com.docker.compose.volume"
ONEOFF_LABEL = "com.docker.compose.oneoff"

# The oldest Engine API that docker-py 7 accepts; the client is re-created at
# the server's own version after the first call.
_BOOTSTRAP_API_VERSION = "1.24"
DEFAULT_UNIX_SOCKET = "unix:///var/run/docker.sock"

_UNREACHABLE_HINTS = (
    "check that the docker CLI is on PATH and that the Docker daemon is running: "
    "docker ps",
    "set DOCKER_HOST when the daemon listens on another socket",
)

_HEALTH_PATTERN = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_EXIT_PATTERN = re.compile(r"^(?:Exited|Restarting) \((-?\d+)\)")


@dataclass(frozen=True)
class EngineVersion:
    """Engine version facts shown by status and doctor."""

    version: str
    api_version: str
    os: str
    arch: str


@dataclass(frozen=True)
class PublishedPort:
    """A host port published by a container."""

    host_ip: str
    host_port: int
    container_port: int
    protocol: str


@dataclass(frozen=True)
class ContainerInfo:
    """Facts about one project container, as status and start use them.

    ``restart_count``, ``oom_killed``, ``started_at`` and ``finished_at`` are
    ``None`` when the container was not inspected (a running container that
    is not unhealthy or restarting).
    """

    id: str
    name: str
    service: str
    state: str
    health: str | None
    exit_code: int | None
    image: str
    ports: tuple[PublishedPort, ...] = ()
    status_text: str = ""
    created: int = 0
    restart_count: int | None = None
    oom_killed: bool | None = None
    started_at: str | None = None
    finished_at: str | None = None
    last_health_output: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the container id."""
        return self.id[:12]

    @property
    def needs_inspect(self) -> bool:
        """Whether the list summary lacks facts the verdict needs.

        A container that exited with code 0 (data-init after its run) needs
        none: it was not OOM-killed, and its restart count does not matter.
        """
        if self.state == "exited" and self.exit_code == 0:
            return False
        return self.state != "running" or self.health in {"unhealthy", "starting"}


def parse_status_text(state: str, status: str) -> tuple[str | None, int | None]:
    """Read the health and exit code from a list summary's ``Status`` text.

    Examples: ``Up 3 minutes (healthy)`` gives ``("healthy", None)``,
    ``Exited (1) 2 minutes ago`` gives ``(None, 1)``.
    """
    health: str | None = None
    match = _HEALTH_PATTERN.search(status)
    if match is not None:
        word = match.group(1)
        health = "starting" if word == "health: starting" else word
    elif state == "running":
        health = "none"
    exit_code: int | None = None
    exit_match = _EXIT_PATTERN.match(status)
    if exit_match is not None:
        exit_code = int(exit_match.group(1))
    return health, exit_code


def _drop_environment(document: dict[str, Any]) -> dict[str, Any]:
    config = document.get("Config")
    if isinstance(config, dict):
        config.pop("Env", None)
    return document


def _published_ports(summary: Mapping[str, Any]) -> tuple[PublishedPort, ...]:
    ports: list[PublishedPort] = []
    for entry in summary.get("Ports") or ():
        public = entry.get("PublicPort")
        if not public:
            continue
        ports.append(
            PublishedPort(
                host_ip=str(entry.get("IP") or ""),
                host_port=int(public),
                container_port=int(entry.get("PrivatePort") or 0),
                protocol=str(entry.get("Type") or "tcp"),
            )
        )
    return tuple(sorted(set(ports), key=lambda p: (p.host_port, p.host_ip)))


def _from_summary(summary: Mapping[str, Any]) -> ContainerInfo:
    labels = dict(summary.get("Labels") or {})
    state = str(summary.get("State") or "unknown")
    status = str(summary.get("Status") or "")
    health, exit_code = parse_status_text(state, status)
    names = summary.get("Names") or [""]
    return ContainerInfo(
        id=str(summary.get("Id") or ""),
        name=str(names[0]).lstrip("/"),
        service=labels.get(SERVICE_LABEL, ""),
        state=state,
        health=health,
        exit_code=exit_code,
        image=str(summary.get("Image") or ""),
        ports=_published_ports(summary),
        status_text=status,
        created=int(summary.get("Created") or 0),
        labels=labels,
    )


def _with_inspect(info: ContainerInfo, document: Mapping[str, Any]) -> ContainerInfo:
    state = document.get("State") or {}
    health_doc = state.get("Health") or {}
    health = info.health
    if health_doc.get("Status"):
        health = str(health_doc["Status"])
    probe_log = health_doc.get("Log") or []
    last_output = None
    if probe_log:
        last_output = str(probe_log[-1].get("Output") or "").strip() or None
    exit_code = info.exit_code
    if info.state in {"exited", "dead", "restarting"}:
        exit_code = int(state.get("ExitCode", exit_code or 0))
    return ContainerInfo(
        id=info.id,
        name=info.name,
        service=info.service,
        state=str(state.get("Status") or info.state),
        health=health,
        exit_code=exit_code,
        image=info.image,
        ports=info.ports,
        status_text=info.status_text,
        created=info.created,
        restart_count=int(document.get("RestartCount") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        started_at=state.get("StartedAt"),
        finished_at=state.get("FinishedAt"),
        last_health_output=last_output,
        labels=info.labels,
    )


class DockerApi:
    """A connected Engine API client with the product's queries.

    ``request_count`` counts every HTTP request sent, so tests and the
    benchmark can prove how many calls a snapshot costs.
    """

    def __init__(self, api: Any, engine: EngineVersion) -> None:
        self._api = api
        self.engine = engine
        self.request_count = 0

    def count_request(self) -> None:
        """Record one Engine API request (called by the transport hook)."""
        self.request_count += 1

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        import docker.errors
        import requests.exceptions

        try:
            return function(*args, **kwargs)
        except docker.errors.NotFound:
            raise
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
        ) as exc:
            raise EngineUnreachable(
                f"Docker engine not reachable: {what} failed: {exc}",
                hints=_UNREACHABLE_HINTS,
            ) from exc
        except docker.errors.APIError as exc:
            explanation = exc.explanation or str(exc)
            raise EngineError(f"{what} failed: {explanation}") from exc
        except docker.errors.DockerException as exc:
            raise EngineError(f"{what} failed: {exc}") from exc

    def list_containers(
        self,
        project: str,
        *,
        service: str | None = None,
        inspect: bool = True,
        inspect_all: bool = False,
    ) -> list[ContainerInfo]:
        """List the project's containers in every state, one-off runs excluded.

        One list call; with ``inspect`` every container whose summary lacks
        facts (see :attr:`ContainerInfo.needs_inspect`) is inspected as well,
        and with ``inspect_all`` every container that is not healthy, which
        the crash-loop monitor needs for restart counts.
        """
        labels = [f"{PROJECT_LABEL}={project}"]
        if service is not None:
            labels.append(f"{SERVICE_LABEL}={service}")
        summaries = self._call(
            "container listing",
            self._api.containers,
            all=True,
            filters={"label": labels},
        )
        found: list[ContainerInfo] = []
        for summary in summaries:
            if (summary.get("Labels") or {}).get(ONEOFF_LABEL, "False") == "True":
                continue
            info = _from_summary(summary)
            wanted = info.needs_inspect or (inspect_all and info.health != "healthy")
            if inspect and wanted:
                info = self._inspected(info)
            found.append(info)
        found.sort(key=lambda c: (c.service, c.name))
        return found

    def _inspected(self, info: ContainerInfo) -> ContainerInfo:
        import docker.errors

        try:
            document = self.inspect_container(info.id)
        except docker.errors.NotFound:
            return info
        return _with_inspect(info, document)

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        """Return a container's inspect document without ``Config.Env``."""
        document = self._call(
            "container inspect", self._api.inspect_container, container_id
        )
        return _drop_environment(dict(document))

    def bound_ports(self, project: str) -> list[PublishedPort]:
        """Return the host ports bound by the project's containers, in any state.

        Read from ``HostConfig.PortBindings`` (one inspect per container), so a
        restarting container whose proxy is down for a moment still counts.
        """
        found: list[PublishedPort] = []
        for info in self.list_containers(project, inspect=False):
            found.extend(info.ports)
            host_config = self.host_config(info.id)
            for key, bindings in (host_config.get("PortBindings") or {}).items():
                container_port, _, protocol = str(key).partition("/")
                for binding in bindings or ():
                    host_port = str(binding.get("HostPort") or "")
                    if not host_port.isdigit():
                        continue
                    found.append(
                        PublishedPort(
                            host_ip=str(binding.get("HostIp") or ""),
                            host_port=int(host_port),
                            container_port=int(container_port or 0),
                            protocol=protocol or "tcp",
                        )
                    )
        return found

    def host_config(self, container_id: str) -> dict[str, Any]:
        """Return the ``HostConfig`` of one container."""
        return dict(self.inspect_container(container_id).get("HostConfig") or {})

    def container_logs(self, container_id: str, tail: int = 80) -> str:
        """Return the last ``tail`` lines of a container's stdout and stderr."""
        import docker.errors

        try:
            raw = self._call(
                "container logs",
                self._api.logs,
                container_id,
                stdout=True,
                stderr=True,
                tail=tail,
            )
        except docker.errors.NotFound:
            return ""
        return bytes(raw).decode("utf-8", errors="replace")

    def list_volumes(self, project: str) -> list[dict[str, Any]]:
        """List the project's named volumes."""
        response = self._call(
            "volume listing",
            self._api.volumes,
            filters={"label": f"{PROJECT_LABEL}={project}"},
        )
        return list((response or {}).get("Volumes") or [])

    def find_volume(self, project: str, volume: str) -> dict[str, Any] | None:
        """Return a project volume by its Compose name, or by ``<project>_<volume>``."""
        for candidate in self.list_volumes(project):
            labels = candidate.get("Labels") or {}
            if labels.get(VOLUME_LABEL) == volume:
                return candidate
        import docker.errors

        try:
            return dict(
                self._call(
                    "volume inspect", self._api.inspect_volume, f"{project}_{volume}"
                )
            )
        except docker.errors.NotFound:
            return None

    def volume_size(self, name: str) -> int | None:
        """Return a volume's size from disk-usage data, -1 when unknown, else None."""
        usage = self._call("disk usage", self._api.df)
        for volume in (usage or {}).get("Volumes") or []:
            if volume.get("Name") == name:
                return int((volume.get("UsageData") or {}).get("Size", -1))
        return None

    def image_present(self, reference: str) -> bool:
        """Whether ``reference`` is in the local image store.

        A digest reference (``name@sha256:...``) must match one of the local
        image's repo digests, so a retagged image is never accepted in place of a pin.
        """
        import docker.errors

        try:
            document = self._call("image inspect", self._api.inspect_image, reference)
        except docker.errors.NotFound:
            return False
        if "@" not in reference:
            return True
        name, digest = reference.rsplit("@", 1)
        repository = _strip_tag(name)
        for repo_digest in document.get("RepoDigests") or []:
            repo, _, found = str(repo_digest).partition("@")
            if found == digest and repo == repository:
                return True
        return False

    def close(self) -> None:
        """Close the underlying HTTP session."""
        close = getattr(self._api, "close", None)
        if callable(close):
            close()


def _client_kwargs(environ: Mapping[str, str] | None) -> dict[str, Any]:
    from docker.utils import kwargs_from_env

    return dict(kwargs_from_env(environment=dict(environ) if environ else None))


def connect(timeout: float, environ: Mapping[str, str] | None = None) -> DockerApi:
    """Connect to the engine named by ``DOCKER_HOST`` and friends.

    Sends two requests, ``/_ping`` and ``/version``, each within ``timeout``
    seconds. Raises :class:`EngineUnreachable` (exit 4) when the SDK is
    missing, the socket refuses connections, or the daemon is not running.
    """
    try:
        import docker
        import docker.errors
        import requests.exceptions
    except ImportError as exc:
        raise EngineUnreachable(
            f"Docker engine not reachable: the docker SDK is not installed ({exc})",
            hints=["reinstall the toolkit with its dependencies"],
        ) from exc
    counter: list[int] = [0]

    def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return response

    bootstrap: Any = None
    try:
        kwargs = _client_kwargs(environ)
        _check_unix_socket(str(kwargs.get("base_url") or DEFAULT_UNIX_SOCKET), timeout)
        bootstrap = docker.APIClient(
            version=_BOOTSTRAP_API_VERSION, timeout=timeout, **kwargs
        )
        bootstrap.hooks["response"].append(hook)
        bootstrap.ping()
        document = bootstrap.version(api_version=False)
        api_version = str(document.get("ApiVersion") or _BOOTSTRAP_API_VERSION)
        api = docker.APIClient(version=api_version, timeout=timeout, **kwargs)
    except (
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        docker.errors.DockerException,
        OSError,
    ) as exc:
        raise EngineUnreachable(
            f"Docker engine not reachable: {exc}", hints=_UNREACHABLE_HINTS
        ) from exc
    finally:
        if bootstrap is not None:
            bootstrap.close()
    engine = EngineVersion(
        version=str(document.get("Version") or "unknown"),
        api_version=api_version,
        os=str(document.get("Os") or ""),
        arch=str(document.get("Arch") or ""),
    )
    adapter = DockerApi(api, engine)
    adapter.request_count = counter[0]
    api.hooks["response"].append(lambda response, *a, **k: _counted(adapter, response))
    _logger.info(
        "Docker engine %s (API %s) reachable", engine.version, engine.api_version
    )
    return adapter


def unix_socket_error(base_url: str, timeout: float) -> OSError | None:
    """Connect to a ``unix://`` engine socket once; return the failure, if any.

    docker-py 7.x leaves its socket open when the connect fails, so every
    caller detects an absent daemon here first, with a socket that is always
    closed. Other schemes (``tcp://``) are not probed and return ``None``.
    """
    if not base_url.startswith(("unix://", "http+unix://")):
        return None
    path = "/" + base_url.split("://", 1)[1].lstrip("/")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(path)
        except OSError as exc:
            return exc
    return None


def _check_unix_socket(base_url: str, timeout: float) -> None:
    error = unix_socket_error(base_url, timeout)
    if error is not None:
        path = "/" + base_url.split("://", 1)[1].lstrip("/")
        reason = error.strerror or type(error).__name__
        raise EngineUnreachable(
            f"Docker engine not reachable: cannot connect to {path}: {reason}",
            hints=_UNREACHABLE_HINTS,
        ) from error


def _counted(adapter: DockerApi, response: Any) -> Any:
    adapter.count_request()
    return response


def _strip_tag(name: str) -> str:
    """Remove a ``:tag`` from an image name, keeping a registry ``host:port``."""
    head, slash, last = name.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    return f"{head}{slash}{last}"
