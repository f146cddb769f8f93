"""The machine's yardstick: raw PGMQ batched consume, with no worker in the way.

Benchmark figures on this shared 2-core machine move with the hardware a session gets and
with what else runs. Printed beside a figure and measured in the same run, the raw PGMQ rate
turns it into a ratio that can be compared across sessions and machines.
"""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

# Envelopes as queue_job writes them, for a no-op job.
ENVELOPE = (
    "select pg_catalog.jsonb_build_object('kind', 'enrich', 'idempotency_key', 'raw-' || g,"
    " 'payload', pg_catalog.jsonb_build_object('n', g), 'requested_by', null,"
    " 'enqueued_at', pg_catalog.now()) from generate_series(1, %s) as g"
)


def raw_pgmq(url: str, n: int, batch: int = 100, queue: str = "outreach") -> float:
    """Messages per second: send ``n`` to ``queue``, then ``pgmq.read`` + ``pgmq.delete(ids[])``
    in a loop on one connection until they are gone.

    ``queue`` must be empty and have no consumer meanwhile (the default, outreach, keeps
    clear of the enrich queue the benchmarks' workers read)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"select pgmq.send_batch(%s, array({ENVELOPE}))", (queue, n))
        conn.execute(sql.SQL("vacuum analyze pgmq.{}").format(sql.Identifier(f"q_{queue}")))
        done = 0
        started = time.perf_counter()
        while True:
            rows = conn.execute(
                "select msg_id from pgmq.read(%s, 30, %s)", (queue, batch)
            ).fetchall()
            if not rows:
                break
            conn.execute("select pgmq.delete(%s, %s::bigint[])", (queue, [r[0] for r in rows]))
            done += len(rows)
        elapsed = time.perf_counter() - started
    assert done == n, (done, n)
    return n / elapsed
