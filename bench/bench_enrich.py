"""Benchmark: enrich jobs per second through real worker processes and the real handler.

    .venv/bin/python bench/bench_enrich.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL is an admin URL: the benchmark creates and migrates a scratch database on that
server and generates a book of N cases (default 20,000: a debtor entity, a judgment and a
court case each; every tenth judgment with an open enforcement case). It enqueues one
`enrich` job per case through `queue_job`, each carrying a vendor bundle (two contacts, one
or two assets, signals), then starts `--workers` processes (default 2) of
`python -m workers.cli worker enrich` and polls `dragonfly.completed_jobs` until every job is
done. Each job runs the real handler: bundle upsert (upsert_enrichment_bundle) + scoring +
score writes (set_case_scores, set_case_enrichment, the enforcement case's tier) and, when
an enforcement case's tier changes, a queue_job for the planner.

Printed: the steady-state rate (jobs completed between the 10% and 90% marks divided by the
time between them — worker start-up excluded), the overall rate from spawn to drain, and
checks that every case was scored exactly once and nothing was dead-lettered. Target: >=
2,000 jobs/s with two worker processes. Then the machine's yardstick (bench/_yardstick.py,
raw PGMQ read + delete, as bench_consumer's (a)) in the same database and the ratio of the
two: the figure to compare across sessions, whose machines differ. The scratch database is
dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import as_url, scratch_database
from bench._yardstick import raw_pgmq

SETUP = """
insert into public.plaintiffs (id, name, email, phone)
select pg_catalog.md5('p' || g)::uuid, 'Bench Creditor ' || g || ' LLC',
       'ops' || g || '@creditor.example', '212555' || lpad(g::text, 4, '0')
  from generate_series(1, 200) as g;

insert into public.entities
    (id, entity_type, display_name, normalized_name, tax_id_last4, birth_year)
select pg_catalog.md5('e' || g)::uuid, 'person', 'Debtor ' || g, 'debtor ' || g,
       case when g % 3 = 0 then lpad((g % 10000)::text, 4, '0') end,
       case when g % 4 = 0 then 1950 + g % 50 end
  from generate_series(1, %(n)s) as g;

insert into public.judgments (id, plaintiff_id, debtor_entity_id, debtor_name, judgment_amount,
                              balance_due, judgment_date, state, county)
select pg_catalog.md5('j' || g)::uuid, pg_catalog.md5('p' || (1 + g % 200))::uuid,
       pg_catalog.md5('e' || g)::uuid, 'Debtor ' || g, 500 + (g * 7919) % 250000,
       500 + (g * 7919) % 250000, date '2024-01-01' - (g % 5000), 'NY', 'Kings'
  from generate_series(1, %(n)s) as g;

insert into judgments.cases (id, judgment_id, case_number, state, county)
select pg_catalog.md5('c' || g)::uuid, pg_catalog.md5('j' || g)::uuid, 'CV-BENCH-' || g,
       'NY', 'Kings'
  from generate_series(1, %(n)s) as g;

insert into public.enforcement_cases (judgment_id, plaintiff_id, current_balance, created_by)
select pg_catalog.md5('j' || g)::uuid, pg_catalog.md5('p' || (1 + g % 200))::uuid,
       500 + (g * 7919) % 250000, 'bench'
  from generate_series(1, %(n)s) as g
 where g % 10 = 0;
"""

ENQUEUE = """
select pg_catalog.count(public.queue_job(pg_catalog.jsonb_build_object(
    'kind', 'enrich',
    'idempotency_key', 'bench-enrich:' || g,
    'payload', pg_catalog.jsonb_build_object(
        'case_id', pg_catalog.md5('c' || g)::uuid,
        'bundle', pg_catalog.jsonb_build_object(
            'source', 'bench-vendor',
            'contacts', pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object(
                    'contact_type', 'phone', 'value', '+1718' || lpad((g % 10000000)::text, 7, '0'),
                    'confidence', (g % 100) / 100.0, 'is_verified', g % 5 = 0),
                pg_catalog.jsonb_build_object(
                    'contact_type', 'email', 'value', 'debtor' || g || '@mail.example')
            ),
            'assets', case when g % 2 = 0
                then pg_catalog.jsonb_build_array(
                    pg_catalog.jsonb_build_object(
                        'asset_type', 'bank', 'institution', 'Bank ' || (g % 20),
                        'details', pg_catalog.jsonb_build_object(
                            'account_last4', lpad((g % 10000)::text, 4, '0')),
                        'estimated_value', g % 50000),
                    pg_catalog.jsonb_build_object(
                        'asset_type', 'employer', 'institution', 'Employer ' || (g % 500)))
                else pg_catalog.jsonb_build_array(
                    pg_catalog.jsonb_build_object(
                        'asset_type', 'vehicle',
                        'details', pg_catalog.jsonb_build_object('vin', 'VIN' || g)))
            end,
            'signals', pg_catalog.jsonb_build_object(
                'identity_confidence', (g % 100) / 100.0, 'bankruptcy', g % 97 = 0)
        )
    )
)))
  from generate_series(%(lo)s, %(hi)s) as g
