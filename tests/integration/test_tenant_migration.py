"""Migrating a database that already holds a book into tenants loses nothing and puts every
row into the default tenant.

The database is built up to the migration before ``20261203090000_tenants.sql``, a book is
seeded through the RPCs of that schema (an import, enforcement cases with events, history,
actions, documents, tasks, payments, the overview rollup), every table of the project's
schemas is counted, the remaining migrations are applied, and everything is counted again.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from workers.db.migrate import default_migrations_dir, discover, migrate

Conn = psycopg.Connection[Any]

TENANTS_MIGRATION = "20261203090000"
DEFAULT_TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")
# Not the project's data: the migration history grows with every migration.
NOT_COUNTED = {"supabase_migrations"}
# The rows of the book that every tenant-carrying table must hold after the migration.
BOOK_TABLES = (
    "public.plaintiffs",
    "public.judgments",
    "judgments.cases",
    "public.enforcement_cases",
)

ROWS = [
    # plaintiff, debtor, case number, amount
    ("Acme Funding LLC", "John Smith", "CV-1001", "1200.50"),
    ("Acme Funding, L.L.C.", "Widget Corp", "CV-1002", "880"),
    ("Hudson Realty", "Jane Doe", "CV-1003", "15000"),
    ("Hudson Realty", "Mark Roe", "CV-1004", "420.10"),
    ("Bay Ridge Dental", "Ann Poe", "CV-1005", "99.99"),
]


def version_before(version: str) -> str:
    versions = [f.version for f in discover(default_migrations_dir())]
    return versions[versions.index(version) - 1]


def rpc(conn: Conn, name: str, payload: dict[str, Any]) -> Any:
    row = conn.execute(f"select public.{name}(%s)", (Jsonb(payload),)).fetchone()
    assert row is not None
    return row[0]


def seed_book(conn: Conn) -> list[Any]:
    """A book as the pre-tenant schema knew it; returns the enforcement case ids."""
    run_id = conn.execute(
        "insert into intake.simplicity_import_runs (source_file) values ('book.csv') returning id"
    ).fetchone()[0]  # type: ignore[index]
    for line, (plaintiff, debtor, number, amount) in enumerate(ROWS, start=2):
        conn.execute(
            "insert into intake.simplicity_import_rows (run_id, line_number, plaintiff_name,"
            " debtor_name, case_number, judgment_amount, plaintiff_email)"
            " values (%s, %s, %s, %s, %s, %s, 'ops@acme.example')",
            (run_id, line, plaintiff, debtor, number, amount),
        )
    outcome = conn.execute("select public.process_simplicity_imports(%s)", (run_id,)).fetchone()
    assert outcome is not None
    assert outcome[0]["imported_rows"] == len(ROWS), outcome

    cases = []
    judgments = conn.execute("select id, plaintiff_id from public.judgments order by id").fetchall()
    for i, (judgment_id, plaintiff_id) in enumerate(judgments):
        case_id = rpc(
            conn, "open_enforcement_case", {"judgment_id": str(judgment_id), "created_by": "seed"}
        )
        cases.append(case_id)
        case = str(case_id)
        rpc(conn, "set_enforcement_stage", {"case_id": case, "stage": "asset_search"})
        rpc(conn, "log_enforcement_event", {"case_id": case, "event_kind": "note_added"})
        if i % 2 == 0:
            rpc(conn, "queue_enforcement_action", {"case_id": case, "action_type": "marshal"})
            rpc(conn, "record_enforcement_payment", {"case_id": case, "amount": "10.00"})
        else:
            rpc(
                conn,
                "issue_subpoena",
                {"case_id": case, "recipient": "Bank", "document_path": f"s/{i}.pdf"},
            )
        conn.execute(
            "insert into public.plaintiff_tasks (plaintiff_id, enforcement_case_id, kind)"
            " values (%s, %s, 'review')",
            (plaintiff_id, case_id),
        )
    conn.execute("select public.refresh_enforcement_metrics()")
    return cases


def project_tables(conn: Conn) -> list[str]:
    rows = conn.execute(
        """
        select n.nspname || '.' || c.relname
          from pg_catalog.pg_class as c
          join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
         where c.relkind in ('r', 'p')
           and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
           and n.nspname <> all (%s)
         order by 1
        """,
        (list(NOT_COUNTED),),
    ).fetchall()
    return [r[0] for r in rows]


def count_all(conn: Conn) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in project_tables(conn):
        schema, name = table.split(".", 1)
        query = sql.SQL("select count(*) from {}.{}").format(
            sql.Identifier(schema), sql.Identifier(name)
        )
        row = conn.execute(query).fetchone()
        assert row is not None
        counts[table] = int(row[0])
    return counts


def test_a_book_migrates_into_the_default_tenant_whole(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrate(conn, default_migrations_dir(), up_to=version_before(TENANTS_MIGRATION))
        assert conn.execute("select to_regclass('public.tenants')").fetchone() == (None,)
        with conn.transaction():
            cases = seed_book(conn)
        before = count_all(conn)
        for table in (*BOOK_TABLES, "public.enforcement_events", "public.enforcement_history",
                      "public.enforcement_actions", "public.enforcement_documents",
                      "public.plaintiff_tasks", "public.enforcement_overview_rollup",
                      "public.entities", "intake.simplicity_import_runs"):  # fmt: skip
            assert before[table] > 0, table

        applied = migrate(conn, default_migrations_dir())
        assert applied[0].startswith(TENANTS_MIGRATION)
        after = count_all(conn)

        # Nothing lost, nothing added, in any table that was there; the new ones hold the
        # default tenant and nothing else (no members; later migrations' tables empty).
        assert {t: n for t, n in after.items() if t in before} == before
        new = {t: n for t, n in after.items() if t not in before}
        assert {"auth.users", "public.tenant_members", "public.tenants"} <= set(new)
        assert new.pop("public.tenants") == 1
        # The overview's day buckets (20261204100000) are derived from the cases, like the
        # totals: filled from the book by the migration, and exact.
        for derived in (
            "public.enforcement_overview_days",
            "public.enforcement_overview_days_deltas",
        ):
            new.pop(derived)
        assert conn.execute(
            "select count(*) from enforcement_private.overview_days_drift()"
        ).fetchone() == (0,)
        assert set(new.values()) == {0}, new

        # Every row that carries a tenant is in the default tenant.
        carriers = conn.execute(
            "select table_schema || '.' || table_name from information_schema.columns"
            " where column_name = 'tenant_id' and table_schema <> all (%s)"
            " and table_name in (select table_name from information_schema.tables"
            "                     where table_type = 'BASE TABLE')"
            " order by 1",
            (list(NOT_COUNTED),),
        ).fetchall()
        carrying = {r[0] for r in carriers}
        assert set(BOOK_TABLES) | {"intake.simplicity_import_runs"} <= carrying
        for table in sorted(carrying):
            schema, name = table.split(".", 1)
            query = sql.SQL(
                # A null tenant is a scope of every tenant (an alert rule's), never a row
                # of another tenant.
                "select count(*), count(*) filter (where tenant_id <> %s) from {}.{}"
            ).format(sql.Identifier(schema), sql.Identifier(name))
            total, elsewhere = conn.execute(query, (DEFAULT_TENANT,)).fetchone()  # type: ignore[misc]
            assert elsewhere == 0, table
            assert total == after[table], table

        # And the default tenant's operator, signed in, sees the whole book.
        operator = uuid.uuid4()
        conn.execute(
            "insert into auth.users (id, email) values (%s, 'ops@example.com')", (operator,)
        )
        conn.execute(
            "insert into public.tenant_members (tenant_id, user_id, role)"
            " values (%s, %s, 'operator')",
            (DEFAULT_TENANT, operator),
        )
        with conn.transaction(force_rollback=True):
            conn.execute("set local role authenticated")
            conn.execute(
                "select set_config('request.jwt.claims', %s, true)",
                (f'{{"role": "authenticated", "sub": "{operator}"}}',),
            )
            seen = conn.execute("select count(*) from public.enforcement_cases").fetchone()
            events = conn.execute("select count(*) from public.enforcement_events").fetchone()
        assert seen == (len(cases),)
        assert events == (before["public.enforcement_events"],)
