"""Benchmark: does a row of another tenant answer faster or slower than a missing row?

    flock /tmp/dragonfly-bench.lock .venv/bin/python bench/bench_tenant_oracle.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL is an admin URL: the benchmark creates and migrates a scratch database on that
server, with two tenants A and B, an operator of B (a signed-in user, role authenticated,
as PostgREST calls as), and in tenant A a plaintiff with an open call task, a judgment,
an open enforcement case with an open subpoena and a payment recorded under an
idempotency key. Then the operator of B calls each RPC below many times, alternating in
random order within each pair between

- **missing**: an id that exists nowhere (a new random uuid each call), and
- **foreign**: the id of tenant A's row (for the payment, also A's idempotency key),

and checks that both are refused with the same SQLSTATE and the same message apart from the
ids (the benchmark stops if not). Two clocks:

- **client**: the round trip of the RPC's statement over one connection (each call is one
  transaction: ``set local role``, the claims, the call, rollback), what a caller timing
  its requests sees, less HTTP;
- **server**: the call alone, timed inside the server (``clock_timestamp()`` around each
  call in a PL/pgSQL loop, each call in its own subtransaction), with no network in the way:
  the stricter test.

For each RPC and clock it prints p50/p99 in microseconds of missing and foreign calls and
the ratios foreign / missing. Ratios near 1.00 at p50 (and within the noise at p99) mean
the answer's timing does not tell a row of another tenant from a missing one. It exits 1
if the answers themselves differ (that is an oracle whatever the clocks say).

Before/after a change: ``--baseline DIR`` also times a database migrated from the
migrations in DIR (e.g. ``git archive <commit> sql/migrations | tar -x -C /tmp/base``),
in alternating rounds, and prints both.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import scratch_database
from bench._stats import percentile

Conn = psycopg.Connection[Any]

TENANT_A = "a0000000-0000-4000-8000-00000000000a"
TENANT_B = "b0000000-0000-4000-8000-00000000000b"
OPERATOR_B = "b0000000-0000-4000-8000-0000000000b1"
CLAIMS = json.dumps(
    {
        "role": "authenticated",
        "aud": "authenticated",
        "sub": OPERATOR_B,
        "email": "operator.b@example.test",
        "tenant_roles": {TENANT_B: "operator"},
    }
)
PAYMENT_KEY = "CHK-1001"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

SEED = (
    "insert into public.tenants (id, slug, name)"
    " values (%(a)s, 'bench-a', 'Tenant A'), (%(b)s, 'bench-b', 'Tenant B')",
    "insert into auth.users (id, email) values (%(operator_b)s, 'operator.b@example.test')",
    "insert into public.tenant_members (tenant_id, user_id, role)"
    " values (%(b)s, %(operator_b)s, 'operator')",
)


@dataclass(frozen=True)
class RowsOfA:
    plaintiff_id: str
    task_id: str
    case_id: str
    action_id: str


def seed(conn: Conn) -> RowsOfA:
    """Tenants, the operator of B, and tenant A's rows (committed)."""
    for statement in SEED:
        conn.execute(statement, {"a": TENANT_A, "b": TENANT_B, "operator_b": OPERATOR_B})

    def one(query: str, params: Any = None) -> str:
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return str(row[0])

    plaintiff = one(
        "insert into public.plaintiffs (name, tenant_id) values ('Acme Funding LLC', %s)"
        " returning id",
        (TENANT_A,),
    )
    task = one(
        "insert into public.plaintiff_tasks (plaintiff_id, kind, status)"
        " values (%s, 'call', 'open') returning id",
        (plaintiff,),
    )
    judgment = one(
        "insert into public.judgments (plaintiff_id, debtor_name, judgment_amount, balance_due,"
        " status) values (%s, 'Debtor Doe', 100000, 100000, 'active') returning id",
        (plaintiff,),
    )
    one(
        "insert into judgments.cases (judgment_id, case_number) values (%s, 'CV-A-1') returning id",
        (judgment,),
    )
    case = one("select public.open_enforcement_case(%s)", (Jsonb({"judgment_id": judgment}),))
    action = one(
        "select public.issue_subpoena(%s) ->> 'action_id'",
        (Jsonb({"case_id": case, "recipient": "Bank", "document_path": "subpoenas/a.pdf"}),),
    )
    one(
        "select public.record_enforcement_payment(%s)",
        (Jsonb({"case_id": case, "amount": "10.00", "idempotency_key": PAYMENT_KEY}),),
    )
    conn.execute("analyze")
    conn.commit()
    return RowsOfA(plaintiff, task, case, action)


