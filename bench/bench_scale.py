"""How the console's reads, the nightly refresh and on-call reads grow with the book.

Usage::

    .venv/bin/python bench/bench_scale.py \\
        --database-url postgresql://postgres@127.0.0.1:5433/postgres --cases 10000 100000 1000000

For each size N (default 100k) it creates and migrates a database of its own, builds a book
of N open enforcement cases (plaintiffs, judgments, court cases, 3 events and a history row
per case) set-based with bench_enforcement.py's generator, settles it with one refresh pass
and VACUUM ANALYZE (``--keep`` keeps the database; ``--book NAME`` measures such a kept book
again, after migrating it to this tree: an upgrade of a big book is timed that way), and
measures, as ``enforcement_operator`` the way PostgREST runs the
console's reads (RLS applied):

* the ``v_priority_pipeline`` top 50 in its documented order written out, with a tier and
  with a stage filter, without ORDER BY, and ordered by ``tier_rank``;
* ``v_enforcement_overview`` freshly vacuumed, and right after a night that re-scored 5% and
  one that re-scored the whole book (pages not vacuumed yet);
* the refresh pass after the whole book was re-scored: its wall time, the longest wait of a
  console RPC aimed at the chunk the refresh is working on, RPC p99 (random cases) and console
  read p99 before it (alone, and with the console's probes running for 10 s: the same load
  as during the refresh, minus the refresh) and during it, and their ratio; then the no-op
  pass;
* ``dragonfly.queue_stats()`` with N messages queued and ``find_dead_letters`` by an error
  text that matches nothing among N dead letters.

``--refresh-only`` measures the refresh figures alone (RPC p99 before, the nights, the
no-op pass and its share of the whole-book pass).

With two or more sizes it prints each figure's growth factor per 10x (1 = flat, 10 = linear).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
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
from bench.bench_enforcement import MIRROR, as_operator, book_sql
from workers.db.migrate import default_migrations_dir, migrate
from workers.scheduler.refresh import WHOLE_PASS

Conn = psycopg.Connection[Any]
Figures = dict[str, float]

PIPELINE = "select * from public.v_priority_pipeline"
# The documented order (docs/rpc.md, "Views"): per tenant, then the ranking keys.
ORDERED = (
    " order by tenant_id, collectability_tier, priority_level, judgment_amount desc, judgment_id"
)
READS = {
    "pipeline top 50, documented order written out": f"{PIPELINE}{ORDERED} limit 50",
    "pipeline top 50, ordered, tier filter": (
        f"{PIPELINE} where collectability_tier = 'tier2'{ORDERED} limit 50"
    ),
    "pipeline top 50, ordered, stage filter": (
        f"{PIPELINE} where stage = 'bank_levy'{ORDERED} limit 50"
    ),
    "pipeline top 50, no order by": f"{PIPELINE} limit 50",
    "overview, freshly vacuumed": "select * from public.v_enforcement_overview",
}
BY_TIER_RANK = f"{PIPELINE} order by collectability_tier, tier_rank limit 50"
OVERVIEW = READS["overview, freshly vacuumed"]
CONSOLE_READ = READS["pipeline top 50, documented order written out"]
RESCORE = """
update judgments.cases as cc
   set collectability_score = s.score,
       collectability_tier = (select t.tier from public.enforcement_tier_lookup t
                               where t.min_score <= s.score order by t.min_score desc limit 1)
  from (select id, round(100 - collectability_score, 2) as score from judgments.cases) as s
 where s.id = cc.id and {where}