"""
ENQUEUE_CHUNK = 500  # per transaction: PGMQ's notify trigger rewrites one row per message

YARDSTICK_MESSAGES = 20_000


def _count(conn: psycopg.Connection[object], query: str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]


def run(
    url: str,
    jobs: int,
    workers: int,
    concurrency: int | None,
    timeout: float,
    handler: str | None = None,
) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute(SETUP.replace("%(n)s", str(int(jobs))))
        conn.execute("analyze")
        print(f"book: {jobs:,} cases in {time.perf_counter() - t:.1f}s", flush=True)
        t = time.perf_counter()
        for lo in range(1, jobs + 1, ENQUEUE_CHUNK):
            hi = min(jobs, lo + ENQUEUE_CHUNK - 1)
            conn.execute(ENQUEUE.replace("%(lo)s", str(lo)).replace("%(hi)s", str(hi)))
        print(f"enqueued {jobs:,} enrich jobs in {time.perf_counter() - t:.1f}s", flush=True)
        # Setup leaves garbage the measured run must not pay for: PGMQ's notify throttle row
        # has one dead version per message sent (its updates cannot be HOT), which every
        # later send walks through until a vacuum, and autovacuum may be off on this server.
        conn.execute("vacuum analyze")

        env = {
            **os.environ,
            "DATABASE_URL": as_url(url),
            "DRAGONFLY_METRICS_PORT": "0",
            "DRAGONFLY_LOG_LEVEL": "WARNING",
            "DRAGONFLY_LOG_FORMAT": "json",
            "PYTHONPATH": os.pathsep.join(
                p
                for p in (str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH"))
                if p
            ),
        }
        env.pop("DRAGONFLY_ENRICH_VENDOR_URL", None)
        command = [sys.executable, "-m", "workers.cli", "worker", "enrich"]
        if concurrency:
            command += ["--concurrency", str(concurrency)]
        if handler:
            command += ["--handler", handler]
        done_q = "select count(*) from dragonfly.completed_jobs where kind = 'enrich'"
        spawn = time.perf_counter()
        procs = [
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)
            for _ in range(workers)
        ]
        marks: dict[float, tuple[float, int]] = {}
        try:
            deadline = spawn + timeout
            done = 0
            while done < jobs:
                if time.perf_counter() > deadline:
                    print(f"TIMEOUT: {done:,}/{jobs:,} done after {timeout}s", flush=True)
                    return 1
                if any(p.poll() is not None for p in procs):
                    print("a worker process exited early", flush=True)
                    return 1
                done = _count(conn, done_q)
                now = time.perf_counter()
                for frac in (0.1, 0.9):
                    if frac not in marks and done >= frac * jobs:
                        marks[frac] = (now, done)
                time.sleep(0.05)
            end = time.perf_counter()
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()

        (t10, n10), (t90, n90) = marks[0.1], marks[0.9]
        steady = (n90 - n10) / (t90 - t10) if t90 > t10 else float("nan")
        overall = jobs / (end - spawn)
        scored = _count(
            conn, "select count(*) from judgments.cases where last_scored_at is not null"
        )
        dead = _count(conn, "select count(*) from dragonfly.dead_letters where kind = 'enrich'")
        contacts = _count(conn, "select count(*) from enrichment.contacts")
        assets = _count(conn, "select count(*) from enrichment.assets")
        plans = _count(conn, "select count(*) from dragonfly.enqueued_jobs where kind = 'enforce'")
        tiers = conn.execute(
            "select collectability_tier, count(*) from judgments.cases group by 1 order by 1"
        ).fetchall()

    # The machine's yardstick, in the same scratch database, once the workers are gone.
    raw = raw_pgmq(url, YARDSTICK_MESSAGES)

    print(f"workers: {workers} x `{' '.join(command[1:])}`")
    print(f"steady state (10%..90%): {steady:,.0f} jobs/s   [target >= 2,000]")
    print(
        f"yardstick: raw PGMQ read+delete {raw:,.0f} msgs/s on this machine now;"
        f" enrich / raw = {steady / raw:.3f}"
    )
    print(f"overall (spawn to drain, incl. start-up): {overall:,.0f} jobs/s ({end - spawn:.1f}s)")
    print(f"cases scored: {scored:,}/{jobs:,}; dead letters: {dead}")
    print(f"stored: {contacts:,} contacts, {assets:,} assets; plan jobs enqueued: {plans:,}")
    print("tiers: " + ", ".join(f"{t}={c:,}" for t, c in tiers))
    ok = scored == jobs and dead == 0
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="admin URL of the server")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=None, help="per worker (CLI default)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="run a no-op handler with the same payload model instead (the runtime's own cost)",
    )
    args = parser.parse_args()
    handler = "bench._enrich_noop:JOB" if args.baseline else None
    with scratch_database(args.database_url, "df_bench_enrich", keep=args.keep) as url:
        return run(url, args.jobs, args.workers, args.concurrency, args.timeout, handler)


if __name__ == "__main__":
    raise SystemExit(main())
