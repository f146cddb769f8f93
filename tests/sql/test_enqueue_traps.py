"""Enqueue costs that must not grow with the size of a transaction or of a table.

Nothing here is timed. The cost of a stretch of enqueues is the number of buffer pages it
touches (shared hits and reads, from EXPLAIN (ANALYZE, BUFFERS), which counts the pages of
every statement the functions run): a per-message row update in one transaction, or a
sequential scan cached for a key lookup, shows up as pages per job growing with the count.

- A long transaction: the 20,000th queue_job() call of one transaction touches, per job,
  at most 1.2 times the pages of the 500th. (PGMQ's insert-notify trigger, which updated one
  throttle row per message, made that ratio about 37; the project's own statement-level
  trigger, 20261202120000_queue_insert_notify.sql, writes nothing. The measure is checked
  against that trigger below, so it can tell.)
- Statistics: after ANALYZE of an empty dragonfly.enqueued_jobs, enqueues into a table of
  250,000 records touch, per job, at most 1.2 times the pages they touched at 50,000 (a
  cached sequential scan touches five times as many; the primary key is three levels deep at
  both sizes, so an index lookup costs the same); and the generic plan of every statement the
  enqueue functions run against the table uses its primary key.
- One notification per transaction and queue, however many jobs it enqueued.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.sql.job_payloads import valid_jobs

Conn = psycopg.Connection[Any]

SINGLE = """
select count(public.queue_job(pg_catalog.jsonb_build_object(
    'kind', 'outreach', 'idempotency_key', %(prefix)s::text || g,
    'payload', pg_catalog.jsonb_build_object('plaintiff_id', %(plaintiff)s::text))))
  from pg_catalog.generate_series(1, %(n)s::integer) as g
"""

BULK = """
select count(*) from public.queue_jobs((
    select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
        'kind', 'outreach', 'idempotency_key', %(prefix)s::text || g,
        'payload', pg_catalog.jsonb_build_object('plaintiff_id', %(plaintiff)s::text)))
      from pg_catalog.generate_series(1, %(n)s::integer) as g))
"""

MEASURED = 200


def pages(conn: Conn, statement: str, **params: Any) -> int:
    """Buffer pages (shared hit + read) touched by ``statement``, executed once."""
    row = conn.execute("explain (analyze, buffers, format json) " + statement, params).fetchone()
    assert row is not None
    plan = row[0][0]["Plan"]
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


def per_job_at(conn: Conn, plaintiff: str, done: int, upto: int, tag: str) -> float:
    """Enqueue until ``upto - MEASURED`` jobs are done in this transaction, then the pages
    per job of the next MEASURED single calls."""
    conn.execute(SINGLE, {"prefix": f"{tag}-fill-", "plaintiff": plaintiff, "n": upto - done})
    measured = pages(conn, SINGLE, prefix=f"{tag}-at-{upto}-", plaintiff=plaintiff, n=MEASURED)
    return measured / MEASURED


def pages_per_job_500_and_20000(
    conn: Conn, plaintiff: str, last: int = 20_000
) -> tuple[float, float]:
    at_500 = per_job_at(conn, plaintiff, 0, 500 - MEASURED, "early")
    at_last = per_job_at(conn, plaintiff, 500, last - MEASURED, "late")
    return at_500, at_last


@pytest.fixture
def plaintiff(db: Conn) -> str:
    return str(valid_jobs(db)["outreach"]["plaintiff_id"])


def test_the_20000th_call_of_a_transaction_costs_what_the_500th_does(
    db: Conn, plaintiff: str
) -> None:
    at_500, at_20000 = pages_per_job_500_and_20000(db, plaintiff)
    assert at_20000 <= 1.2 * at_500, (at_500, at_20000)


def test_the_measure_sees_a_per_message_row_update(db: Conn, plaintiff: str) -> None:
    # PGMQ's own insert-notify trigger, as the job queues had it before 20261202120000: one
    # update of the queue's throttle row per message, all in this transaction.
    db.execute("select pgmq.enable_notify_insert('outreach', 0)")
    at_500, at_5000 = pages_per_job_500_and_20000(db, plaintiff, last=5_000)
    assert at_5000 > 1.2 * at_500, (at_500, at_5000)


def test_one_notification_per_transaction_and_queue(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as listener:
        plaintiff = str(valid_jobs(listener)["outreach"]["plaintiff_id"])
        listener.execute('listen "pgmq.q_outreach.INSERT"')
        with psycopg.connect(fresh_db_url) as producer:
            producer.execute(SINGLE, {"prefix": "n-", "plaintiff": plaintiff, "n": 2000})
            producer.execute(BULK, {"prefix": "b-", "plaintiff": plaintiff, "n": 1000})
            producer.commit()
        listener.execute("select 1")  # notifications arrive with the next round trip
        got = list(listener.notifies(timeout=1.0))
    assert len(got) == 1
    assert got[0].channel == "pgmq.q_outreach.INSERT"


# --- statistics ---------------------------------------------------------------------------

ENQUEUE_FUNCTIONS = (
    "dragonfly.check_queue_job(jsonb, jsonb)",
    "dragonfly.send_tenant_job(text, text, jsonb, integer, text, jsonb, jsonb, uuid)",
    "public.queue_jobs(jsonb)",
)

# The statements the enqueue functions run against dragonfly.enqueued_jobs, with their
# parameters as PL/pgSQL passes them.
KEY_STATEMENTS = (
    "select j.msg_id from dragonfly.enqueued_jobs as j"
    " where j.kind = $1 and j.idempotency_key = $2",
    "update dragonfly.enqueued_jobs as j set msg_id = $3"
    " where j.kind = $1 and j.idempotency_key = $2",
    "insert into dragonfly.enqueued_jobs (kind, idempotency_key, msg_id, enqueued_at, enqueued_by)"
    " values ($1, $2, 0, pg_catalog.now(), null) on conflict (kind, idempotency_key) do nothing",
)


def analyze_empty(url: str, table: str) -> str:
    """Empties ``table`` and analyzes it (0 pages, 0 rows in its statistics); returns ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"truncate {table}")
        conn.execute(f"analyze {table}")
        row = conn.execute(
            "select relpages, reltuples from pg_class where oid = %s::regclass", (table,)
        ).fetchone()
        assert row == (0, 0)
    return url


