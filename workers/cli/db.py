"""``dragonfly db``: migrate, status, url, stop."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workers.cli.common import CommandError, settings_and_url
from workers.db import embedded
from workers.db.connect import connect, redact
from workers.db.migrate import (
    MigrationError,
    default_migrations_dir,
    migrate,
    pgmq_installed,
    status,
)
from workers.settings import load_settings


def register(subparsers: Any) -> None:
    db = subparsers.add_parser("db", help="database lifecycle: migrate, status, url, stop")
    commands = db.add_subparsers(dest="db_command", required=True)

    p = commands.add_parser("migrate", help="apply pending migrations (installs PGMQ first)")
    p.set_defaults(func=cmd_migrate)

    p = commands.add_parser("status", help="list migrations and whether each is applied")
    p.set_defaults(func=cmd_status)

    p = commands.add_parser("url", help="print the database URL in use (password hidden)")
    p.set_defaults(func=cmd_url)

    p = commands.add_parser("stop", help="stop the embedded PostgreSQL if it runs")
    p.set_defaults(func=cmd_stop)


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


def cmd_stop(_args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.database_url:
        print("DATABASE_URL is set; there is no embedded server to stop", file=sys.stderr)
        return 0
    stopped = embedded.stop(settings.home)
    print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    return 0
