"""claim_jobs() keeps its plans for the session, so they must not depend on statistics.

Nothing here is timed. The claim's probe of dragonfly.completed_jobs is static SQL, planned
once per session (20261205100000_claim_jobs_cached_probe.sql). A plan cached while the table
was empty and analyzed would be a sequential scan, and would stay one as the table grows: the
cost of a claim is measured in buffer pages (EXPLAIN (ANALYZE, BUFFERS) counts those of every
statement the function runs), which stay flat for a primary-key probe and grow with the table
for a scan. The measure is checked against a claim_jobs without its enable_seqscan setting,
so it can tell. The lock on the queue's table is matched on each delivery's own pair.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.sql.test_enqueue_traps import analyze_empty, pages

Conn = psycopg.Connection[Any]

CLAIM = "select * from dragonfly.claim_jobs('outreach', %(ids)s, %(read_cts)s)"

FILLER = """
insert into dragonfly.completed_jobs (kind, idempotency_key, queue, msg_id, attempts)
select 'outreach', 'filler-' || g, 'outreach', g, 1
  from pg_catalog.generate_series(%(first)s::integer, %(last)s::integer) as g
"""

# The probe claim_jobs runs against completed_jobs, with its parameters as PL/pgSQL passes them.
PROBE = (
    "select 1 from dragonfly.completed_jobs as d"
    " where d.kind = $1 and d.idempotency_key = $2 limit 1"
)


@pytest.fixture
def analyzed_empty(fresh_db_url: str) -> str:
    """``fresh_db_url`` with dragonfly.completed_jobs empty and analyzed (0 pages, 0 rows)."""
    return analyze_empty(fresh_db_url, "dragonfly.completed_jobs")


def deliveries(conn: Conn, keys: list[str | None]) -> dict[str, list[int]]:
    """Send a message per key to outreach and read them: their msg_ids and read_cts."""
    for key in keys:
        message = {"n": 1} if key is None else {"idempotency_key": key}
        conn.execute("select pgmq.send('outreach', %s)", (Jsonb(message),))
    rows = conn.execute(
        "select msg_id, read_ct from pgmq.read('outreach', 300, %s) order by msg_id", (len(keys),)
    ).fetchall()
    assert len(rows) == len(keys)
    return {"ids": [r[0] for r in rows], "read_cts": [r[1] for r in rows]}


def claim_pages_small_and_grown(url: str) -> tuple[int, int]:
    """Pages of one claim in a session that has claimed since completed_jobs was analyzed
    empty, with 50,000 completed jobs, then with 250,000 (a probe of the primary key
    touches as many pages at both sizes: 13 per claim of two deliveries here)."""
    with psycopg.connect(url) as conn:
        claimed = deliveries(conn, ["not-done-1", "not-done-2"])
        for _ in range(10):  # the session's plans, made while the table is empty
            assert conn.execute(CLAIM, claimed).fetchall() == []
        conn.execute(FILLER, {"first": 1, "last": 50_000})
        smaller = pages(conn, CLAIM, **claimed)
        conn.execute(FILLER, {"first": 50_001, "last": 250_000})
        larger = pages(conn, CLAIM, **claimed)
        assert conn.execute(CLAIM, claimed).fetchall() == []  # still owned, not done
        conn.rollback()
    return smaller, larger


def test_a_claim_after_completed_jobs_grew_costs_what_it_did_when_it_was_smaller(
    analyzed_empty: str,
) -> None:
    smaller, larger = claim_pages_small_and_grown(analyzed_empty)
    assert larger <= 1.2 * smaller, (smaller, larger)
    assert smaller < 100, smaller  # a scan of 50,000 completed jobs reads hundreds of pages


def test_the_measure_sees_a_cached_sequential_scan(analyzed_empty: str) -> None:
    with psycopg.connect(analyzed_empty, autocommit=True) as conn:
        conn.execute(
            "alter function dragonfly.claim_jobs(text, bigint[], integer[]) reset enable_seqscan"
        )
    smaller, larger = claim_pages_small_and_grown(analyzed_empty)
    assert larger > 3 * smaller, (smaller, larger)


def test_the_generic_plan_of_the_probe_uses_the_primary_key(analyzed_empty: str) -> None:
    with psycopg.connect(analyzed_empty) as conn:
        row = conn.execute(
            "select coalesce(proconfig, '{}') from pg_proc"
            " where oid = 'dragonfly.claim_jobs(text, bigint[], integer[])'::regprocedure"
        ).fetchone()
        assert row is not None
        settings = dict(s.partition("=")[::2] for s in row[0])
        # The plan is kept for the session (generic), whatever the arrays of a call hold.
        assert settings.get("plan_cache_mode") == "force_generic_plan", settings
        for name, value in settings.items():  # the function's settings, as they apply in it
            conn.execute("select set_config(%s, %s, true)", (name, value.strip('"')))
        conn.execute(f"prepare probe (text, text) as {PROBE}")
        plan = "\n".join(r[0] for r in conn.execute("explain execute probe ('outreach', 'k')"))
        assert "Seq Scan" not in plan, plan
        assert "completed_jobs_pkey" in plan, plan
        conn.rollback()


def test_a_delivery_is_matched_on_its_own_read_ct(fresh_db_url: str) -> None:
    with (
        psycopg.connect(fresh_db_url) as conn,
        psycopg.connect(fresh_db_url, autocommit=True) as other,
    ):
        first = deliveries(conn, ["pair-1"])
        second = deliveries(conn, ["pair-2"])
        conn.execute("select pgmq.set_vt('outreach', %s, 0)", (second["ids"][0],))
        again = conn.execute("select msg_id, read_ct from pgmq.read('outreach', 300, 1)").fetchone()
        assert again == (second["ids"][0], 2)
        conn.commit()
        # Each read_ct is current for the other message: neither delivery is, nothing is locked.
        crossed = {"ids": [first["ids"][0], second["ids"][0]], "read_cts": [2, 1]}
        lost = conn.execute(CLAIM, crossed).fetchall()
        assert sorted(lost) == [(first["ids"][0], "lost"), (second["ids"][0], "lost")]
        free = other.execute("select msg_id from pgmq.q_outreach for update skip locked").fetchall()
        assert sorted(r[0] for r in free) == [first["ids"][0], second["ids"][0]]
        # The current pairs: both locked, owned.
        current = {"ids": [first["ids"][0], second["ids"][0]], "read_cts": [1, 2]}
        assert conn.execute(CLAIM, current).fetchall() == []
        free = other.execute("select msg_id from pgmq.q_outreach for update skip locked").fetchall()
        assert free == []
        conn.rollback()
