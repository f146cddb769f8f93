"""Benchmark: queue_job() latency for single calls.

    .venv/bin/python bench/bench_queue_job.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL is an admin URL: the benchmark creates and migrates a scratch database on that
server and, from one connection in autocommit mode (one transaction per call, as an Ops
Console button or a producer sends them), times:

- new jobs: each call a new idempotency key (validate, check the kind's policy and the
  payload's shape, claim the key, send, commit);
- repeats: each call an already enqueued key (the dedupe path: no message is sent).

Each call is an enrich job for one court case seeded first, as the fleet sends it (an internal
caller: no rate limit applies). ``--caller operator`` calls as a signed-in operator of the
case's tenant instead (role authenticated with the claims PostgREST sets, a membership row;
the operators' rate limit is lifted in the scratch database): the path that checks the
caller's tenants and namespaces the key. It prints p50/p90/p99/max in milliseconds and calls
per second, then drops the database.

``--server-loop N`` also times the calls inside the server, without round trips or commits:
``N`` calls of new keys, then ``N`` repeats of them, in one transaction rolled back afterwards,
``ROUNDS`` times per side (alternating), and prints the median microseconds per call. That is
the CPU the function costs, which the single calls' commit (a WAL flush) hides on a busy disk.

Before/after a change, in one run: ``--baseline DIR`` also migrates a second database from
the migrations in DIR (another checkout's ``sql/migrations``, e.g. from
``git worktree add /tmp/base main``) and times both in alternating rounds on the same
server, so load from anything else falls on both alike; it prints both and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import scratch_database
from bench._stats import percentile

QUEUE_JOB = "select public.queue_job(%s)"
ROUNDS = 20


SEED_CASE = """
with p as (
    insert into public.plaintiffs (name, status) values ('Bench Funding LLC', 'new') returning id
), j as (
    insert into public.judgments (plaintiff_id, debtor_name, judgment_amount, balance_due, status)
    select p.id, 'Debtor Doe', 1000, 1000, 'active' from p returning id
)
insert into judgments.cases (judgment_id, case_number) select j.id, 'CV-BENCH' from j returning id
"""


def seed_case(conn: psycopg.Connection[object]) -> str:
    """A court case for the enrich jobs to name (queue_job checks that it exists)."""
    row = conn.execute(SEED_CASE).fetchone()
    assert row is not None
    return str(row[0])


OPERATOR_SUB = "0a0a0a0a-1111-4222-8333-b0b0b0b0b0b0"


def become_operator(conn: psycopg.Connection[object]) -> None:
    """Make the session a signed-in operator of the default tenant, as PostgREST does."""
    conn.execute(
        "insert into auth.users (id, email) values (%s, 'bench@example.test')", (OPERATOR_SUB,)
    )
    conn.execute(
        "insert into public.tenant_members (tenant_id, user_id, role)"
        " values ('00000000-0000-4000-8000-000000000001', %s, 'operator')",
        (OPERATOR_SUB,),
    )
    conn.execute("update dragonfly.job_kind_policies set rate_per_minute = null")
    conn.execute(
        "select set_config('request.jwt.claims', %s, false)",
        (f'{{"role": "authenticated", "sub": "{OPERATOR_SUB}", "email": "bench@example.test"}}',),
    )
    conn.execute("set role authenticated")


def timed_calls(conn: psycopg.Connection[object], case_id: str, keys: list[str]) -> list[float]:
    out: list[float] = []
    for key in keys:
        payload = Jsonb({"kind": "enrich", "idempotency_key": key, "payload": {"case_id": case_id}})
        started = time.perf_counter()
        conn.execute(QUEUE_JOB, (payload,)).fetchone()
        out.append((time.perf_counter() - started) * 1000)
    return out


SERVER_LOOP = """
select count(public.queue_job(pg_catalog.jsonb_build_object(
    'kind', 'enrich', 'idempotency_key', %(prefix)s::text || g,
    'payload', pg_catalog.jsonb_build_object('case_id', %(case)s::text))))
  from pg_catalog.generate_series(1, %(n)s::integer) as g
