"""``dragonfly db``: migrate, status, url, stop."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from workers.cli.common import CommandError, settings_and_url
from workers.db import embedded, guard
from workers.db.connect import connect, redact
from workers.db.migrate import (
    MigrationError,
    default_migrations_dir,
    migrate,
    pgmq_installed,
    status,
)
from workers.fleet import lock as fleet_lock
from workers.settings import ConfigError, Settings, load_settings


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database lifecycle: migrate, status, url, stop, guard")
    commands = db.add_subparsers(dest="db_command", required=True)

    p = commands.add_parser("migrate", help="apply pending migrations (installs PGMQ first)")
    p.set_defaults(func=cmd_migrate)

    p = commands.add_parser("status", help="list migrations and whether each is applied")
    p.set_defaults(func=cmd_status)

    p = commands.add_parser("url", help="print the database URL in use (password hidden)")
    p.set_defaults(func=cmd_url)

    p = commands.add_parser(
        "stop",
        help="stop the embedded PostgreSQL if it runs and no fleet uses it",
        description="Stop the embedded PostgreSQL. Refuses while a `dragonfly up` on it runs"
        " (its lock in DRAGONFLY_HOME is held) or a dragonfly process is connected to it.",
    )
    p.add_argument(
        "--force", action="store_true", help="stop it even while a fleet or process uses it"
    )
    p.set_defaults(func=cmd_stop)

    p = commands.add_parser(
        "guard",
        help="compare the database with the schema manifest; exit 1 on drift",
        description=(
            "Compare the live database with sql/schema_manifest.json (tables, columns, views, "
            "functions, enums, RLS, policies, grants, queues; retired RPCs must not exist). "
            "Exit 0 when they match, 1 on drift. --write regenerates the manifest instead."
        ),
    )
    p.add_argument("--manifest", type=Path, default=None, help="manifest path (default: bundled)")
    p.add_argument("--write", action="store_true", help="write the manifest from the database")
    p.add_argument(
        "--scratch",
        action="store_true",
        help="use a freshly migrated throwaway database on the same server instead",
    )
    p.set_defaults(func=cmd_guard)


def cmd_migrate(_args: argparse.Namespace) -> int:
    settings, url = settings_and_url()
    directory = settings.migrations_dir or default_migrations_dir()
    with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
        try:
            applied = migrate(conn, directory, log=lambda msg: print(msg, flush=True))
        except MigrationError as exc:
            raise CommandError(str(exc)) from None
    if applied:
        print(f"{len(applied)} migration(s) applied")
    else:
        print("database is up to date; nothing to apply")
    return 0


def cmd_status(_args: argparse.Namespace) -> int:
    settings, url = settings_and_url()
    directory = settings.migrations_dir or default_migrations_dir()
    with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
        try:
            states = status(conn, directory)
        except MigrationError as exc:
            raise CommandError(str(exc)) from None
        server = conn.execute("select current_setting('server_version')").fetchone()
        has_pgmq = pgmq_installed(conn)
        queues: list[tuple[Any, ...]] = []
        if has_pgmq:
            queues = conn.execute("select queue_name from pgmq.meta order by 1").fetchall()
    print(f"database:   {redact(url)}")
    print(f"server:     PostgreSQL {server[0] if server else '?'}")
    print(f"pgmq:       {'installed' if has_pgmq else 'not installed'}")
    print(f"queues:     {', '.join(q[0] for q in queues) or '-'}")
    print()
    width = max((len(s.name) for s in states), default=4)
    for s in states:
        print(f"{s.version}  {s.name:<{width}}  {s.state}")
    pending = sum(1 for s in states if s.state != "applied")
    print()
    print(f"{len(states) - pending} applied, {pending} not applied")
    return 0 if not any(s.state == "changed" for s in states) else 1


def cmd_url(_args: argparse.Namespace) -> int:
    _settings, url = settings_and_url()
    print(redact(url))
    return 0


# How long `db stop` waits for the connections of commands that have just exited to go.
IN_USE_GRACE_S = 3.0

# Connections of dragonfly processes (the CLI names them by command, see workers.cli).
DRAGONFLY_CLIENTS = """
select application_name, count(*) from pg_stat_activity
 where application_name like 'dragonfly-%' and pid <> pg_backend_pid()
 group by 1 order by 1
"""


def _in_use(settings: Settings) -> str | None:
    """Why the embedded server must not be stopped now, or None."""
    pid = fleet_lock.holder(fleet_lock.lock_path(settings))
    if pid is not None:
        return f"a fleet (`dragonfly up`, pid {pid or '?'}) is using it; stop the fleet first"
    url = embedded.running_url(settings.home)
    if url is None:
        return None
    try:
        with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
            clients = conn.execute(DRAGONFLY_CLIENTS).fetchall()
            # The backend of a command that has just exited (`db status && db stop`) stays
            # in pg_stat_activity for a moment after its client is gone: give it that moment.
            deadline = time.monotonic() + IN_USE_GRACE_S
            while clients and time.monotonic() < deadline:
                time.sleep(0.1)
                clients = conn.execute(DRAGONFLY_CLIENTS).fetchall()
    except ConfigError:
        return None  # not accepting connections: nothing of ours is using it
    if not clients:
        return None
    names = ", ".join(f"{name} ({n})" for name, n in clients)
    return f"dragonfly processes are connected to it: {names}; stop them first"


def cmd_stop(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.database_url:
        print("DATABASE_URL is set; there is no embedded server to stop", file=sys.stderr)
        return 0
    reason = None if args.force else _in_use(settings)
    if reason:
        raise CommandError(
            f"not stopping the embedded PostgreSQL under {settings.home}: {reason}, or pass --force"
        )
    stopped = embedded.stop(settings.home)
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0


def cmd_guard(args: argparse.Namespace) -> int:
    settings, url = settings_and_url()
    manifest_path: Path = args.manifest or guard.default_manifest_path()
    migrations = settings.migrations_dir or default_migrations_dir()
    try:
        with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
            if args.scratch:
                with guard.scratch_database(conn, url, migrations) as scratch:
                    return _guard(scratch, args.write, manifest_path)
            return _guard(conn, args.write, manifest_path)
    except (guard.GuardError, MigrationError) as exc:
        raise CommandError(str(exc), exit_code=2) from None


def _guard(conn: Any, write: bool, manifest_path: Path) -> int:
    if write:
        manifest = guard.build_manifest(conn)
        guard.write_manifest(manifest_path, manifest)
        facts, schemas = len(manifest.facts), len(manifest.schemas)
        print(f"wrote {manifest_path}: {facts} facts in {schemas} schemas")
        return 0
    manifest = guard.load_manifest(manifest_path)
    drift = guard.check(conn, manifest)
    if not drift:
        print(f"schema matches {manifest_path}: {len(manifest.facts)} facts checked")
        return 0
    print(f"schema drift: {len(drift)} difference(s) from {manifest_path}")
    for item in drift:
        print(f"  {item.describe()}")
    print("fix the database, or regenerate the manifest: dragonfly db guard --write --scratch")
    return 1
