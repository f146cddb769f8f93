"""The real-PostgreSQL test harness behind tests/conftest.py.

Where the server comes from:
- ``TEST_DATABASE_URL``: an admin URL (CI points it at the machine's PostgreSQL 15);
- ``DRAGONFLY_TEST_BACKEND=testcontainers``: a PGMQ-enabled container (needs Docker);
- otherwise: an embedded pgserver cluster under ``.dragonfly-test/`` in the checkout.

Isolation: the session migrates one *template* database. SQL tests run on a
clone of it inside a transaction that is rolled back; tests that must commit,
LISTEN or start processes get a clone of their own (``CREATE DATABASE ...
TEMPLATE``), dropped afterwards.

Worker, listener and scheduler processes log in as the session's own login role,
a member of ``dragonfly_worker`` (:func:`worker_url`), the way README and
docs/operations.md deploy the fleet; never as the admin.

The embedded server is stopped when the session ends if the session started it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from workers.db.migrate import default_migrations_dir, migrate

REPO = Path(__file__).resolve().parents[1]
EMBEDDED_HOME = REPO / ".dragonfly-test"
PREFIX = "df_t_"

WORKER_LOGIN = f"{PREFIX}{os.getpid()}_worker"
"""The session's login role for fleet processes: a member of dragonfly_worker, nothing more."""
_WORKER_PASSWORD = secrets.token_hex(16)


def _is_url(conninfo: str) -> bool:
    return urlsplit(conninfo).scheme in ("postgres", "postgresql")


def with_params(conninfo: str, **params: str) -> str:
    """``conninfo`` with libpq parameters set (replacing any of the same name), in its form.

    A ``postgresql://`` URL stays a URL: the parameters join its query string, which
    may already hold some (the embedded server's ``?host=/socket/dir``); a
    ``key=value`` string stays one."""
    if _is_url(conninfo):
        parts = urlsplit(conninfo)
        query = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params
        ]
        query += params.items()
        return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    info.update(params)
    return psycopg.conninfo.make_conninfo(**info)


def url_with_db(url: str, dbname: str) -> str:
    """The same server URL pointing at another database (URL form is kept)."""
    if _is_url(url):
        return urlunsplit(urlsplit(url)._replace(path="/" + dbname))
    return with_params(url, dbname=dbname)


def worker_url(url: str) -> str:
    """``url`` (a test database's admin URL) logged in as :data:`WORKER_LOGIN` instead.

    What every worker, listener and scheduler process of the tests connects with; the
    role exists once :func:`ensure_worker_login` ran on the server (the session's
    template database does that)."""
    return with_params(url, user=WORKER_LOGIN, password=_WORKER_PASSWORD)


def ensure_worker_login(admin_url: str) -> None:
    """Create :data:`WORKER_LOGIN` on the server of ``admin_url`` (migrated: the
    dragonfly_worker role exists) unless it is there."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "select 1 from pg_roles where rolname = %s", (WORKER_LOGIN,)
        ).fetchone()
        if exists is None:
            conn.execute(
                sql.SQL("create role {} login password {} in role dragonfly_worker").format(
                    sql.Identifier(WORKER_LOGIN), sql.Literal(_WORKER_PASSWORD)
                )
            )


class Backend:
    """Starts (or finds) the server and hands out databases on it."""

    def __init__(self, embedded_home: Path = EMBEDDED_HOME) -> None:
        self._container: Any = None
        self._embedded_home = embedded_home
        self._started_embedded = False
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

        # Stopped at the end only if this session started it: a developer's own
        # session (or a second pytest) may be using a server that was already up.
        self._started_embedded = not embedded_running(self._embedded_home)
        return embedded_url(self._embedded_home)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def _cleanup_leftovers(self) -> None:
        """Drop databases left by test sessions whose process is gone."""
        with self.admin() as conn:
            names = conn.execute(
                "select datname from pg_database where datname like %s", (PREFIX + "%",)
            ).fetchall()
            for (name,) in names:
                if _left_behind(name):
                    conn.execute(f'drop database if exists "{name}" with (force)')
            roles = conn.execute(
                "select rolname from pg_roles where rolname like %s", (PREFIX + "%",)
            ).fetchall()
            for (name,) in roles:
                if _left_behind(name):
                    conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))

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
        ensure_worker_login(self.admin_url)
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
        with self.admin() as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(WORKER_LOGIN)))
        if self._container is not None:
            self._container.stop()
        if self._started_embedded and not self._other_sessions():
            from workers.db.embedded import stop

            stop(self._embedded_home)

    def _other_sessions(self) -> bool:
        """Whether a test session of another live process still has databases here."""
        with self.admin() as conn:
            names = conn.execute(
                "select datname from pg_database where datname like %s", (PREFIX + "%",)
            ).fetchall()
        own = f"{PREFIX}{os.getpid()}_"
        return any(not n.startswith(own) and not _left_behind(n) for (n,) in names)


def embedded_running(home: Path) -> bool:
    """Whether the embedded server of ``home`` runs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from pgserver.utils import PostmasterInfo

        from workers.db.embedded import data_dir

        info = PostmasterInfo.read_from_pgdata(data_dir(home))
    return info is not None and bool(info.is_running())


def _left_behind(name: str) -> bool:
    """A database or role of a test session whose process is gone."""
    try:
        pid = int(name.split("_")[2])
    except (IndexError, ValueError):
        return False
    return not _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: this one's without any DRAGONFLY_* or
    DATABASE_* setting of the developer's, plus ``env``."""
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DRAGONFLY_", "DATABASE_"))
    }
    full_env.update(env or {})
    return full_env


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real ``dragonfly`` CLI in a subprocess (acceptance tests)."""
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env=child_env(env),
        cwd=cwd or str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
