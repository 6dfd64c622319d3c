"""The real PostgreSQL server's data folder permission rule."""

from __future__ import annotations

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