"""
RPC = "select public.log_enforcement_event(%s)"


def timed_read(conn: Conn, query: str) -> float:
    with conn.transaction(force_rollback=True):
        as_operator(conn)
        start = time.perf_counter()
        conn.execute(query).fetchall()
        return (time.perf_counter() - start) * 1000


def median_read(conn: Conn, query: str, repeat: int) -> float:
    timed_read(conn, query)  # warm-up
    return statistics.median(timed_read(conn, query) for _ in range(repeat))


def rpc_payload(case_id: str) -> Jsonb:
    return Jsonb(
        {
            "case_id": case_id,
            "event_kind": "bank_levy_filed",
            "document_path": f"levies/{random.getrandbits(64):x}.pdf",
        }
    )


def timed_rpc(conn: Conn, case_id: str) -> float:
    with conn.transaction():
        as_operator(conn)
        start = time.perf_counter()
        conn.execute(RPC, (rpc_payload(case_id),)).fetchall()
    return (time.perf_counter() - start) * 1000


def rpc_p99(conn: Conn, ids: list[str]) -> float:
    """p99 of 200 single-case RPCs on random cases, with nothing else running."""
    return percentile([timed_rpc(conn, random.choice(ids)) for _ in range(200)], 99)


class Probe(threading.Thread):
    """Calls ``work`` in a loop until stopped, keeping each call's duration (ms)."""

    def __init__(self, url: str, work: Callable[[Conn], float]) -> None:
        super().__init__(daemon=True)
        self.url, self.work = url, work
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url) as conn:
            while not self.stop.is_set():
                self.samples.append(self.work(conn))

    def finish(self) -> list[float]:
        self.stop.set()
        self.join()
        return self.samples


BEFORE_SECONDS = 10.0


def console_probes(url: str, ids: list[str]) -> tuple[Probe, Probe]:
    """The console's load, started: single-case RPCs on random cases, and its reads."""
    anywhere = Probe(url, lambda c: timed_rpc(c, random.choice(ids)))
    reads = Probe(url, lambda c: timed_read(c, random.choice((CONSOLE_READ, OVERVIEW))))
    anywhere.start()
    reads.start()
    return anywhere, reads


def next_chunk_case(conn: Conn) -> str | None:
    """A case of the chunk the refresh works on now (just after its committed cursor)."""
    row = conn.execute(
        "select c.id::text from public.enforcement_cases c "
        "where c.closed_at is null and c.id > coalesce("
        "(public.refresh_enforcement_metrics_progress() ->> 'after_id')::uuid, "
        "'00000000-0000-0000-0000-000000000000') "
        "order by c.id offset %s limit 1",
        (random.randrange(200),),
    ).fetchone()
    conn.rollback()
    return row[0] if row else None


def build(url: str, cases: int, settle: bool = True, kept: bool = False) -> list[str]:
    """Generate the book (or, ``kept``, take the one the database holds) and settle it."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        if not kept:
            with conn.transaction():
                conn.execute("set local session_replication_role = replica")
                conn.execute(book_sql(cases, 1000))
                conn.execute(MIRROR)
        conn.execute("vacuum analyze")
        if settle:
            conn.execute(WHOLE_PASS)  # the first night
            conn.execute("vacuum analyze")
        ids = case_ids(conn)
    elapsed = time.perf_counter() - started
    done = "settled" if kept else "built and settled"
    print(f"  {done} {cases:,} cases in {elapsed:.0f} s", flush=True)
    return ids


def upgrade(url: str) -> int:
    """Migrate a kept book to this tree's migrations; return its number of cases."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        applied = migrate(conn, default_migrations_dir())
        row = conn.execute("select count(*) from public.enforcement_cases").fetchone()
    elapsed = time.perf_counter() - started
    cases = int(row[0]) if row else 0
    print(f"  {cases:,} cases; {len(applied)} migrations applied in {elapsed:.1f} s", flush=True)
    return cases


def case_ids(conn: Conn) -> list[str]:
    return [r[0] for r in conn.execute("select id::text from public.enforcement_cases")]


def refresh_pass(conn: Conn) -> float:
    start = time.perf_counter()
    conn.execute(WHOLE_PASS)
    return time.perf_counter() - start


class Printed(dict[str, float]):
    """The figures of one size, each printed as it is measured (a long run shows progress)."""

    def __setitem__(self, label: str, value: float) -> None:
        print(f"    {label}: {value:,.1f}  (load {os.getloadavg()[0]:.1f})", flush=True)
        super().__setitem__(label, value)

    def update(self, other: Any = (), /, **kwargs: float) -> None:
        for label, value in dict(other, **kwargs).items():
            self[label] = value


