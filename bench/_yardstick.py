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


# -- pickup: raw PGMQ woken by LISTEN ---------------------------------------------------------

RAW_PICKUP_QUEUE = "outreach"


def raw_listen_consumer(url: str, queue: str = RAW_PICKUP_QUEUE) -> None:
    """The pickup yardstick, run as its own process (``python -m bench._yardstick URL``).

    The plainest PGMQ consumer that a notification wakes: one connection LISTENs on the
    queue's insert channel and, on each notification, ``pgmq.read`` (up to 100) on that same
    connection; a message's "handler start" is the moment its read returned, stamped like
    the worker's (``bench_pickup (n, started)``, monotonic clock), then it is deleted.
    Prints ``ready`` once it listens.
    """
    channel = f"pgmq.q_{queue}.INSERT"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("listen {}").format(sql.Identifier(channel)))
        print("ready", flush=True)
        while True:
            # Queries cannot run while the notifies() generator holds the connection: stop it
            # at the first notification, then read.
            if not list(conn.notifies(timeout=1.0, stop_after=1)):
                continue
            rows = conn.execute(
                "select msg_id, message from pgmq.read(%s, 30, 100)", (queue,)
            ).fetchall()
            started = time.monotonic()
            for msg_id, message in rows:
                conn.execute(
                    "insert into bench_pickup (n, started) values (%s, %s)",
                    (-int(message["payload"]["n"]), started),
                )
                conn.execute("select pgmq.delete(%s, %s::bigint)", (queue, msg_id))


if __name__ == "__main__":
    import sys

    raw_listen_consumer(sys.argv[1])
