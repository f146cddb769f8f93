"""The migrator against a real PostgreSQL: idempotence, drift, failure, concurrency."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.harness import run_cli
from workers.db.migrate import MigrationError, default_migrations_dir, discover, migrate, status
from workers.job_kinds import KINDS


def applied_versions(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select version from supabase_migrations.schema_migrations order by version"
        ).fetchall()
    return [r[0] for r in rows]


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(default_migrations_dir(), target)
    return target


def test_migrate_empty_database_then_again_applies_nothing(empty_db_url: str) -> None:
    files = discover(default_migrations_dir())
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        first = migrate(conn, default_migrations_dir())
        second = migrate(conn, default_migrations_dir())
        queues = conn.execute("select queue_name from pgmq.meta order by 1").fetchall()
        record = conn.execute(
            "select name, statements, checksum from supabase_migrations.schema_migrations"
            " where version = %s",
            (files[0].version,),
        ).fetchone()
    assert first == [f.filename for f in files]
    assert second == []
    assert [q[0] for q in queues] == sorted(KINDS)
    assert record is not None
    name, statements, checksum = record
    assert name == files[0].name
    assert len(statements) >= 1
    assert checksum == files[0].checksum


def test_migrate_up_to_a_version_stops_there_and_the_rest_follows(empty_db_url: str) -> None:
    files = discover(default_migrations_dir())
    middle = files[len(files) // 2]
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        first = migrate(conn, default_migrations_dir(), up_to=middle.version)
        assert first == [f.filename for f in files if f.version <= middle.version]
        assert applied_versions(empty_db_url)[-1] == middle.version
        pending = [s for s in status(conn, default_migrations_dir()) if s.state == "pending"]
        later = [f.version for f in files if f.version > middle.version]
        assert [s.version for s in pending] == later
        # Up to the same version again: nothing; then the rest.
        assert migrate(conn, default_migrations_dir(), up_to=middle.version) == []
        rest = migrate(conn, default_migrations_dir())
    assert rest == [f.filename for f in files if f.version > middle.version]


def test_migrate_up_to_an_unknown_version_applies_nothing(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        with pytest.raises(MigrationError, match="no migration has version '20990101000000'"):
            migrate(conn, default_migrations_dir(), up_to="20990101000000")
        assert conn.execute("select to_regclass('public.plaintiffs')").fetchone() == (None,)


def test_queues_have_insert_notifications(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        triggers = conn.execute(
            "select c.relname, t.tgname from pg_trigger as t"
            " join pg_class as c on c.oid = t.tgrelid"
            " join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = 'pgmq' and c.relname like 'q\\_%' and not t.tgisinternal"
        ).fetchall()
        assert sorted(triggers) == [(f"q_{q}", "dragonfly_notify_insert") for q in sorted(KINDS)]
        # PGMQ's own (throttled, row-locking) notification is off on the job queues.
        throttled = conn.execute(
            "select count(*) from pgmq.notify_insert_throttle where queue_name = any(%s)",
            (list(KINDS),),
        ).fetchone()
        assert throttled == (0,)
        conn.execute('listen "pgmq.q_enrich.INSERT"')
        with psycopg.connect(fresh_db_url, autocommit=True) as sender:
            sender.execute("select pgmq.send('enrich', '{}'::jsonb)")
        notices = list(conn.notifies(timeout=5, stop_after=1))
    assert [n.channel for n in notices] == ["pgmq.q_enrich.INSERT"]


def test_changed_applied_migration_is_refused_naming_the_file(
    empty_db_url: str, tmp_path: Path
) -> None:
    directory = copy_migrations(tmp_path)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrate(conn, directory)
        victim = sorted(directory.glob("*.sql"))[-1]
        victim.write_text(victim.read_text() + "\n-- edited after the fact\n")
        with pytest.raises(MigrationError, match=victim.name):
            migrate(conn, directory)


def test_broken_migration_rolls_back_completely_and_names_the_statement(
    empty_db_url: str, tmp_path: Path
) -> None:
    directory = copy_migrations(tmp_path)
    (directory / "29991231235959_broken.sql").write_text(
        "create table public.half_done (id int);\n"
        "insert into public.half_done values (1);\n"
        "select * from public.no_such_table;\n"
    )
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        with pytest.raises(MigrationError) as info:
            migrate(conn, directory)
        message = str(info.value)
        leftover = conn.execute("select to_regclass('public.half_done')").fetchone()
        recorded = conn.execute(
            "select count(*) from supabase_migrations.schema_migrations where version = %s",
            ("29991231235959",),
        ).fetchone()
    assert "29991231235959_broken.sql" in message
    assert "line 3" in message
    assert "no_such_table" in message
    assert leftover == (None,)
    assert recorded == (0,)
    # the migrations before it stay applied
    assert len(applied_versions(empty_db_url)) == len(discover(default_migrations_dir()))


def test_two_concurrent_migrate_processes_apply_once(empty_db_url: str) -> None:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGONFLY_")}
    full_env["DATABASE_URL"] = empty_db_url
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "db", "migrate"],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    stdouts = sorted(out for out, _err in outputs)
    count = len(discover(default_migrations_dir()))
    assert any(f"{count} migration(s) applied" in s for s in stdouts), stdouts
    assert any("nothing to apply" in s for s in stdouts), stdouts
    assert len(applied_versions(empty_db_url)) == count


def test_status_reports_pending_then_applied(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        before = status(conn, default_migrations_dir())
        migrate(conn, default_migrations_dir())
        after = status(conn, default_migrations_dir())
    assert {s.state for s in before} == {"pending"}
    assert {s.state for s in after} == {"applied"}
    result = run_cli("db", "status", env={"DATABASE_URL": empty_db_url})
    assert result.returncode == 0, result.stderr
    assert "pgmq:       installed" in result.stdout
    assert "0 not applied" in result.stdout