@pytest.fixture
def analyzed_empty(fresh_db_url: str) -> str:
    """``fresh_db_url`` with dragonfly.enqueued_jobs empty and analyzed (0 pages, 0 rows)."""
    return analyze_empty(fresh_db_url, "dragonfly.enqueued_jobs")


FILLER = """
insert into dragonfly.enqueued_jobs (kind, idempotency_key, msg_id, enqueued_at)
select 'outreach', 'filler-' || g, g, pg_catalog.now() - g * interval '1 second'
  from pg_catalog.generate_series(%(first)s::integer, %(last)s::integer) as g
"""


@pytest.mark.parametrize("statement", [SINGLE, BULK], ids=["queue_job", "queue_jobs"])
def test_enqueues_into_a_grown_table_cost_what_they_did_when_it_was_smaller(
    analyzed_empty: str, statement: str
) -> None:
    with psycopg.connect(analyzed_empty) as conn:
        plaintiff = str(valid_jobs(conn)["outreach"]["plaintiff_id"])
        # Enough calls for PL/pgSQL to settle on its cached (generic) plans, planned while the
        # statistics say the table is empty.
        conn.execute(statement, {"prefix": "warm-", "plaintiff": plaintiff, "n": 20})
        # 50,000 records (the primary key three levels deep already), then five times as many.
        conn.execute(FILLER, {"first": 1, "last": 50_000})
        smaller = pages(conn, statement, prefix="s1-", plaintiff=plaintiff, n=MEASURED)
        conn.execute(FILLER, {"first": 50_001, "last": 250_000})
        larger = pages(conn, statement, prefix="s2-", plaintiff=plaintiff, n=MEASURED)
        conn.rollback()
    assert larger <= 1.2 * smaller, (smaller / MEASURED, larger / MEASURED)


@pytest.mark.parametrize("function", ENQUEUE_FUNCTIONS)
def test_generic_plans_of_the_key_statements_use_the_primary_key(
    analyzed_empty: str, function: str
) -> None:
    with psycopg.connect(analyzed_empty) as conn:
        row = conn.execute(
            "select coalesce(proconfig, '{}') from pg_proc where oid = %s::regprocedure",
            (function,),
        ).fetchone()
        assert row is not None
        # The function's own settings, as they apply while it runs.
        for setting in row[0]:
            name, _, value = setting.partition("=")
            conn.execute("select set_config(%s, %s, true)", (name, value.strip('"')))
        conn.execute("set local plan_cache_mode = force_generic_plan")
        for n, statement in enumerate(KEY_STATEMENTS):
            types = "(text, text, bigint)" if "$3" in statement else "(text, text)"
            conn.execute(f"prepare key_{n} {types} as {statement}")
            args = "('k', 'v', 1)" if "$3" in statement else "('k', 'v')"
            plan = "\n".join(r[0] for r in conn.execute(f"explain execute key_{n} {args}"))
            assert "Seq Scan" not in plan, (function, statement, plan)
            assert "enqueued_jobs_pkey" in plan, (function, statement, plan)
        conn.rollback()
