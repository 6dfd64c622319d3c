"""Start real PostgreSQL and NATS servers as local processes for the tests.

Both servers listen only on 127.0.0.1 at a free port and always stop in a
``finally`` block. The noxfile and the pytest fixtures share this module, so a
server started by a Nox session and one started by pytest are set up alike.

PostgreSQL: ``initdb`` and ``pg_ctl`` refuse to run as root, so as root they
run as the ``postgres`` user (``runuser -u postgres --``) on a fresh 0700 data
folder under the temp dir that it owns. Authentication is scram-sha-256 for
every connection (never trust), so a wrong password really fails.

NATS: the server reads a ``nats.conf`` rendered by the product's renderer with
a loopback host, a free port and a temp store dir.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from synthorg_tasks.render.natsconf import render_nats_conf

LOOPBACK = "127.0.0.1"
PG_OS_USER = "postgres"
PG_SUPERUSER = "postgres"
ROLE_NAME = "synthorg"
DATABASE_NAME = "synthorg"
# A password with every character that breaks a naive URL or shell:
# '@', ':', '/', '#', '%', '$' and both quotes.
ROLE_PASSWORD_PREFIX = "s@y:n/t#h%o$r'g\""
ADMIN_DSN_ENV = "SYNTHORG_TEST_PG_ADMIN_DSN"
NATS_URLS_ENV = "SYNTHORG_TEST_NATS_URLS"
NATS_DEBIAN_BINARY = Path("/usr/sbin/nats-server")

_PG_VERSIONED_ROOT = Path("/usr/lib/postgresql")
_START_TIMEOUT = 30.0


class ServerError(RuntimeError):
    """Raised when a test server cannot be found, started or prepared."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def closed_port() -> int:
    """Return a loopback port with no listener (bound, then released)."""
    return free_port()


def _is_root() -> bool:
    return os.geteuid() == 0


def as_pg_user(argv: Sequence[str]) -> list[str]:
    if _is_root():
        return ["runuser", "-u", PG_OS_USER, "--", *argv]
    return list(argv)


