"""Benchmark the enforcement views and RPCs on a generated book of business.

Usage::

    .venv/bin/python bench/bench_enforcement.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL must be able to create databases. The benchmark creates its own database
(``df_bench_enf_<pid>``), applies the migrations, generates ``--rows`` plaintiffs, judgments,
court cases and open enforcement cases set-based (plus a few events per case), analyzes,
then prints:

* the median (and p95) latency of ``select * from v_priority_pipeline limit 50`` and of
  ``select * from v_enforcement_overview`` (and the other views) run as ``enforcement_operator``
  the way PostgREST runs them (``set local role`` + ``request.jwt.claims``), so row-level
  security is included;
* the median latency of one call of each enforcement RPC (each call in its own transaction,
  rolled back, on a random case), and of one ``refresh_enforcement_metrics()`` run;
* the EXPLAIN (ANALYZE, BUFFERS) plans of the two view queries and the indexes they use.

Targets on a 2-core machine: each view <= 50 ms, each RPC <= 5 ms. The database is dropped
at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.db.migrate import default_migrations_dir, migrate

Conn = psycopg.Connection[Any]

OPERATOR_SUB = "00000000-0000-4000-8000-00000000b0b0"

GENERATE = """
insert into public.plaintiffs (id, name, status, state)
select
    ('00000000-0000-4000-a000-' || lpad(to_hex(g), 12, '0'))::uuid,
    'Plaintiff ' || g,
    (array['new', 'contacted', 'reached_warm', 'signed', 'callback_scheduled'])[1 + g % 5],
    (array['NY', 'NJ', 'CT', 'PA'])[1 + g % 4]
from generate_series(1, {n} + {spare}) as g;

insert into public.judgments (
    id, plaintiff_id, debtor_name, judgment_amount, balance_due, judgment_date, county, state,
    priority_level
)
select
    ('00000000-0000-4000-b000-' || lpad(to_hex(g), 12, '0'))::uuid,
    ('00000000-0000-4000-a000-' || lpad(to_hex(g), 12, '0'))::uuid,
    'Debtor ' || g,
    amount,
    amount,
    date '2020-01-01' + (g % 1800),
    (array['Kings', 'Queens', 'New York', 'Bronx', 'Richmond'])[1 + g % 5],
    (array['NY', 'NJ', 'CT', 'PA'])[1 + g % 4],
    -- bigint: g * 7919 overflows integer above 271,180 rows
    (array['urgent', 'high', 'normal', 'normal', 'normal', 'low', 'on_hold'])
        [1 + (g::bigint * 7919) % 7]
from (
    select g, round((500 + random() * 99500)::numeric, 2) as amount
    from generate_series(1, {n} + {spare}) as g
) as a;

insert into judgments.cases (judgment_id, case_number, county, state, collectability_score,
                             collectability_tier, last_scored_at)
select
    j.id,
    'CV-' || j.id,
    j.county,
    j.state,
    s.score,
    (select t.tier from public.enforcement_tier_lookup t
      where t.min_score <= s.score order by t.min_score desc limit 1),
    now() - interval '3 days'
from (
    select j.*, round((random() * 100)::numeric, 2) as score from public.judgments j
) as s
join public.judgments j on j.id = s.id;

insert into public.enforcement_cases (
    judgment_id, plaintiff_id, tier, tier_reason, tier_as_of, collectability_score, current_stage,
    stage_entered_at, next_action_at, current_balance, opened_at, created_by, created_at, updated_at
)
select
    j.id,
    j.plaintiff_id,
    cc.collectability_tier,
    'score>=' || trim_scale((select t.min_score from public.enforcement_tier_lookup t
                             where t.tier = cc.collectability_tier))::text,
    now(),
    cc.collectability_score,
    st.stage,
    entered,
    entered + make_interval(days => st.sla_days),
    j.balance_due,
    entered - interval '30 days',
    'bench',
    entered - interval '30 days',
    entered
from public.judgments j
join judgments.cases cc on cc.judgment_id = j.id
join public.enforcement_stage_lookup st on st.stage = (
    array['pre_enforcement', 'asset_search', 'information_subpoena', 'bank_levy',
          'wage_garnishment', 'marshal_execution', 'payment_plan']
)[1 + abs(hashtext(j.id::text)) % 7],
lateral (
    select now() - make_interval(days => (abs(hashtext(j.id::text || 'x')) % 60))
) as e(entered)
where j.id <= ('00000000-0000-4000-b000-' || lpad(to_hex({n}), 12, '0'))::uuid;

insert into public.enforcement_events (enforcement_case_id, event_kind, occurred_at, payload, actor)
select
    c.id, k.kind::public.enforcement_event_kind, c.stage_entered_at + k.offs, '{}'::jsonb, 'bench'
