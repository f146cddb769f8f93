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

``--tenants`` compares, in one run, what tenants cost the console's two main reads::

    .venv/bin/python bench/bench_enforcement.py --tenants --database-url postgresql://postgres@127.0.0.1:5432/postgres

Two databases are generated side by side: *one tenant* (the default tenant's ``--rows`` cases,
today's single-tenant book, read as the ``enforcement_operator`` PostgreSQL role) and *two
tenants* (the same book in the default tenant plus ``--rows`` cases of a second tenant, read as
a signed-in operator of the default tenant: role ``authenticated`` with the JWT ``sub`` of a
``tenant_members`` row). ``v_enforcement_overview`` and ``v_priority_pipeline limit 50`` are
read ``--repeat`` times (default 200) on each, alternating between the databases so the
machine's load falls on both alike; the benchmark prints p50 and p99 of each, their ratio
(two tenants / one tenant; the goal is at most 1.2), what each reader saw (it must be its own
tenant's book only) and the indexes, sequential scans and sorts of each plan.
``--migrations DIR`` applies another checkout's migrations instead (a before/after pair).
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

from bench._stats import percentile
from workers.db.migrate import default_migrations_dir, migrate

Conn = psycopg.Connection[Any]

OPERATOR_SUB = "00000000-0000-4000-8000-00000000b0b0"
# --tenants: the second tenant, and the signed-in operator of the default tenant who reads.
OTHER_TENANT = "00000000-0000-4000-8000-0000000000b2"
MEMBER_SUB = "00000000-0000-4000-8000-00000000a11a"
MEMBER_EMAIL = "ops@tenant-a.example"

DEFAULT_TENANT = "00000000-0000-4000-8000-000000000001"

# One tenant's book. {p} and {j} are the id prefixes of its plaintiffs and judgments (a block
# of its own per tenant, see book_sql()); judgments, court cases and enforcement cases name
# their tenant explicitly, because under session_replication_role = replica the triggers that
# copy it from the parent do not fire.
GENERATE = """
insert into public.plaintiffs (id, tenant_id, name, status, state)
select
    ('{p}' || lpad(to_hex(g), 12, '0'))::uuid,
    '{tenant}'::uuid,
    'Plaintiff ' || g,
    (array['new', 'contacted', 'reached_warm', 'signed', 'callback_scheduled'])[1 + g % 5],
    (array['NY', 'NJ', 'CT', 'PA'])[1 + g % 4]
from generate_series(1, {n} + {spare}) as g;

insert into public.judgments (
    id, tenant_id, plaintiff_id, debtor_name, judgment_amount, balance_due, judgment_date, county,
    state, priority_level
)
select
    ('{j}' || lpad(to_hex(g), 12, '0'))::uuid,
    '{tenant}'::uuid,
    ('{p}' || lpad(to_hex(g), 12, '0'))::uuid,
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

insert into judgments.cases (judgment_id, tenant_id, case_number, county, state,
                             collectability_score, collectability_tier, last_scored_at)
select
    s.id,
    s.tenant_id,
    'CV-' || s.id,
    s.county,
    s.state,
    s.score,
    (select t.tier from public.enforcement_tier_lookup t
      where t.min_score <= s.score order by t.min_score desc limit 1),
    now() - interval '3 days'
from (
    select j.*, round((random() * 100)::numeric, 2) as score from public.judgments j
     where j.id between '{j}000000000000' and '{j}ffffffffffff'
) as s;

insert into public.enforcement_cases (
    judgment_id, tenant_id, plaintiff_id, tier, tier_reason, tier_as_of, collectability_score,
    current_stage, stage_entered_at, next_action_at, current_balance, opened_at, created_by,
    created_at, updated_at
)
select
    j.id,
    j.tenant_id,
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
    -- Spread over the last 60 days to the minute: a real book's cases do not all share the
    -- time of day the generator ran at (the overview's cutoff-day slice would then hold a
    -- whole day's cases or none, depending on the minute it is read).
    select now() - make_interval(mins => (abs(hashtext(j.id::text || 'x')) % (60 * 1440)))
) as e(entered)
where j.id between '{j}000000000000' and ('{j}' || lpad(to_hex({n}), 12, '0'))::uuid;

insert into public.enforcement_events (enforcement_case_id, event_kind, occurred_at, payload, actor)
select
    c.id, k.kind::public.enforcement_event_kind, c.stage_entered_at + k.offs, '{}'::jsonb, 'bench'
from public.enforcement_cases c,
     (values ('case_opened', interval '0'), ('note_added', interval '1 hour'),
             ('asset_search_requested', interval '2 hours')) as k(kind, offs)
where c.judgment_id between '{j}000000000000' and '{j}ffffffffffff';

insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta)
select c.id, 'bench', 'rpc', 'case_opened', '{}'::jsonb from public.enforcement_cases c
where c.judgment_id between '{j}000000000000' and '{j}ffffffffffff';
"""


MIRROR = """
update public.judgments as j
   set collectability_tier = cc.collectability_tier
  from judgments.cases as cc
 where cc.judgment_id = j.id and j.collectability_tier is distinct from cc.collectability_tier
"""


def book_sql(n: int, spare: int, *, tenant: str = DEFAULT_TENANT, block: int = 0) -> bytes:
    """The statements that generate one tenant's book: ``n`` plaintiffs, judgments, court cases
    and open enforcement cases (3 events and a history row each) plus ``spare`` judgments
    without a case. Run with ``session_replication_role = replica``, then :data:`MIRROR`.
    Each ``block`` (0-4095) has ids of its own, so several books fit in one database."""
    if not 0 <= block <= 0xFFF:
        raise ValueError(f"block must be within 0..4095, not {block}")
    sql = (
        GENERATE.replace("{n}", str(n))
        .replace("{spare}", str(spare))
        .replace("{tenant}", tenant)
        .replace("{p}", f"00000000-0000-4000-a{block:03x}-")
        .replace("{j}", f"00000000-0000-4000-b{block:03x}-")
    )
    return sql.encode()


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


def as_member(conn: Conn, sub: str = MEMBER_SUB, email: str = MEMBER_EMAIL) -> None:
    """A signed-in user, as PostgREST runs a request with Supabase Auth's access token."""
    conn.execute("set local role authenticated")
    claims = {"role": "authenticated", "sub": sub, "email": email, "aud": "authenticated"}
    conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))


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
    parser.add_argument(
        "--repeat", type=int, default=None, help="reads per view (default 30; 200 with --tenants)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument("--plans", action="store_true", help="print the full EXPLAIN plans")
    parser.add_argument(
        "--tenants",
        action="store_true",
        help="compare one tenant (enforcement_operator) with two tenants (a signed-in member)",
    )
    parser.add_argument(
        "--migrations",
        type=Path,
        default=None,
        help="apply the migrations of this directory instead of the project's",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or (args.repeat is not None and args.repeat < 1):
        parser.error("--rows and --repeat must be at least 1")
    if args.migrations is not None and not args.migrations.is_dir():
        parser.error(f"--migrations: {args.migrations} is not a directory")
    if args.repeat is None:
        args.repeat = 200 if args.tenants else 30
    if args.tenants:
        return compare_tenants(args)

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
        migrate(conn, args.migrations or default_migrations_dir())
        # Bulk load without triggers and FK re-checks (the data is consistent): no NOTIFY per
        # event, no touch trigger. The pipeline's tier mirror (a trigger on judgments.cases)
        # is filled the way the migration backfills it.
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            conn.execute(book_sql(args.rows, spare))
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


# ---------------------------------------------------------------------------------------
# --tenants

TENANT_READS = {
    "v_enforcement_overview": "select * from public.v_enforcement_overview",
    "v_priority_pipeline limit 50": "select * from public.v_priority_pipeline limit 50",
}


def build_tenant_book(url: str, args: argparse.Namespace, tenants: int) -> float:
    """Migrate, then generate ``--rows`` cases in each of ``tenants`` tenants (the default
    tenant first) and a signed-in operator of the default tenant; vacuum and analyze."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn, args.migrations or default_migrations_dir())
        has_tenants = conn.execute("select to_regclass('public.tenants') is not null").fetchone()
        with conn.transaction():
            if has_tenants and has_tenants[0]:
                conn.execute(
                    "insert into public.tenants (id, slug, name) values (%s, 'other', 'Other')",
                    (OTHER_TENANT,),
                )
                conn.execute(
                    "insert into auth.users (id, email) values (%s, %s)",
                    (MEMBER_SUB, MEMBER_EMAIL),
                )
                conn.execute(
                    "insert into public.tenant_members (tenant_id, user_id, role) "
                    "values (%s, %s, 'operator')",
                    (DEFAULT_TENANT, MEMBER_SUB),
                )
            elif tenants > 1:
                raise SystemExit("--tenants: these migrations have no public.tenants")
            conn.execute("set local session_replication_role = replica")
            for block, tenant in enumerate([DEFAULT_TENANT, OTHER_TENANT][:tenants]):
                conn.execute(book_sql(args.rows, 1000, tenant=tenant, block=block))
            conn.execute(MIRROR)
        conn.execute("vacuum analyze")
    return time.perf_counter() - started


def timed(conn: Conn, become: Callable[[Conn], None], query: str) -> float:
    with conn.transaction(force_rollback=True):
        become(conn)
        start = time.perf_counter()
        conn.execute(query).fetchall()
        return (time.perf_counter() - start) * 1000


def plan_summary(conn: Conn, become: Callable[[Conn], None], query: str) -> tuple[str, str]:
    with conn.transaction(force_rollback=True):
        become(conn)
        rows = conn.execute(f"explain (analyze, buffers, costs off) {query}").fetchall()
    plan = "\n".join(r[0] for r in rows)
    indexes = sorted(set(re.findall(r"(?:Index|Index Only) Scan(?: Backward)? using (\w+)", plan)))
    scans = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)))
    sorts = len(re.findall(r"(?<!Incremental )Sort(?: Key)?:", plan)) + len(
        re.findall(r"Incremental Sort", plan)
    )
    heap = sum(int(h) for h in re.findall(r"Heap Fetches: (\d+)", plan))
    took = "".join(re.findall(r"Execution Time: [\d.]+ ms", plan))
    summary = (
        f"indexes: {', '.join(indexes) or 'none'}; seq scans: {', '.join(scans) or 'none'}; "
        f"sort nodes: {sorts}; heap fetches: {heap}; {took}"
    )
    return summary, plan


def seen(conn: Conn, become: Callable[[Conn], None]) -> str:
    """What a reader sees beside what the database holds: the overview's open cases per
    tenant, the open cases it may read, the pipeline's rows."""
    has_tenant = conn.execute(
        "select count(*) from information_schema.columns where table_schema = 'public' "
        "and table_name = 'v_enforcement_overview' and column_name = 'tenant_id'"
    ).fetchone()
    overview = (
        "select coalesce(t.slug, '?'), sum(o.case_count) from public.v_enforcement_overview o"
        " left join public.tenants t on t.id = o.tenant_id group by 1 order by 1"
        if has_tenant and has_tenant[0]
        else "select 'every tenant', sum(case_count) from public.v_enforcement_overview"
    )
    counts = {
        "open cases": "select count(*) from public.enforcement_cases where closed_at is null",
        "pipeline rows": "select count(*) from public.v_priority_pipeline",
    }
    held = {label: conn.execute(query).fetchone() for label, query in counts.items()}
    conn.rollback()
    parts = []
    try:
        with conn.transaction(force_rollback=True):
            become(conn)
            rows = conn.execute(overview).fetchall()
        parts.append("overview " + (", ".join(f"{k}: {int(n or 0):,}" for k, n in rows) or "-"))
    except psycopg.Error as error:
        parts.append(f"overview refused ({error.sqlstate})")
    for label, query in counts.items():
        total = held[label]
        of = f" of {total[0]:,}" if total else ""
        try:
            with conn.transaction(force_rollback=True):
                become(conn)
                row = conn.execute(query).fetchone()
            parts.append(f"{label} {row[0] if row else 0:,}{of}")
        except psycopg.Error as error:
            parts.append(f"{label} refused ({error.sqlstate})")
    return "; ".join(parts)


def refused(conn: Conn, become: Callable[[Conn], None], query: str) -> str | None:
    try:
        timed(conn, become, query)
    except psycopg.Error as error:
        return f"refused: {error.sqlstate} {str(error).splitlines()[0]}"
    return None


def compare_tenants(args: argparse.Namespace) -> int:
    names = {"one": f"df_bench_enf_{os.getpid()}_one", "two": f"df_bench_enf_{os.getpid()}_two"}
    with psycopg.connect(args.database_url, autocommit=True) as admin:
        server = admin.execute("show server_version").fetchone()
        for name in names.values():
            admin.execute(f'create database "{name}"')
    try:
        print(f"PostgreSQL {server[0] if server else '?'}; load {os.getloadavg()[0]:.2f}")
        took = build_tenant_book(url_with_db(args.database_url, names["one"]), args, 1)
        print(f"  one tenant: {args.rows:,} cases in the default tenant, built in {took:.0f} s")
        took = build_tenant_book(url_with_db(args.database_url, names["two"]), args, 2)
        print(
            f"  two tenants: {args.rows:,} cases in each of two tenants "
            f"({2 * args.rows:,} in all), built in {took:.0f} s"
        )
        with (
            psycopg.connect(url_with_db(args.database_url, names["one"])) as one,
            psycopg.connect(url_with_db(args.database_url, names["two"])) as two,
        ):
            sides: list[tuple[str, Conn, Callable[[Conn], None]]] = [
                ("one tenant, as enforcement_operator", one, as_operator),
                ("two tenants, as a signed-in operator of one", two, as_member),
            ]
            print("\nWhat each reader sees:")
            for label, conn, become in sides:
                print(f"  {label:46s} {seen(conn, become)}")
            print(
                f"\nReads ({args.repeat} each after 3 warm-ups, alternating; load "
                f"{os.getloadavg()[0]:.2f}):"
            )
            for view, query in TENANT_READS.items():
                errors = [refused(conn, become, query) for _, conn, become in sides]
                working = [k for k, error in enumerate(errors) if error is None]
                for k in working:
                    _, conn, become = sides[k]
                    for _ in range(3):
                        timed(conn, become, query)
                samples: list[list[float]] = [[], []]
                for i in range(args.repeat):
                    for k in working if i % 2 == 0 else working[::-1]:
                        _, conn, become = sides[k]
                        samples[k].append(timed(conn, become, query))
                print(f"  {view}")
                for k, (label, _, _) in enumerate(sides):
                    if errors[k]:
                        print(f"    {label:46s} {errors[k]}")
                    else:
                        a, b = percentile(samples[k], 50), percentile(samples[k], 99)
                        print(f"    {label:46s} p50 {a:8.2f} ms   p99 {b:8.2f} ms")
                if len(working) == 2:
                    p50 = [percentile(s, 50) for s in samples]
                    p99 = [percentile(s, 99) for s in samples]
                    r50, r99 = p50[1] / p50[0], p99[1] / p99[0]
                    verdict = "met" if max(r50, r99) <= 1.2 else "NOT met"
                    print(
                        f"    {'ratio, two tenants / one tenant':46s} p50 {r50:8.2f} x    "
                        f"p99 {r99:8.2f} x    (goal <= 1.2: {verdict})"
                    )
            print(f"\nPlans (EXPLAIN ANALYZE; load {os.getloadavg()[0]:.2f}):")
            for view, query in TENANT_READS.items():
                for label, conn, become in sides:
                    if refused(conn, become, query):
                        continue
                    summary, plan = plan_summary(conn, become, query)
                    print(f"  {view}, {label}:\n    {summary}")
                    if args.plans:
                        print("      " + plan.replace("\n", "\n      "))
    finally:
        with psycopg.connect(args.database_url, autocommit=True) as admin:
            for name in names.values():
                if args.keep:
                    print(f"kept database {name}")
                else:
                    admin.execute(f'drop database if exists "{name}" with (force)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