def run_as_pg_user(
    argv: Sequence[str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program as the ``postgres`` user when root.

    ``cwd`` must be a folder that user can enter, because the caller's working
    directory (a checkout under /root, say) may not be.
    """
    return subprocess.run(
        as_pg_user(argv),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def _check(
    result: subprocess.CompletedProcess[str], program: str, log: str = ""
) -> None:
    if result.returncode != 0:
        raise ServerError(
            f"{program} failed with exit code {result.returncode}:\n"
            f"{result.stdout}{result.stderr}{log}"
        )


# --- PostgreSQL ---------------------------------------------------------------


def find_pg_bindir() -> Path:
    """Return the folder holding ``initdb`` and ``pg_ctl``.

    Looks at ``pg_config --bindir`` first, then at the versioned Debian folders
    ``/usr/lib/postgresql/<version>/bin``, newest first. The error lists every
    place tried.
    """
    tried: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        candidate = Path(result.stdout.strip())
        if result.returncode == 0 and (candidate / "initdb").is_file():
            return candidate
        tried.append(f"{pg_config} --bindir ({candidate})")
    else:
        tried.append("pg_config on PATH (not found)")
    versions: list[Path] = []
    if _PG_VERSIONED_ROOT.is_dir():
        versions = sorted(
            (p for p in _PG_VERSIONED_ROOT.iterdir() if p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
    for version in versions:
        candidate = version / "bin"
        if (candidate / "initdb").is_file():
            return candidate
        tried.append(str(candidate))
    tried.append(f"{_PG_VERSIONED_ROOT}/<version>/bin")
    raise ServerError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; tried: "
        + ", ".join(tried)
    )


def admin_dsn_given() -> bool:
    """Report whether the tests use a server named by the admin DSN variable."""
    return bool(os.environ.get(ADMIN_DSN_ENV))


def pg_available(allow_admin_dsn: bool = True) -> tuple[bool, str]:
    """Report whether a PostgreSQL server can be used here, and why not.

    With ``allow_admin_dsn=False`` the question is whether a private server can
    be started from local binaries.
    """
    if allow_admin_dsn and admin_dsn_given():
        return True, ""
    try:
        find_pg_bindir()
    except ServerError as exc:
        return False, str(exc)
    if _is_root():
        try:
            pwd.getpwnam(PG_OS_USER)
        except KeyError:
            return False, f"running as root and the user {PG_OS_USER} does not exist"
        if shutil.which("runuser") is None:
            return False, "running as root and runuser is not installed"
    return True, ""


def pg_url(
    user: str, password: str, port: int, dbname: str, host: str = LOOPBACK
) -> str:
    """Return a ``postgresql://`` URL with user and password percent-encoded."""
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{host}:{port}/{quote(dbname, safe='')}"
    )


@dataclass
class PostgresCluster:
    """A PostgreSQL data folder made by ``initdb``, started or not."""

    bindir: Path
    base_dir: Path
    superuser_password: str
    port: int = 0
    started: bool = False

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def start(self, timeout: float = _START_TIMEOUT) -> None:
        """Start the server on a free loopback port and wait until it accepts."""
        self.port = free_port()
        settings = (
            f"\nlisten_addresses = '{LOOPBACK}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.base_dir}'\n"
            "fsync = off\n"
        )
        _write_as_pg_user(self.data_dir / "postgresql.auto.conf", settings)
        argv = [
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ]
        result = run_as_pg_user(argv, self.base_dir, timeout=timeout + 10)
        _check(result, "pg_ctl start", self.read_log())
        self.started = True

    def stop(self) -> None:
        """Stop the server; kill the postmaster if ``pg_ctl stop`` fails."""
        if not self.started:
            return
        argv = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir)]
        result = run_as_pg_user(
            [*argv, "-m", "fast", "-w", "-t", "30", "stop"], self.base_dir
        )
        if result.returncode != 0:
            pid = self._postmaster_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
        self.started = False

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def read_log(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def admin_url(self) -> str:
        return pg_url(PG_SUPERUSER, self.superuser_password, self.port, "postgres")

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(first) if first.strip().isdigit() else None


def _write_as_pg_user(path: Path, text: str, append: bool = True) -> None:
    with path.open("a" if append else "w", encoding="utf-8") as handle:
        handle.write(text)
    if _is_root():
        entry = pwd.getpwnam(PG_OS_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def init_cluster(parent: Path | None = None) -> PostgresCluster:
    """Run ``initdb`` on a fresh folder with scram-sha-256 for every connection."""
    bindir = find_pg_bindir()
    base_dir = Path(tempfile.mkdtemp(prefix="synthorg-pg-", dir=parent))
    if _is_root():
        entry = pwd.getpwnam(PG_OS_USER)
        os.chown(base_dir, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(
        bindir=bindir, base_dir=base_dir, superuser_password=secrets.token_hex(16)
    )
    pwfile = base_dir / "pwfile"
    try:
        pwfile.touch(mode=0o600)
        _write_as_pg_user(pwfile, cluster.superuser_password, append=False)
        initdb = [
            str(bindir / "initdb"),
            "-D",
            str(cluster.data_dir),
            "--username",
            PG_SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local",
            "scram-sha-256",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-instructions",
            "--no-sync",
        ]
        _check(run_as_pg_user(initdb, base_dir), "initdb")
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise
    finally:
        pwfile.unlink(missing_ok=True)
    return cluster


@dataclass
class PostgresServer:
    """A running server with the role and database the product expects."""

    admin_url: str
    port: int
    role_password: str
    host: str = LOOPBACK
    role: str = ROLE_NAME
    database: str = DATABASE_NAME
    cluster: PostgresCluster | None = field(default=None, repr=False)

    def url(self, password: str | None = None, dbname: str | None = None) -> str:
        """Return the role's URL, optionally with another password or database."""
        return pg_url(
            self.role,
            self.role_password if password is None else password,
            self.port,
            self.database if dbname is None else dbname,
            self.host,
        )

    def admin_execute(self, statement: object, dbname: str = "postgres") -> None:
        """Run one statement as the superuser, in autocommit mode."""
        import psycopg

        with psycopg.connect(
            **_admin_kwargs(self.admin_url, dbname), autocommit=True
        ) as connection:
            connection.execute(statement)  # type: ignore[arg-type]

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database owned by the role and return its name."""
        from psycopg import sql

        name = name or f"synthorg_{secrets.token_hex(6)}"
        self.admin_execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(self.role)
            )
        )
        return name

    def database_exists(self, name: str) -> bool:
        """Report whether the server has a database called ``name``."""
        import psycopg

        with psycopg.connect(**_admin_kwargs(self.admin_url, "postgres")) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
        return row is not None

    def drop_database(self, name: str) -> None:
        """Drop a database, closing its open connections first."""
        from psycopg import sql

        self.admin_execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )

    def drop_role(self, name: str) -> None:
        """Drop a login role if it exists."""
        from psycopg import sql

        self.admin_execute(
            sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name))
        )

    def create_role(self, name: str, password: str) -> None:
        """Create a login role with ``password`` (stored as a scram verifier)."""
        from psycopg import sql

        self.admin_execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )


def _admin_kwargs(admin_url: str, dbname: str) -> dict[str, object]:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(admin_url)
    return {
        "host": parts.hostname or LOOPBACK,
        "port": parts.port or 5432,
        "user": unquote(parts.username or PG_SUPERUSER),
        "password": unquote(parts.password or ""),
        "dbname": dbname,
        "sslmode": "disable",
        "connect_timeout": 10,
    }


def wait_for_postgres(admin_url: str, timeout: float = _START_TIMEOUT) -> None:
    """Wait until an authenticated ``SELECT 1`` succeeds."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(**_admin_kwargs(admin_url, "postgres")) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def provision(admin_url: str, role_password: str) -> PostgresServer:
    """Create (or reset) the role and a fresh database on an admin's server."""
    from urllib.parse import urlsplit

    from psycopg import sql

    port = urlsplit(admin_url).port or 5432
    server = PostgresServer(admin_url=admin_url, port=port, role_password=role_password)
    role = sql.Identifier(ROLE_NAME)
    server.admin_execute(
        sql.SQL(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {}) "
            "THEN CREATE ROLE {} LOGIN; END IF; END $$"
        ).format(sql.Literal(ROLE_NAME), role)
    )
    server.admin_execute(
        sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
            role, sql.Literal(role_password)
        )
    )
    # An existing database is kept: the admin DSN may name a server that is
    # not private to the tests. Tests that need an empty one create their own.
    if not server.database_exists(DATABASE_NAME):
        server.create_database(DATABASE_NAME)
    return server


def new_role_password() -> str:
    """Return a fresh password holding ``@ : / # % $`` and quotes."""
    return ROLE_PASSWORD_PREFIX + secrets.token_hex(8)


def start_postgres_server() -> PostgresServer:
    """Run initdb, start the server and provision the role and database."""
    cluster = init_cluster()
    try:
        cluster.start()
        wait_for_postgres(cluster.admin_url())
        server = provision(cluster.admin_url(), new_role_password())
    except BaseException:
        cluster.remove()
        raise
    server.cluster = cluster
    return server


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Yield a provisioned server: the admin DSN's, or a private one.

    A server named by ``SYNTHORG_TEST_PG_ADMIN_DSN`` is used as it is; else a
    private server is started here and removed when the block ends.
    """
    admin_url = os.environ.get(ADMIN_DSN_ENV)
    if admin_url:
        yield provision(admin_url, new_role_password())
        return
    server = start_postgres_server()
    try:
        yield server
    finally:
        assert server.cluster is not None
        server.cluster.remove()


# --- NATS ---------------------------------------------------------------------


def nats_binaries() -> dict[str, Path]:
    """Return the nats-server binaries present, keyed by their version."""
    candidates = [NATS_DEBIAN_BINARY, Path(sys.executable).parent / "nats-server"]
    found: dict[str, Path] = {}
    for binary in candidates:
        if not binary.is_file():
            continue
        result = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, check=False
        )
        match = re.search(r"v(\d+\.\d+)\.\d+", result.stdout + result.stderr)
        if result.returncode == 0 and match is not None:
            found[match.group(1)] = binary
    return found


@dataclass
class NatsServer:
    """A running nats-server process."""

    binary: Path
    port: int
    config_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    host: str = LOOPBACK

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"


def _wait_for_nats(server: NatsServer, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            raise ServerError(
                f"{server.binary} exited with code {server.process.returncode}:\n"
                + log_path.read_text(errors="replace")
            )
        try:
            with socket.create_connection((server.host, server.port), timeout=1) as s:
                s.settimeout(1)
                if s.recv(5) == b"INFO ":
                    s.sendall(b"PING\r\n")
                    buffer = b""
                    while b"PONG" not in buffer:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        buffer += chunk
                    if b"PONG" in buffer:
                        return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServerError(f"{server.binary} did not answer PING within {timeout}s")
        time.sleep(0.02)


@contextlib.contextmanager
def nats_server(
    binary: Path,
    *,
    max_payload: str = "16MB",
    max_pending: str = "64MB",
    timeout: float = _START_TIMEOUT,
) -> Iterator[NatsServer]:
    """Run ``binary`` with a rendered nats.conf until the block ends."""
    base_dir = Path(tempfile.mkdtemp(prefix="synthorg-nats-"))
    try:
        port = free_port()
        text = render_nats_conf(
            max_payload,
            max_pending,
            host=LOOPBACK,
            port=port,
            store_dir=str(base_dir / "js"),
        )
        # The product always publishes monitoring on 8222; a private server
        # moves it to a free port so that several servers can run at once.
        text = re.sub(r"(?m)^http_port: \d+$", f"http_port: {free_port()}", text)
        config_path = base_dir / "nats.conf"
        config_path.write_text(text, encoding="utf-8")
        log_path = base_dir / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(binary), "-c", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = NatsServer(
            binary=binary, port=port, config_path=config_path, process=process
        )
        try:
            _wait_for_nats(server, log_path, timeout)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
