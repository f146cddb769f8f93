"""dragonfly.queue_stats() at depth: exact up to 10,000 messages, an upper-bound estimate from
the span of message ids beyond, ages from the first and last message, and no plan that reads
every message (checked with EXPLAIN, not with a clock)."""

from __future__ import annotations

from typing import Any

import psycopg

Conn = psycopg.Connection[Any]


def stats(db: Conn, queue: str) -> dict[str, Any]:
    cur = db.execute("select * from dragonfly.queue_stats() where queue = %s", (queue,))
    row = cur.fetchone()
    assert row is not None
    assert cur.description is not None
    return dict(zip([c.name for c in cur.description], row, strict=True))


def send(db: Conn, queue: str, n: int) -> None:
    db.execute(
        "select pgmq.send_batch(%s, array(select jsonb_build_object('n', g)"
        " from generate_series(1, %s) g))",
        (queue, n),
    )


def test_up_to_ten_thousand_messages_are_counted(db: Conn) -> None:
    send(db, "enforce", 10_000)
    db.execute("delete from pgmq.q_enforce where msg_id % 3 = 0")  # out of order: holes
    row = stats(db, "enforce")
    assert row["depth_estimated"] is False
    assert row["depth"] == db.execute("select count(*) from pgmq.q_enforce").fetchone()[0]  # type: ignore[index]


def test_deeper_queues_are_estimated_from_the_span_of_ids(db: Conn) -> None:
    send(db, "enrich", 12_000)
    first = "select msg_id from pgmq.q_enrich order by msg_id limit 500"
    db.execute(f"delete from pgmq.q_enrich where msg_id in ({first})")
    row = stats(db, "enrich")
    assert row["depth_estimated"] is True
    assert row["depth"] == 11_500  # consumed in order: the span is exact
    assert row["visible"] == 11_500
    db.execute("delete from pgmq.q_enrich where msg_id % 10 = 0")  # holes: an upper bound
    row = stats(db, "enrich")
    actual = db.execute("select count(*) from pgmq.q_enrich").fetchone()[0]  # type: ignore[index]
    assert row["depth_estimated"] is True
    assert actual <= row["depth"] <= 11_500
    assert row["total_messages"] >= 12_000
    assert row["oldest_age_sec"] is not None
    assert row["newest_age_sec"] is not None


def test_no_statement_reads_every_message(db: Conn) -> None:
    """queue_stats() on a deep queue reads the 10,001 rows of its bounded count and a few
    probes, not the 20,000 messages: the tuples this transaction's scans of the queue table
    returned (pg_stat_xact_user_tables), before and after the call -- not a clock."""
    send(db, "outreach", 20_000)
    db.execute("analyze pgmq.q_outreach")

    def tuples_read() -> int:
        row = db.execute(
            "select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
            " from pg_stat_xact_user_tables where schemaname = 'pgmq' and relname = 'q_outreach'"
        ).fetchone()
        assert row is not None
        return int(row[0])

    before = tuples_read()
    stats(db, "outreach")
    assert 10_001 <= tuples_read() - before <= 10_010
