"""Benchmark: queue_job() latency for single calls.

    .venv/bin/python bench/bench_queue_job.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL is an admin URL: the benchmark creates and migrates a scratch database on that
server and, from one connection in autocommit mode (one transaction per call, as an Ops
Console button or a producer sends them), times:

- new jobs: each call a new idempotency key (validate, claim the key, send, commit);
- repeats: each call an already enqueued key (the dedupe path: no message is sent).

It prints p50/p90/p99/max in milliseconds and calls per second, then drops the database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import scratch_database
from bench._stats import percentile

QUEUE_JOB = "select public.queue_job(%s)"


def timed_calls(conn: psycopg.Connection[object], keys: list[str]) -> list[float]:
    out: list[float] = []
    for key in keys:
        payload = Jsonb(
            {"kind": "enrich", "idempotency_key": key, "payload": {"case_id": key, "n": 1}}
        )
        started = time.perf_counter()
        conn.execute(QUEUE_JOB, (payload,)).fetchone()
        out.append((time.perf_counter() - started) * 1000)
    return sorted(out)


def report(label: str, ms: list[float]) -> None:
    total_s = sum(ms) / 1000
    print(
        f"  {label:<8} n={len(ms):>5}  p50 {percentile(ms, 50):6.2f} ms  "
        f"p90 {percentile(ms, 90):6.2f} ms  p99 {percentile(ms, 99):6.2f} ms  "
        f"max {max(ms):6.2f} ms  mean {statistics.fmean(ms):6.2f} ms  "
        f"({len(ms) / total_s:,.0f} calls/s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="admin URL of the server")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    with (
        scratch_database(args.database_url, "df_bench_queue", False) as url,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        server = conn.info.parameter_status("server_version")
        timed_calls(conn, [f"warm-{i}" for i in range(args.warmup)])
        new = timed_calls(conn, [f"job-{i}" for i in range(args.calls)])
        repeat = timed_calls(conn, [f"job-{i}" for i in range(args.calls)])
        row = conn.execute("select count(*) from pgmq.q_enrich").fetchone()
        assert row is not None
        assert row[0] == args.calls + args.warmup
    print(f"queue_job single calls, one connection, autocommit (PostgreSQL {server})")
    report("new", new)
    report("repeat", repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
