"""PostgreSQL restarted under running workers: every job done, none twice.

The server is one of the test's own (an embedded pgserver cluster in a temporary
directory), never the shared one: the test stops and starts it with pg_ctl.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.harness import ensure_worker_login
from tests.runtime.handlers import SCHEMA_SQL
from tests.runtime.support import (
    WorkerProcess,
    completed,
    effects_by_key,
    enqueue,
    queue_length,
    wait_until,
)
from workers.db.migrate import default_migrations_dir, migrate

pytestmark = pytest.mark.slow


class OwnServer:
    """A pgserver cluster that this test may stop and start."""

    def __init__(self, base: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            self.pgdata = base / "pgdata"
            self.server = pgserver.get_server(self.pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
        self.socket_dir = self.server.get_postmaster_info().socket_dir
        self.url = str(self.server.get_uri())

    def _pg_ctl(self, args: list[str]) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

            user = "pgserver" if os.geteuid() == 0 else None  # as pgserver runs it
            pg_ctl(args, pgdata=self.pgdata, user=user, timeout=60)

    def stop(self) -> None:
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start(self) -> None:
        # The options pgserver itself starts the cluster with: no TCP, its socket dir.
        log = str(self.pgdata / "log")
        self._pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", log, "start"])

    def close(self) -> None:
        self.server.cleanup()


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    base = Path(tempfile.mkdtemp(prefix="dragonfly-restart-", dir="/tmp"))
    base.chmod(0o755)  # as root, postgres runs as the pgserver user
    server = OwnServer(base)
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            migrate(conn, default_migrations_dir())
            conn.execute(SCHEMA_SQL)
        ensure_worker_login(server.url)  # the workers log in as a member of dragonfly_worker
        yield server
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


def test_workers_ride_out_a_postgresql_restart(own_server: OwnServer, tmp_path: Path) -> None:
    env = {"DRAGONFLY_BATCH_SIZE": "5", "DRAGONFLY_CONNECT_TIMEOUT": "2"}
    workers = [
        WorkerProcess(own_server.url, tmp_path, concurrency=2, env=env, name=f"w{i}")
        for i in range(2)
    ]
    try:
        for w in workers:
            w.wait_ready(timeout=30)
        keys = [f"before-{i}" for i in range(120)]
        with psycopg.connect(own_server.url, autocommit=True) as conn:
            for key in keys:
                enqueue(conn, key, {"hold": 0.02})
            wait_until(lambda: len(completed(conn)) >= 20, timeout=30, what="20 jobs done")

        own_server.stop()  # mid-stream: batches in flight die with their connections
        for w in workers:
            w.wait_for("database_unavailable", timeout=30)
        own_server.start()

        with psycopg.connect(own_server.url, autocommit=True) as conn:
            for w in workers:
                w.wait_for("listener_connected", reconnected=True, timeout=30)
            # Enqueued after the restart: the re-established LISTEN wakes the workers.
            late = [f"after-{i}" for i in range(20)]
            for key in late:
                enqueue(conn, key)
            wait_until(
                lambda: len(completed(conn)) == len(keys) + len(late),
                timeout=60,
                what="every job done",
            )
            assert effects_by_key(conn) == dict.fromkeys(keys + late, 1)
            assert queue_length(conn) == 0
            assert conn.execute("select count(*) from dragonfly.dead_letters").fetchone() == (0,)

        for w in workers:
            assert w.proc.poll() is None, w.output()  # no crash, no restart needed
            assert w.events("database_reconnected"), w.output()
            w.terminate()
        for w in workers:
            assert w.wait(timeout=30) == 0
    finally:
        for w in workers:
            w.close()
