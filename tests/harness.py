"""The real-PostgreSQL test harness behind tests/conftest.py.

Where the server comes from:
- ``TEST_DATABASE_URL``: an admin URL (CI points it at the machine's PostgreSQL 15);
- ``DRAGONFLY_TEST_BACKEND=testcontainers``: a PGMQ-enabled container (needs Docker);
- otherwise: an embedded pgserver cluster under ``.dragonfly-test/`` in the checkout.

Isolation: the session migrates one *template* database. SQL tests run on a
clone of it inside a transaction that is rolled back; tests that must commit,
LISTEN or start processes get a clone of their own (``CREATE DATABASE ...
TEMPLATE``), dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from workers.db.migrate import default_migrations_dir, migrate

REPO = Path(__file__).resolve().parents[1]
PREFIX = "df_t_"


def url_with_db(url: str, dbname: str) -> str:
    """The same server URL pointing at another database (URL form is kept)."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return urlunsplit(parts._replace(path="/" + dbname))
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


class Backend:
    """Starts (or finds) the server and hands out databases on it."""

    def __init__(self) -> None:
        self._container: Any = None
        self.admin_url = self._admin_url()
        self._cleanup_leftovers()

    def _admin_url(self) -> str:
        explicit = os.environ.get("TEST_DATABASE_URL")
        if explicit:
            return explicit
        if os.environ.get("DRAGONFLY_TEST_BACKEND") == "testcontainers":
            from testcontainers.postgres import PostgresContainer

            image = os.environ.get("DRAGONFLY_TEST_IMAGE", "ghcr.io/pgmq/pg17-pgmq:latest")
            self._container = PostgresContainer(image, username="postgres", password="postgres")
            self._container.start()
            return str(self._container.get_connection_url(driver=None))
        from workers.db.embedded import embedded_url

        return embedded_url(REPO / ".dragonfly-test")

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def _cleanup_leftovers(self) -> None:
        """Drop databases left by test sessions whose process is gone."""
        with self.admin() as conn:
            names = conn.execute(
                "select datname from pg_database where datname like %s", (PREFIX + "%",)
            ).fetchall()
            for (name,) in names:
                try:
                    pid = int(name.split("_")[2])
                except (IndexError, ValueError):
                    continue
                if not _pid_alive(pid):
                    conn.execute(f'drop database if exists "{name}" with (force)')

    def new_name(self, role: str) -> str:
        return f"{PREFIX}{os.getpid()}_{role}_{secrets.token_hex(4)}"

    def create_empty(self, role: str = "e") -> str:
        name = self.new_name(role)
        with self.admin() as conn:
            conn.execute(f'create database "{name}"')
        return name

    def create_migrated(self) -> str:
        name = self.create_empty("tmpl")
        with psycopg.connect(url_with_db(self.admin_url, name), autocommit=True) as conn:
            migrate(conn, default_migrations_dir())
        return name

    def clone(self, template: str, role: str = "c") -> str:
        name = self.new_name(role)
        with self.admin() as conn:
            conn.execute(f'create database "{name}" template "{template}"')
        return name

    def drop(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')

    def url(self, name: str) -> str:
        return url_with_db(self.admin_url, name)

    def close(self) -> None:
        if self._container is not None:
            self._container.stop()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real ``dragonfly`` CLI in a subprocess (acceptance tests)."""
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DRAGONFLY_", "DATABASE_"))
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env=full_env,
        cwd=cwd or str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
