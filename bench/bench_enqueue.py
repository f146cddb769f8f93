"""Benchmark: enqueue against raw PGMQ on the same database, in one run.

    flock /tmp/dragonfly-bench.lock .venv/bin/python bench/bench_enqueue.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL is an admin URL: the benchmark creates and migrates a scratch database, seeds one
court case, and times from one connection, in interleaved rounds (the order alternating, so
load from anything else falls on both sides alike):

- single: ``pgmq.send`` of the envelope queue_job() would write, one call per transaction
  (autocommit), against ``queue_job()`` of a new key per call, also in autocommit. Goal:
  queue_job at least 0.8 of raw;
- bulk: ``pgmq.send_batch`` of 1000 such envelopes per call against ``queue_jobs()`` of 1000
  new keys per call, autocommit. Goal: queue_jobs at least 0.7 of raw;
- one long transaction: the time per queue_job() call of 500 calls in one transaction and
  of 20,000 (each rolled back, so commit is not in either). Goal: 20,000 within 1.2x of 500.
  5,000 is printed too, for the shape: a cost that steps up once and stays flat (a
  transaction whose WAL outgrows wal_buffers writes it out as it goes; 500 calls never do)
  is not one that grows with the count. tests/sql/test_enqueue_traps.py checks the count
  that cannot be noisy: buffer pages per job.

Every job is an enrich job for the seeded case, as the fleet sends it (an internal caller, no
rate limit). It prints jobs/s per side (median of the rounds), the ratios, whether each goal
is met by the printed figure, and the load average before and after; then drops the database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import scratch_database
from bench.bench_queue_job import seed_case

Conn = psycopg.Connection[Any]
PROVENANCE = {"level": "internal", "role": "postgres", "sub": None, "email": None}


def envelope(case_id: str, key: str) -> dict[str, Any]:
    """The argument of queue_job() for one enrich job."""
    return {"kind": "enrich", "idempotency_key": key, "payload": {"case_id": case_id}}


def message(case_id: str, key: str) -> dict[str, Any]:
    """What queue_job() sends for that job: the raw side sends the same bytes."""
    return {
        **envelope(case_id, key),
        "requested_by": None,
        "provenance": PROVENANCE,
        "enqueued_at": "2026-12-02T00:00:00.000000Z",
    }


def rate(n: int, run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return n / (time.perf_counter() - started)


def raw_send(conn: Conn, case_id: str, keys: list[str]) -> None:
    for key in keys:
        conn.execute("select pgmq.send('enrich', %s)", (Jsonb(message(case_id, key)),))


def queue_job(conn: Conn, case_id: str, keys: list[str]) -> None:
    for key in keys:
        conn.execute("select public.queue_job(%s)", (Jsonb(envelope(case_id, key)),))


def raw_send_batch(conn: Conn, case_id: str, keys: list[str], batch: int) -> None:
    for start in range(0, len(keys), batch):
        msgs = [Jsonb(message(case_id, k)) for k in keys[start : start + batch]]
        conn.execute("select count(*) from pgmq.send_batch('enrich', %s::jsonb[])", (msgs,))


def queue_jobs(conn: Conn, case_id: str, keys: list[str], batch: int) -> None:
    for start in range(0, len(keys), batch):
        jobs = [envelope(case_id, k) for k in keys[start : start + batch]]
        row = conn.execute(
            "select count(msg_id) from public.queue_jobs(%s)", (Jsonb(jobs),)
        ).fetchone()
        assert row is not None
        assert row[0] == len(jobs)


def per_job_in_one_transaction(conn: Conn, case_id: str, n: int, tag: str) -> float:
    """Microseconds per queue_job() call over ``n`` calls in one transaction (rolled back)."""
    keys = [f"{tag}-{i}" for i in range(n)]
    conn.autocommit = False
    try:
        started = time.perf_counter()
        queue_job(conn, case_id, keys)
        elapsed = time.perf_counter() - started
    finally:
        conn.rollback()
        conn.autocommit = True
    return elapsed / n * 1e6


def verdict(ratio: float, goal: float, higher_is_better: bool = True) -> str:
    met = ratio >= goal if higher_is_better else ratio <= goal
    return "met" if met else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="admin URL of the server")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single", type=int, default=1000, help="single calls per round")
    parser.add_argument("--bulk", type=int, default=10_000, help="bulk jobs per round")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per bulk call")
    parser.add_argument("--long", type=int, default=20_000, help="calls of the long transaction")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with (
        scratch_database(args.database_url, "df_bench_enqueue") as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        server = conn.info.parameter_status("server_version")
        case_id = seed_case(conn)
        # Warm both sides (plans, caches) before anything is timed.
        raw_send(conn, case_id, [f"warm-raw-{i}" for i in range(200)])
        queue_job(conn, case_id, [f"warm-one-{i}" for i in range(200)])
        raw_send_batch(conn, case_id, [f"warm-rawb-{i}" for i in range(2000)], args.batch)
        queue_jobs(conn, case_id, [f"warm-bulk-{i}" for i in range(2000)], args.batch)

        rates: dict[str, list[float]] = {k: [] for k in ("send", "queue_job", "batch", "bulk")}
        for r in range(args.rounds):
            single = {
                "send": lambda r=r: raw_send(
                    conn, case_id, [f"raw-{r}-{i}" for i in range(args.single)]
                ),
                "queue_job": lambda r=r: queue_job(
                    conn, case_id, [f"one-{r}-{i}" for i in range(args.single)]
                ),
            }
            bulk = {
                "batch": lambda r=r: raw_send_batch(
                    conn, case_id, [f"rawb-{r}-{i}" for i in range(args.bulk)], args.batch
                ),
                "bulk": lambda r=r: queue_jobs(
                    conn, case_id, [f"bulk-{r}-{i}" for i in range(args.bulk)], args.batch
                ),
            }
            for group, n in ((single, args.single), (bulk, args.bulk)):
                names = list(group)[:: 1 if r % 2 == 0 else -1]
                for name in names:
                    rates[name].append(rate(n, group[name]))
            print(
                f"  round {r + 1}: "
                + "  ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items())
                + f"  (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )

        short = statistics.median(
            per_job_in_one_transaction(conn, case_id, 500, f"short-{i}") for i in range(3)
        )
        middle = per_job_in_one_transaction(conn, case_id, 5000, "middle")
        long = per_job_in_one_transaction(conn, case_id, args.long, "long")
        wal_buffers = conn.execute("show wal_buffers").fetchone()
    load_after = os.getloadavg()

    med = {k: statistics.median(v) for k, v in rates.items()}
    single_ratio = med["queue_job"] / med["send"]
    bulk_ratio = med["bulk"] / med["batch"]
    long_ratio = long / short
    print(
        f"enqueue vs raw PGMQ, one connection (PostgreSQL {server}); load average"
        f" {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} before,"
        f" {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} after;"
        f" medians of {args.rounds} rounds"
    )
    print(f"  {'measure':<44} {'figure':>14} {'yardstick':>14} {'ratio':>7}  goal")
    print(
        f"  {'queue_job, one per transaction':<44} {med['queue_job']:>10,.0f}/s"
        f"   {med['send']:>10,.0f}/s {single_ratio:>7.2f}  >= 0.8 of pgmq.send:"
        f" {verdict(single_ratio, 0.8)}"
    )
    print(
        f"  {f'queue_jobs, {args.batch} per call':<44} {med['bulk']:>10,.0f}/s"
        f"   {med['batch']:>10,.0f}/s {bulk_ratio:>7.2f}  >= 0.7 of pgmq.send_batch:"
        f" {verdict(bulk_ratio, 0.7)}"
    )
    print(
        f"  {f'queue_job, {args.long:,} calls in one transaction':<44} {long:>10,.0f} us"
        f"   {short:>10,.0f} us {long_ratio:>7.2f}  <= 1.2x of 500 calls:"
        f" {verdict(long_ratio, 1.2, higher_is_better=False)}"
    )
    print(
        f"  {'queue_job, 5,000 calls in one transaction':<44} {middle:>10,.0f} us"
        f"   {short:>10,.0f} us {middle / short:>7.2f}  (shape of the curve; wal_buffers"
        f" {wal_buffers[0] if wal_buffers else '?'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