@dataclass(frozen=True)
class Probe:
    """One RPC: its SQL, with ``{arg}`` where the argument goes, and the argument naming a
    missing row or tenant A's."""

    name: str
    sql: str
    argument: Callable[[RowsOfA, bool], str]


def _payload(fields: dict[str, Any]) -> str:
    return json.dumps(fields)


def _fresh() -> str:
    return str(uuid.uuid4())


PROBES = (
    Probe(
        "set_enforcement_stage",
        "select public.set_enforcement_stage({arg}::jsonb)",
        lambda a, foreign: _payload(
            {"case_id": a.case_id if foreign else _fresh(), "stage": "asset_search"}
        ),
    ),
    Probe(
        "record_enforcement_payment",
        "select public.record_enforcement_payment({arg}::jsonb)",
        lambda a, foreign: _payload(
            {
                "case_id": a.case_id if foreign else _fresh(),
                "amount": "10.00",
                "idempotency_key": PAYMENT_KEY,
            }
        ),
    ),
    Probe(
        "record_subpoena_response",
        "select public.record_subpoena_response({arg}::jsonb)",
        lambda a, foreign: _payload(
            {"action_id": a.action_id if foreign else _fresh(), "outcome": "partial"}
        ),
    ),
    Probe(
        "log_call_outcome",
        "select public.log_call_outcome(({arg}::jsonb) ->> 'p', ({arg}::jsonb) ->> 't', 'busy')",
        lambda a, foreign: _payload(
            {"p": a.plaintiff_id, "t": a.task_id} if foreign else {"p": _fresh(), "t": _fresh()}
        ),
    ),
    Probe(
        "request_case_copilot",
        "select public.request_case_copilot({arg})",
        lambda a, foreign: a.case_id if foreign else _fresh(),
    ),
)

ACCEPTED = "accepted (no error)"


def client_call(conn: Conn, probe: Probe, argument: str) -> tuple[float, str]:
    """One call as one PostgREST request of the operator of B: microseconds, and the answer
    (SQLSTATE and message with its ids blanked)."""
    conn.execute("set local role authenticated")
    conn.execute("select set_config('request.jwt.claims', %s, true)", (CLAIMS,))
    query = probe.sql.replace("{arg}", "%(arg)s")
    started = time.perf_counter()
    try:
        conn.execute(query, {"arg": argument})
    except psycopg.Error as error:
        elapsed = (time.perf_counter() - started) * 1e6
        conn.rollback()
        return elapsed, f"{error.sqlstate} {UUID_RE.sub('<id>', str(error.diag.message_primary))}"
    elapsed = (time.perf_counter() - started) * 1e6
    conn.rollback()
    return elapsed, ACCEPTED


SERVER_LOOP = """
do $bench$
declare
    v_args text[] := {args};
    v_out double precision[] := '{{}}';
    v_answers text[] := '{{}}';
    v_started timestamptz;
    v_state text;
    v_message text;
begin
    set local role authenticated;
    perform set_config('request.jwt.claims', {claims}, true);
    for i in 1 .. pg_catalog.array_length(v_args, 1) loop
        v_started := pg_catalog.clock_timestamp();
        begin
            execute {query} using v_args[i];
            raise exception 'accepted';
        exception when others then
            get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
        end;
        v_out := v_out || extract(epoch from pg_catalog.clock_timestamp() - v_started) * 1e6;
        v_answers := v_answers || (v_state || ' ' || v_message);
    end loop;
    reset role;
    perform set_config('bench.out', v_out::text, true);
    perform set_config('bench.answers', pg_catalog.array_to_json(v_answers)::text, true);
end
$bench$
"""


def server_calls(conn: Conn, probe: Probe, arguments: list[str]) -> tuple[list[float], list[str]]:
    """The calls timed inside the server, each in its own subtransaction: microseconds each,
    and the answers."""
    do = SERVER_LOOP.format(
        args=sql.Literal(arguments).as_string(conn) + "::text[]",
        claims=sql.Literal(CLAIMS).as_string(conn),
        query=sql.Literal(probe.sql.replace("{arg}", "$1")).as_string(conn),
    )
    conn.execute(do.encode())
    row = conn.execute(
        "select current_setting('bench.out')::float8[], current_setting('bench.answers')::json"
    ).fetchone()
    conn.rollback()
    assert row is not None
    answers = [UUID_RE.sub("<id>", a).replace("P0001 accepted", ACCEPTED) for a in row[1]]
    return list(row[0]), answers