def measure(
    url: str,
    cases: int,
    repeat: int,
    reads_only: bool = False,
    refresh_only: bool = False,
    overview_only: bool = False,
    kept: bool = False,
) -> Figures:
    ids = build(url, cases, settle=not reads_only, kept=kept)
    figures: Figures = Printed()
    if refresh_only:
        with psycopg.connect(url) as conn:
            figures["RPC p99 before the refresh (ms)"] = rpc_p99(conn, ids)
        nights(url, ids, repeat, figures)
        return figures
    console_reads(url, ids, repeat, figures, overview_only)
    if not reads_only:
        nights(url, ids, repeat, figures)
    if not overview_only:
        with psycopg.connect(url, autocommit=True) as admin:
            figures.update(on_call_reads(admin, cases, repeat))
            figures.update(sizes(admin))
    return figures


def console_reads(
    url: str, ids: list[str], repeat: int, figures: Figures, overview_only: bool = False
) -> None:
    """The console's reads on the vacuumed book, and RPC and read p99 with nothing else on."""
    reads = {"overview, freshly vacuumed": OVERVIEW} if overview_only else READS
    with psycopg.connect(url) as conn:
        for label, query in reads.items():
            figures[f"{label} (ms)"] = median_read(conn, query, repeat)
        if not overview_only:
            figures["pipeline top 50, order by tier_rank (ms)"] = median_read(conn, BY_TIER_RANK, 1)
        figures["RPC p99 before the refresh (ms)"] = rpc_p99(conn, ids)
        figures["console read p99 before the refresh (ms)"] = percentile(
            [timed_read(conn, q) for q in (CONSOLE_READ, OVERVIEW) * 50], 99
        )


