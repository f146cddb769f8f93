"""A freshly migrated throwaway database for a benchmark, dropped afterwards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from workers.db.migrate import default_migrations_dir, migrate


@contextmanager
def scratch_database(
    admin_url: str, prefix: str, keep: bool = False, migrations: Path | None = None
) -> Iterator[str]:
    """Create and migrate a database on the server of ``admin_url`` (with the project's
    migrations, or those of the ``migrations`` directory); yield its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, migrations or default_migrations_dir())
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
                )


def as_url(conninfo: str) -> str:
    """A postgresql:// URL for DATABASE_URL (:func:`scratch_database` yields a conninfo)."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        return conninfo
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = quote(str(info.get("user") or ""), safe="")
    password = info.get("password")
    auth = f"{user}:{quote(str(password), safe='')}@" if password else (f"{user}@" if user else "")
    host = info.get("host") or "localhost"
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{auth}{host}{port}/{quote(str(info.get('dbname') or ''), safe='')}"