from public.enforcement_cases c,
     (values ('case_opened', interval '0'), ('note_added', interval '1 hour'),
             ('asset_search_requested', interval '2 hours')) as k(kind, offs);

insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta)
select c.id, 'bench', 'rpc', 'case_opened', '{}'::jsonb from public.enforcement_cases c;
"""


MIRROR = """
update public.judgments as j
   set collectability_tier = cc.collectability_tier
  from judgments.cases as cc
 where cc.judgment_id = j.id
"""


def url_with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return urlunsplit(parts._replace(path="/" + dbname))
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**info)


def ms(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
    return f"median {statistics.median(samples):7.2f} ms   p95 {p95:7.2f} ms   (n={len(samples)})"


def as_operator(conn: Conn) -> None:
    conn.execute("set local role enforcement_operator")
    conn.execute(
        "select set_config('request.jwt.claims', %s, true)",
        (json.dumps({"role": "enforcement_operator", "sub": OPERATOR_SUB}),),
    )


def time_query(conn: Conn, query: str, repeat: int) -> list[float]:
    samples: list[float] = []
    for _ in range(repeat):
        with conn.transaction(force_rollback=True):
            as_operator(conn)
            start = time.perf_counter()
            conn.execute(query).fetchall()
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def time_rpc(
    conn: Conn,
    repeat: int,
    call: Callable[[Conn, random.Random], tuple[str, Any]],
    rng: random.Random,
) -> list[float]:
    """Time one RPC call per transaction (rolled back); ``call`` may prepare the case first."""
    samples: list[float] = []
    for _ in range(repeat):
        with conn.transaction(force_rollback=True):
            query, params = call(conn, rng)
            as_operator(conn)
            start = time.perf_counter()
            conn.execute(query, params).fetchall()
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def explain(conn: Conn, query: str) -> tuple[str, list[str]]:
    with conn.transaction(force_rollback=True):
        as_operator(conn)
        rows = conn.execute(f"explain (analyze, buffers, costs off) {query}").fetchall()
    plan = "\n".join(r[0] for r in rows)
    indexes = sorted(set(re.findall(r"(?:Index|Index Only) Scan(?: Backward)? using (\w+)", plan)))
    return plan, indexes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--plans", action="store_true", help="print the full EXPLAIN plans")
    args = parser.parse_args(argv)

    dbname = f"df_bench_enf_{os.getpid()}"
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        server = admin.execute("show server_version").fetchone()
        admin.execute(f'create database "{dbname}"')
    url = url_with_db(args.database_url, dbname)
    try:
        return run(url, args, server[0] if server else "?")
    finally:
        if not args.keep:
            with psycopg.connect(args.database_url, autocommit=True) as admin:
                admin.execute(f'drop database if exists "{dbname}" with (force)')
        else:
            print(f"kept database {dbname}")


def run(url: str, args: argparse.Namespace, server: str) -> int:
    rng = random.Random(20261127)
    spare = 1000  # judgments without a case, for open_enforcement_case
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        migrate(conn, default_migrations_dir())
        # Bulk load without triggers and FK re-checks (the data is consistent): no NOTIFY per
        # event, no touch trigger. The pipeline's tier mirror (a trigger on judgments.cases)
        # is filled the way the migration backfills it.
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            conn.execute(
                GENERATE.replace("{n}", str(args.rows)).replace("{spare}", str(spare)).encode()
            )
            conn.execute(MIRROR)
        conn.execute("vacuum analyze")
        print(
            f"PostgreSQL {server}; generated {args.rows} plaintiffs/judgments/court cases/"
            f"enforcement cases (+{spare} spare judgments), 3 events and 1 history row per case "
            f"in {time.perf_counter() - started:.1f} s"
        )

    with psycopg.connect(url) as conn:
        case_ids = [r[0] for r in conn.execute("select id from enforcement_cases").fetchall()]
        spare_judgments = [
            r[0]
            for r in conn.execute(
                "select j.id from judgments j where not exists "
                "(select 1 from enforcement_cases c where c.judgment_id = j.id)"
            ).fetchall()
        ]
        conn.rollback()

        print("\nViews (as enforcement_operator, RLS applied):")
        view_queries = {
            "v_priority_pipeline limit 50": "select * from public.v_priority_pipeline limit 50",
            "v_enforcement_overview": "select * from public.v_enforcement_overview",
            "v_enforcement_recent limit 50": "select * from public.v_enforcement_recent limit 50",
            "v_enforcement_timeline (one case)": (
                f"select * from public.v_enforcement_timeline where case_id = '{case_ids[0]}'"
            ),
            "v_collectability_snapshot (one judgment)": (
                "select * from public.v_collectability_snapshot "
                f"where judgment_id = '{spare_judgments[0]}'"
            ),
        }
        for label, query in view_queries.items():
            time_query(conn, query, 3)  # warm-up
            print(f"  {label:42s} {ms(time_query(conn, query, args.repeat))}")

        def case(rng: random.Random) -> str:
            return str(rng.choice(case_ids))

        def call(name: str, payload: Callable[[random.Random], dict[str, Any]]) -> Any:
            return lambda _c, r: (f"select public.{name}(%s)", (Jsonb(payload(r)),))

        def subpoena_response(c: Conn, r: random.Random) -> tuple[str, Any]:
            cid = case(r)
            c.execute(
                "select public.issue_subpoena(%s)",
                (Jsonb({"case_id": cid, "recipient": "Bank", "document_path": "b/s.pdf"}),),
            )
            return (
                "select public.record_subpoena_response(%s)",
                (Jsonb({"case_id": cid, "outcome": "partial"}),),
            )

        def action_transition(c: Conn, r: random.Random) -> tuple[str, Any]:
            cid = case(r)
            c.execute(
                "select public.queue_enforcement_action(%s)",
                (Jsonb({"case_id": cid, "action_type": "bank_levy"}),),
            )
            return (
                "select public.queue_enforcement_action(%s)",
                (Jsonb({"case_id": cid, "action_type": "bank_levy", "status": "completed"}),),
            )

        rpcs: dict[str, Callable[[Conn, random.Random], tuple[str, Any]]] = {
            "open_enforcement_case": call(
                "open_enforcement_case",
                lambda r: {"judgment_id": str(r.choice(spare_judgments)), "created_by": "bench"},
            ),
            "close_enforcement_case": call(
                "close_enforcement_case", lambda r: {"case_id": case(r), "status": "withdrawn"}
            ),
            "set_enforcement_stage (override)": call(
                "set_enforcement_stage",
                lambda r: {"case_id": case(r), "stage": "payment_plan", "override": True},
            ),
            "log_enforcement_event (levy filed)": call(
                "log_enforcement_event",
                lambda r: {
                    "case_id": case(r),
                    "event_kind": "bank_levy_filed",
                    "document_path": f"levies/{uuid.uuid4()}.pdf",
                },
            ),
            "queue_enforcement_action (create)": call(
                "queue_enforcement_action",
                lambda r: {"case_id": case(r), "action_type": "marshal", "metadata": {"n": 1}},
            ),
            "queue_enforcement_action (complete)": action_transition,
            "record_enforcement_payment": call(
                "record_enforcement_payment",
                lambda r: {"case_id": case(r), "amount": "1.25", "source": "bench"},
            ),
            "issue_subpoena": call(
                "issue_subpoena",
                lambda r: {"case_id": case(r), "recipient": "Bank", "document_path": "b/s.pdf"},
            ),
            "record_subpoena_response": subpoena_response,
        }
        print("\nRPCs (one call per transaction, rolled back, as enforcement_operator):")
        for label, rpc in rpcs.items():
            time_rpc(conn, 3, rpc, rng)  # warm-up
            print(f"  {label:42s} {ms(time_rpc(conn, args.repeat, rpc, rng))}")

        print("\nPlans (EXPLAIN ANALYZE as enforcement_operator):")
        for label in ("v_priority_pipeline limit 50", "v_enforcement_overview"):
            plan, indexes = explain(conn, view_queries[label])
            summary = re.findall(r"Execution Time: [\d.]+ ms", plan)
            scans = sorted(set(re.findall(r"(Parallel Seq Scan|Seq Scan) on (\w+)", plan)))
            print(
                f"  {label}: indexes used: {', '.join(indexes) or 'none'}; "
                f"seq scans: {', '.join(t for _, t in scans) or 'none'}; {''.join(summary)}"
            )
            if args.plans:
                print("    " + plan.replace("\n", "\n    "))

        # Last, because its first run changes the book: every case gets the score-band reason
        # and a missed SLA an sla_resurfaced event. Then the nightly steady state: a no-op.
        print("\nrefresh_enforcement_metrics() on the whole book (as service_role):")
        start = time.perf_counter()
        with conn.transaction():
            first = conn.execute("select public.refresh_enforcement_metrics()").fetchone()
        elapsed = (time.perf_counter() - start) * 1000
        print(f"  {'first run (commits)':42s} {elapsed:7.0f} ms")
        print(f"    {first[0] if first else None}")
        samples = []
        for _ in range(5):
            with conn.transaction(force_rollback=True):
                start = time.perf_counter()
                again = conn.execute("select public.refresh_enforcement_metrics()").fetchone()
                samples.append((time.perf_counter() - start) * 1000)
        print(f"  {'next runs (nothing to do)':42s} {ms(samples)}")
        print(f"    {again[0] if again else None}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