"""


def server_loop(
    conn: psycopg.Connection[object], case_id: str, n: int, tag: str
) -> tuple[float, float]:
    """Microseconds per call of ``n`` new keys, then of their ``n`` repeats, in one
    transaction (rolled back)."""
    with conn.transaction(force_rollback=True):
        started = time.perf_counter()
        conn.execute(SERVER_LOOP, {"prefix": f"loop-{tag}-", "case": case_id, "n": n})
        new = (time.perf_counter() - started) * 1e6 / n
        started = time.perf_counter()
        conn.execute(SERVER_LOOP, {"prefix": f"loop-{tag}-", "case": case_id, "n": n})
        repeat = (time.perf_counter() - started) * 1e6 / n
    return new, repeat


def report(label: str, ms: list[float]) -> None:
    total_s = sum(ms) / 1000
    print(
        f"  {label:<16} n={len(ms):>5}  p50 {percentile(ms, 50):6.2f} ms  "
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
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="migrations to compare with (see above)"
    )
    parser.add_argument(
        "--server-loop",
        type=int,
        default=0,
        metavar="N",
        help="also time N calls inside the server per round (see above)",
    )
    parser.add_argument(
        "--caller",
        choices=("internal", "operator"),
        default="internal",
        help="who calls: the fleet (default) or a signed-in operator of the tenant",
    )
    args = parser.parse_args()
    sides = {"this": None, "baseline": args.baseline} if args.baseline else {"this": None}
    per_round = max(1, args.calls // ROUNDS)

    with ExitStack() as stack:
        conns = {
            side: stack.enter_context(
                psycopg.connect(
                    stack.enter_context(
                        scratch_database(args.database_url, "df_bench_queue", False, migrations)
                    ),
                    autocommit=True,
                )
            )
            for side, migrations in sides.items()
        }
        server = conns["this"].info.parameter_status("server_version")
        new: dict[str, list[float]] = {side: [] for side in sides}
        repeat: dict[str, list[float]] = {side: [] for side in sides}
        cases = {side: seed_case(conn) for side, conn in conns.items()}
        if args.caller == "operator":
            for conn in conns.values():
                become_operator(conn)
        for side, conn in conns.items():
            timed_calls(conn, cases[side], [f"warm-{i}" for i in range(args.warmup)])
        for r in range(ROUNDS):
            # Alternate which side goes first, so neither always follows the other.
            for side in list(sides)[:: 1 if r % 2 == 0 else -1]:
                keys = [f"job-{r}-{i}" for i in range(per_round)]
                new[side] += timed_calls(conns[side], cases[side], keys)
                repeat[side] += timed_calls(conns[side], cases[side], keys)
        loops: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        if args.server_loop:
            for r in range(ROUNDS):
                for side in list(sides)[:: 1 if r % 2 == 0 else -1]:
                    loops[side].append(
                        server_loop(conns[side], cases[side], args.server_loop, str(r))
                    )
        for conn in conns.values():
            conn.execute("reset role")
            row = conn.execute("select count(*) from pgmq.q_enrich").fetchone()
            assert row is not None
            assert row[0] == ROUNDS * per_round + args.warmup
    print(
        f"queue_job single calls as {args.caller}, one connection, autocommit (PostgreSQL {server})"
    )
    for side in sides:
        report(f"new ({side})" if args.baseline else "new", new[side])
        report(f"repeat ({side})" if args.baseline else "repeat", repeat[side])
    if args.server_loop:
        print(f"  in the server, {args.server_loop} calls a round, median of {ROUNDS} rounds:")
        for side in sides:
            new_us = statistics.median(x[0] for x in loops[side])
            repeat_us = statistics.median(x[1] for x in loops[side])
            print(f"  {side:<9} new {new_us:7.1f} us/call   repeat {repeat_us:7.1f} us/call")
        if args.baseline:
            ratio = [
                statistics.median(x[i] for x in loops["this"])
                / statistics.median(x[i] for x in loops["baseline"])
                for i in (0, 1)
            ]
            print(f"  in the server: this / baseline  new {ratio[0]:.2f}x  repeat {ratio[1]:.2f}x")
    if args.baseline:
        for label, ms in (("new", new), ("repeat", repeat)):
            ratios = [percentile(ms["this"], p) / percentile(ms["baseline"], p) for p in (50, 99)]
            print(f"  {label}: this / baseline  p50 {ratios[0]:.2f}x  p99 {ratios[1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