def nights(url: str, ids: list[str], repeat: int, figures: Figures) -> None:
    """A 5% re-scoring night, a whole-book one with the console working during its refresh,
    and the no-op refresh after."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(RESCORE.format(where="abs(hashtext(cc.id::text)) % 20 = 0"))
        refresh_pass(admin)
    with psycopg.connect(url) as conn:
        figures["overview after a 5% night, not vacuumed (ms)"] = median_read(
            conn, OVERVIEW, repeat
        )
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(RESCORE.format(where="true"))
        # The console working as it will during the refresh (RPCs on random cases and reads,
        # one connection each) for BEFORE_SECONDS: the p99 the refresh is compared with.
        anywhere, reads = console_probes(url, ids)
        time.sleep(BEFORE_SECONDS)
        rpcs, read_times = anywhere.finish(), reads.finish()
        figures["RPC p99 before the refresh, console working (ms)"] = percentile(rpcs, 99)
        figures["console read p99 before the refresh, console working (ms)"] = percentile(
            read_times, 99
        )
        chunk = Probe(url, lambda c: timed_rpc(c, next_chunk_case(c) or ids[0]))
        chunk.start()
        anywhere, reads = console_probes(url, ids)
        figures["refresh after the whole book was re-scored (s)"] = refresh_pass(admin)
        waits, rpcs, read_times = chunk.finish(), anywhere.finish(), reads.finish()
        figures["longest console RPC on the refresh's chunk (ms)"] = max(waits)
        figures["RPC p99 during the refresh (ms)"] = percentile(rpcs, 99)
        figures["console read p99 during the refresh (ms)"] = percentile(read_times, 99)
        figures["RPC p99 during / before, console working (x)"] = (
            figures["RPC p99 during the refresh (ms)"]
            / figures["RPC p99 before the refresh, console working (ms)"]
        )
    with psycopg.connect(url) as conn:
        figures["overview after the whole-book night, not vacuumed (ms)"] = median_read(
            conn, OVERVIEW, repeat
        )
    with psycopg.connect(url, autocommit=True) as admin:
        figures["no-op refresh (s)"] = refresh_pass(admin)
    figures["no-op / whole-book refresh (%)"] = (
        100
        * figures["no-op refresh (s)"]
        / figures["refresh after the whole book was re-scored (s)"]
    )


SIZED = (
    "public.enforcement_cases",
    "public.enforcement_events",
    "public.enforcement_history",
    "public.judgments",
    "judgments.cases",
    "public.plaintiffs",
    "dragonfly.dead_letters",
)


def sizes(conn: Conn) -> Figures:
    """On-disk size (heap + indexes + TOAST) of the tables that grow with the book, in MB."""
    figures: Figures = {}
    for table in SIZED:
        row = conn.execute("select pg_total_relation_size(%s::regclass)", (table,)).fetchone()
        figures[f"size of {table} (MB)"] = (row[0] if row else 0) / 1e6
    return figures


def on_call_reads(conn: Conn, size: int, repeat: int) -> Figures:
    conn.execute("select pgmq.create('bench_scale')")
    conn.execute(
        "select pgmq.send_batch('bench_scale', array(select jsonb_build_object('n', g) "
        "from generate_series(1, %s) g))",
        (size,),
    )
    conn.execute(
        "insert into dragonfly.dead_letters (queue, msg_id, kind, idempotency_key, message, "
        "attempts, reason, last_error, dead_at) "
        "select 'bench_scale', g, 'enrich_case', 'k' || g, '{}'::jsonb, 5, 'max_attempts', "
        "'vendor returned HTTP ' || (500 + g %% 4) || ' for case ' || md5(g::text), "
        "now() - make_interval(secs => g) from generate_series(1, %s) g",
        (size,),
    )
    conn.execute("vacuum analyze dragonfly.dead_letters")
    conn.execute("analyze pgmq.q_bench_scale")

    def timed(query: str) -> float:
        start = time.perf_counter()
        conn.execute(query).fetchall()
        return (time.perf_counter() - start) * 1000

    stats = "select * from dragonfly.queue_stats()"
    search = "select * from dragonfly.find_dead_letters(p_error => 'no such error text')"
    timed(stats), timed(search)
    return {
        "queue_stats() with N queued (ms)": statistics.median(timed(stats) for _ in range(repeat)),
        "find_dead_letters, error text matching none of N (ms)": statistics.median(
            timed(search) for _ in range(repeat)
        ),
    }


def growth(small: float, large: float, factor: float) -> str:
    if small <= 0 or factor <= 1:
        return "—"
    return f"{(large / small) ** (1 / math.log10(factor)):.1f}"


def report(results: dict[int, Figures]) -> None:
    sizes = sorted(results)
    labels = list(results[sizes[0]])
    header = ["figure", *(f"{n:,}" for n in sizes)]
    pairs = list(itertools.pairwise(sizes))
    header += [f"growth {a:,}→{b:,}" for a, b in pairs]
    print("\n| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for label in labels:
        values = [results[n][label] for n in sizes]
        cells = [f"{v:,.1f}" if v < 100 else f"{v:,.0f}" for v in values]
        cells += [growth(results[a][label], results[b][label], b / a) for a, b in pairs]
        print(f"| {label} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--cases", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the generated databases")
    parser.add_argument(
        "--reads-only",
        action="store_true",
        help="skip the refresh nights (the console's and on-call reads, sizes only)",
    )
    parser.add_argument(
        "--refresh-only",
        action="store_true",
        help="only the refresh nights (RPC p99 before, the passes, waits and p99 during)",
    )
    parser.add_argument(
        "--overview-only",
        action="store_true",
        help="of the reads, only v_enforcement_overview (fresh and after the nights; the refresh "
        "and RPC figures stay): no pipeline, on-call reads or sizes",
    )
    parser.add_argument(
        "--book",
        metavar="DATABASE",
        help="measure the book a database of the server already holds (one kept with --keep, "
        "perhaps by an older tree): it is migrated to this tree's migrations first, timed",
    )
    args = parser.parse_args(argv)
    random.seed(20261202)
    if args.book:
        url = psycopg.conninfo.make_conninfo(args.database_url, dbname=args.book)
        cases = upgrade(url)
        flags = (args.reads_only, args.refresh_only, args.overview_only)
        report({cases: measure(url, cases, args.repeat, *flags, kept=True)})
        return 0
    results: dict[int, Figures] = {}
    for cases in args.cases:
        print(f"book of {cases:,} cases:", flush=True)
        with scratch_database(args.database_url, "df_bench_scale", keep=args.keep) as url:
            with psycopg.connect(url) as conn:
                row = conn.execute("show server_version").fetchone()
                print(f"  PostgreSQL {row[0] if row else '?'}; load {os.getloadavg()[0]:.2f}")
            results[cases] = measure(
                url, cases, args.repeat, args.reads_only, args.refresh_only, args.overview_only
            )
        print(f"  done; load {os.getloadavg()[0]:.2f}", flush=True)
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
