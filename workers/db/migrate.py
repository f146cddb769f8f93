"""Apply sql/migrations/*.sql and report their state.

Each file is applied in its own transaction, statement by statement (so a
failure can name the statement), and recorded in
``supabase_migrations.schema_migrations`` exactly as the Supabase CLI records
it (version, name, statements) plus a checksum of the file. A later
``supabase db push`` therefore sees these migrations as applied.

Concurrent runs are serialised by a session advisory lock: the second process
waits, then finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from workers.db.sqlsplit import split_statements

# Arbitrary but fixed: "dragonfly migrate" as a 63-bit advisory lock key.
MIGRATION_LOCK_KEY = 0x64726D6967726174
_FILE_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")

LogFn = Callable[[str], None]


class MigrationError(Exception):
    """A migration could not be applied; the message names the file."""


@dataclass(frozen=True, slots=True)
class MigrationFile:
    """One file of the migrations directory."""

    version: str
    name: str
    path: Path
    content: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True, slots=True)
class MigrationState:
    """A migration as the database and the directory see it."""

    version: str
    name: str
    state: str  # applied | pending | changed | missing-file


def default_migrations_dir() -> Path:
    """The checkout's sql/migrations, or the copy bundled in the wheel."""
    checkout = Path(__file__).resolve().parents[2] / "sql" / "migrations"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("workers") / "_sql" / "migrations"))


def discover(directory: Path) -> list[MigrationFile]:
    """Migration files in file-name order; a misnamed .sql file is an error."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    files: list[MigrationFile] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path.name}: migration names must look like YYYYMMDDHHMMSS_snake_name.sql"
            )
        files.append(
            MigrationFile(
                version=match["version"],
                name=match["name"],
                path=path,
                content=path.read_text(encoding="utf-8"),
            )
        )
    versions = [f.version for f in files]
    duplicates = {v for v in versions if versions.count(v) > 1}
    if duplicates:
        raise MigrationError(f"two migrations share version {min(duplicates)}")
    return files


_HISTORY_DDL = (
    "create schema if not exists supabase_migrations",
    "create table if not exists supabase_migrations.schema_migrations"
    " (version text not null primary key)",
    "alter table supabase_migrations.schema_migrations add column if not exists statements text[]",
    "alter table supabase_migrations.schema_migrations add column if not exists name text",
    # Ours, beside the Supabase CLI's columns: what was applied, and when.
    "alter table supabase_migrations.schema_migrations add column if not exists checksum text",
    "alter table supabase_migrations.schema_migrations"
    " add column if not exists applied_at timestamptz default now()",
)


def _ensure_history(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        for ddl in _HISTORY_DDL:
            conn.execute(ddl)


def _applied(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, str | None]]:
    exists = conn.execute(
        "select to_regclass('supabase_migrations.schema_migrations') is not null"
    ).fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute(
        "select version, coalesce(name, ''), checksum from supabase_migrations.schema_migrations"
    ).fetchall()
    return {str(v): (str(n), c) for v, n, c in rows}


@contextmanager
def _migration_lock(conn: psycopg.Connection[Any]) -> Iterator[None]:
    conn.execute("select pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    try:
        yield
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def pgmq_installed(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("select to_regclass('pgmq.meta') is not null").fetchone()
    return bool(row and row[0])


def install_pgmq(conn: psycopg.Connection[Any], log: LogFn) -> str:
    """Install PGMQ: the server's extension when offered, else the bundled SQL."""
    if pgmq_installed(conn):
        return "present"
    offered = conn.execute(
        "select exists (select 1 from pg_available_extensions where name = 'pgmq')"
    ).fetchone()
    with conn.transaction():
        if offered and offered[0]:
            conn.execute("create extension if not exists pgmq")
            log("installed PGMQ with CREATE EXTENSION pgmq")
            return "extension"
        from pgmq.install import get_embedded_install_sql, get_embedded_sql_version

        version = str(get_embedded_sql_version())
        conn.execute(get_embedded_install_sql())
        conn.execute(
            sql.SQL("comment on schema pgmq is {}").format(
                sql.Literal(f"PGMQ {version}, installed from the SQL bundled with the pgmq package")
            )
        )
        log(f"installed PGMQ {version} from the bundled SQL")
        return "bundled"


def _apply_file(conn: psycopg.Connection[Any], migration: MigrationFile) -> None:
    try:
        statements = split_statements(migration.content)
    except ValueError as exc:
        raise MigrationError(f"{migration.filename}: cannot split into statements: {exc}") from None
    try:
        with conn.transaction():
            for stmt in statements:
                try:
                    conn.execute(stmt.text)
                except psycopg.Error as exc:
                    first_line = stmt.text.strip().splitlines()[0][:120]
                    diag = exc.diag.message_primary or str(exc).splitlines()[0]
                    raise MigrationError(
                        f"{migration.filename}: statement at line {stmt.line} failed"
                        f" ({exc.sqlstate}): {diag} -- in: {first_line}"
                    ) from exc
            conn.execute(
                "insert into supabase_migrations.schema_migrations"
                " (version, name, statements, checksum) values (%s, %s, %s, %s)",
                (
                    migration.version,
                    migration.name,
                    [s.text for s in statements],
                    migration.checksum,
                ),
            )
    except psycopg.Error as exc:  # e.g. the commit itself failed (deferred constraint)
        raise MigrationError(f"{migration.filename}: {exc}") from exc


def migrate(
    conn: psycopg.Connection[Any],
    directory: Path,
    *,
    log: LogFn = lambda _msg: None,
    up_to: str | None = None,
) -> list[str]:
    """Apply every pending migration; return the file names applied.

    ``up_to`` (a version, ``YYYYMMDDHHMMSS``) stops after that migration: later files are
    left pending, as if they were not there yet (a migration test builds the schema as
    it was before a change, seeds it, then applies the rest). It must name a file of the
    directory. ``conn`` must be in autocommit mode: each file gets its own transaction.
    """
    if not conn.autocommit:
        raise ValueError("migrate() needs an autocommit connection")
    files = discover(directory)
    if up_to is not None:
        if up_to not in {f.version for f in files}:
            raise MigrationError(f"no migration has version {up_to!r} in {directory}")
        files = [f for f in files if f.version <= up_to]
    applied_now: list[str] = []
    with _migration_lock(conn):
        install_pgmq(conn, log)
        _ensure_history(conn)
        applied = _applied(conn)
        for migration in files:
            record = applied.get(migration.version)
            if record is not None:
                _name, checksum = record
                if checksum is not None and checksum != migration.checksum:
                    raise MigrationError(
                        f"{migration.filename} was changed after it was applied"
                        " (checksum differs); add a new migration instead of editing it"
                    )
                continue
            _apply_file(conn, migration)
            applied_now.append(migration.filename)
            log(f"applied {migration.filename}")
    return applied_now


def status(conn: psycopg.Connection[Any], directory: Path) -> list[MigrationState]:
    """Every migration known to the directory or the database, with its state."""
    files = {f.version: f for f in discover(directory)}
    applied = _applied(conn)
    states: list[MigrationState] = []
    for version in sorted(set(files) | set(applied)):
        file = files.get(version)
        record = applied.get(version)
        if file is None:
            assert record is not None
            states.append(MigrationState(version, record[0], "missing-file"))
        elif record is None:
            states.append(MigrationState(version, file.name, "pending"))
        elif record[1] is not None and record[1] != file.checksum:
            states.append(MigrationState(version, file.name, "changed"))
        else:
            states.append(MigrationState(version, file.name, "applied"))
    return states
