"""The console's database sessions: every request runs as its operator.

Each request borrows a connection from a small pool and runs in one transaction that
begins as PostgREST's do::

    set local role authenticated;                       -- or enforcement_operator
    select set_config('request.jwt.claims', '<claims>', true);

(the static admin: ``set local role service_role``), so row-level security and
``tenancy.caller_tenants()`` decide what the operator sees, and the ``console`` schema's
functions (sql/migrations/20261203140100_console.sql) keep, of the fleet's private data,
only what their tenants reach. The console's login role must be allowed to take those
roles: a member of ``authenticator``, as PostgREST's login is (and of ``dragonfly_worker``
for its heartbeat and metrics).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from workers.console.auth import ADMIN_ROLE, USER_ROLES, Identity

STATEMENT_TIMEOUT = "10s"

HAS_CONSOLE = "select to_regprocedure('console.whoami()') is not null"


class ConsoleDatabase:
    """A pool of connections and the per-operator transaction around each request."""

    def __init__(self, url: str, *, max_size: int = 8, connect_timeout: int = 5) -> None:
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={
                "connect_timeout": connect_timeout,
                "application_name": "dragonfly-console",
            },
            open=False,
            name="console",
        )

    def open(self) -> None:
        self._pool.open(wait=True, timeout=30)

    def close(self) -> None:
        self._pool.close()

    def migrated(self) -> bool:
        with self._pool.connection() as conn:
            row = conn.execute(HAS_CONSOLE).fetchone()
            return bool(row and row[0])

    @contextmanager
    def session(self, identity: Identity) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside a transaction running as ``identity`` (committed on success,
        rolled back on an exception)."""
        role = identity.role
        if role not in USER_ROLES and role != ADMIN_ROLE:
            raise ValueError(f"no console session runs as {role!r}")
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            conn.execute(
                "select set_config('request.jwt.claims', %s, true),"
                " set_config('statement_timeout', %s, true)",
                (json.dumps(identity.claims) if identity.claims else "", STATEMENT_TIMEOUT),
            )
            yield conn


def rows(conn: psycopg.Connection[Any], query: str, params: Any = None) -> list[dict[str, Any]]:
    """All rows of ``query`` as dicts."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def one(conn: psycopg.Connection[Any], query: str, params: Any = None) -> dict[str, Any] | None:
    """The first row of ``query`` as a dict, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchone()