@dataclass
class Figures:
    client: dict[bool, list[float]]
    server: dict[bool, list[float]]
    answers: dict[bool, set[str]]


def new_figures() -> Figures:
    return Figures({False: [], True: []}, {False: [], True: []}, {False: set(), True: set()})


def run_round(conn: Conn, rows: RowsOfA, probe: Probe, pairs: int, figures: Figures) -> None:
    # Client clock: alternate within each pair, the order drawn at random.
    for _ in range(pairs):
        order = [False, True]
        random.shuffle(order)
        for foreign in order:
            elapsed, got = client_call(conn, probe, probe.argument(rows, foreign))
            figures.client[foreign].append(elapsed)
            figures.answers[foreign].add(got)
    # Server clock: one loop of the same interleaving.
    flags: list[bool] = []
    for _ in range(pairs):
        order = [False, True]
        random.shuffle(order)
        flags += order
    timings, answers = server_calls(conn, probe, [probe.argument(rows, f) for f in flags])
    for foreign, elapsed, got in zip(flags, timings, answers, strict=True):
        figures.server[foreign].append(elapsed)
        figures.answers[foreign].add(got)


def line(label: str, figures: dict[bool, list[float]]) -> str:
    missing, foreign = figures[False], figures[True]
    m50, m99 = percentile(missing, 50), percentile(missing, 99)
    f50, f99 = percentile(foreign, 50), percentile(foreign, 99)
    return (
        f"    {label:<6} missing p50 {m50:8.1f} p99 {m99:8.1f} us | foreign p50 {f50:8.1f}"
        f" p99 {f99:8.1f} us | foreign/missing p50 {f50 / m50:5.2f}x p99 {f99 / m99:5.2f}x"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="admin URL of the server")
    parser.add_argument("--pairs", type=int, default=2000, help="pairs per RPC and clock")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=100, help="pairs per RPC, not counted")
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="migrations to compare with (see above)"
    )
    args = parser.parse_args()
    if args.pairs < args.rounds or args.rounds < 1:
        parser.error("--pairs must be at least --rounds, and --rounds at least 1")
    sides: dict[str, Path | None] = {"this": None}
    if args.baseline:
        sides["baseline"] = args.baseline
    per_round = args.pairs // args.rounds

    with ExitStack() as stack:
        conns: dict[str, Conn] = {}
        seeded: dict[str, RowsOfA] = {}
        for side, migrations in sides.items():
            url = stack.enter_context(
                scratch_database(args.database_url, "df_bench_oracle", False, migrations)
            )
            conns[side] = stack.enter_context(psycopg.connect(url))
            seeded[side] = seed(conns[side])
        server = conns["this"].info.parameter_status("server_version")
        figures = {(side, p.name): new_figures() for side in sides for p in PROBES}
        for side, conn in conns.items():
            for probe in PROBES:
                run_round(conn, seeded[side], probe, args.warmup, new_figures())
        for r in range(args.rounds):
            for side in list(sides)[:: 1 if r % 2 == 0 else -1]:
                for probe in PROBES:
                    run_round(
                        conns[side], seeded[side], probe, per_round, figures[(side, probe.name)]
                    )

    print(
        "An operator of tenant B calls on a missing id and on tenant A's row"
        f" (PostgreSQL {server}); {per_round * args.rounds} pairs per RPC and clock,"
        f" in {args.rounds} rounds"
    )
    alike = True
    for probe in PROBES:
        print(f"  {probe.name}")
        for side in sides:
            f = figures[(side, probe.name)]
            suffix = f" ({side})" if args.baseline else ""
            print(line("client" + suffix, f.client))
            print(line("server" + suffix, f.server))
            if f.answers[False] == f.answers[True] and len(f.answers[False]) == 1:
                print(f"    answer{suffix}: {next(iter(f.answers[False]))} (both alike)")
            else:
                alike = alike and side != "this"
                print(f"    ANSWERS DIFFER{suffix}: missing {sorted(f.answers[False])}")
                print(f"                   foreign {sorted(f.answers[True])}")
    # Different answers are an oracle whatever the timings say.
    return 0 if alike else 1


if __name__ == "__main__":
    sys.exit(main())
