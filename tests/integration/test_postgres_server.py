"""The real PostgreSQL server's data folder permission rule."""

from __future__ import annotations

import os
import pwd
import stat

import pytest

from tests.capabilities import require
from tests.integration import servers

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_data_folder_mode_0755_refused_0700_starts() -> None:
    available, reason = servers.pg_available(allow_admin_dsn=False)
    require("postgres", available, reason)
    cluster = servers.init_cluster()
    try:
        cluster.data_dir.chmod(0o755)
        with pytest.raises(servers.ServerError) as caught:
            cluster.start()
        assert "invalid permissions" in str(caught.value)
        cluster.data_dir.chmod(0o700)
        cluster.start()
        servers.wait_for_postgres(cluster.admin_url())
    finally:
        cluster.remove()


def test_fresh_data_folder_private_to_postgres() -> None:
    available, reason = servers.pg_available(allow_admin_dsn=False)
    require("postgres", available, reason)
    cluster = servers.init_cluster()
    try:
        info = cluster.data_dir.stat()
        assert stat.S_IMODE(info.st_mode) == 0o700
        if os.geteuid() == 0:
            assert pwd.getpwuid(info.st_uid).pw_name == servers.PG_OS_USER
        hba = (cluster.data_dir / "pg_hba.conf").read_text(encoding="utf-8")
        rules = [line for line in hba.splitlines() if line and line[0] != "#"]
        assert rules
        assert all(line.split()[-1] == "scram-sha-256" for line in rules)
    finally:
        cluster.remove()
