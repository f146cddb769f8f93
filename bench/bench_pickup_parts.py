"""Benchmark: where the worker's pickup latency goes, step by step, beside raw PGMQ.

    flock /tmp/dragonfly-bench.lock .venv/bin/python bench/bench_pickup_parts.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Four consumers, each its own process on its own queue of one scratch database, idle, woken by
the queue's insert notification; the samples alternate between them (``pgmq.send`` committed
-> the consumer holds the message, one at a time) so all four see the same outside load:

- raw: LISTEN and ``pgmq.read`` on one connection (the yardstick of bench_consumer's (e));
- wrapper: the same, reading through ``public.pgmq_read`` as the worker does, no claim;
- claim: ``pgmq.read``, then ``BEGIN`` + ``dragonfly.claim_jobs`` in one pipelined round trip,
  on the same connection (what the worker does after its read);
- runtime shape: a listener thread wakes a second thread through a condition, which reads
  (``public.pgmq_read``) and claims on a connection of its own, as the worker's slots do.

Printed: p50 and p99 of each, and each ratio to raw.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import scratch_database
from bench._stats import percentile

WRAPPED_READ = "select msg_id, read_ct, message from public.pgmq_read(%s, 30, 200)"
RAW_READ = "select msg_id, read_ct, message from pgmq.read(%s, 30, 200)"
CLAIM = "select msg_id, state from dragonfly.claim_jobs(%s, %b, %b)"

Rows = list[tuple[Any, ...]]


def _listening(url: str, queue: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f'listen "pgmq.q_{queue}.INSERT"')
    return conn


def _claim(conn: psycopg.Connection[Any], queue: str, rows: Rows) -> None:
    with conn.pipeline():
        conn.execute("begin")
        cursor = conn.execute(CLAIM, (queue, [r[0] for r in rows], [r[1] for r in rows]))
    cursor.fetchall()


def _stamp(conn: psycopg.Connection[Any], queue: str, rows: Rows, tag: int) -> None:
    """The consumer holds the messages now: stamp them, delete them, end any transaction."""
    started = time.monotonic()
    for msg_id, _read_ct, message in rows:
        conn.execute(
            "insert into bench_pickup (n, started) values (%s, %s)",
            (int(message["n"]) * 10 + tag, started),
        )
        conn.execute("select pgmq.delete(%s, %s::bigint)", (queue, msg_id))
    if conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.execute("commit")


def _one_connection(read: str, claim: bool) -> Callable[[str, str, int], None]:
    def consume(url: str, queue: str, tag: int) -> None:
        conn = _listening(url, queue)
        while True:
            if not list(conn.notifies(timeout=1.0, stop_after=1)):
                continue
            rows = conn.execute(read, (queue,)).fetchall()
            if rows:
                if claim:
                    _claim(conn, queue, rows)
                _stamp(conn, queue, rows, tag)

    return consume


def runtime_shape(url: str, queue: str, tag: int) -> None:
    cond = threading.Condition()
    generation = [0]

    def listen() -> None:
        conn = _listening(url, queue)
        while True:
            for _notify in conn.notifies(timeout=1.0):
                with cond:
                    generation[0] += 1
                    cond.notify()

    threading.Thread(target=listen, daemon=True).start()
    conn = psycopg.connect(url, autocommit=True)
    seen = 0
    while True:
        with cond:
            cond.wait_for(lambda last=seen: generation[0] != last, 1.0)
            seen = generation[0]
        rows = conn.execute(WRAPPED_READ, (queue,)).fetchall()
        if rows:
            _claim(conn, queue, rows)
            _stamp(conn, queue, rows, tag)


CONSUMERS: list[tuple[str, str, Callable[[str, str, int], None]]] = [
    ("raw: LISTEN + pgmq.read", "outreach", _one_connection(RAW_READ, claim=False)),
    ("wrapper: + public.pgmq_read", "enforce", _one_connection(WRAPPED_READ, claim=False)),
    ("claim: + BEGIN/claim_jobs", "case_copilot", _one_connection(RAW_READ, claim=True)),
    ("runtime shape: thread hop, both", "enrich", runtime_shape),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="admin URL (creates databases)")
    parser.add_argument("--samples", type=int, default=200, help="samples per consumer")
    args = parser.parse_args()
    print(f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    latencies: list[list[float]] = [[] for _ in CONSUMERS]
    with (
        scratch_database(args.database_url, "df_bench_pickup_parts") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        conn.execute("create table bench_pickup (n integer primary key, started float8)")
        procs = [
            multiprocessing.Process(target=consume, args=(url, queue, tag), daemon=True)
            for tag, (_name, queue, consume) in enumerate(CONSUMERS, start=1)
        ]
        for proc in procs:
            proc.start()
        time.sleep(2)  # every consumer listening
        try:
            for i in range(1, args.samples + 1):
                for tag, (_name, queue, _consume) in enumerate(CONSUMERS, start=1):
                    time.sleep(0.02)  # idle again
                    with conn.transaction():
                        conn.execute("select pgmq.send(%s, %s)", (queue, Jsonb({"n": i})))
                    committed = time.monotonic()
                    while True:
                        row = conn.execute(
                            "select started from bench_pickup where n = %s", (i * 10 + tag,)
                        ).fetchone()
                        if row:
                            latencies[tag - 1].append((float(row[0]) - committed) * 1000)
                            break
                        time.sleep(0.0005)
        finally:
            for proc in procs:
                proc.terminate()
    r50, r99 = statistics.median(latencies[0]), percentile(latencies[0], 99)
    for (name, _queue, _consume), lat in zip(CONSUMERS, latencies, strict=True):
        p50, p99 = statistics.median(lat), percentile(lat, 99)
        print(
            f"{name:34} p50 {p50:5.2f} ms ({p50 / r50:.2f}x)   p99 {p99:5.2f} ms ({p99 / r99:.2f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
