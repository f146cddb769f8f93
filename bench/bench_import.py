"""Benchmark: process_simplicity_imports() on a generated Simplicity export.

    .venv/bin/python bench/bench_import.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL is an admin URL: the benchmark creates and migrates a scratch database on that
server, stages a generated export (default 100,000 rows: ~300 plaintiffs, one debtor per
row, 2% invalid rows, 1% repeated case numbers) with COPY, then times the RPC alone and
prints rows per second (target: >= 20,000). A second call on the same run is timed too
(it must change nothing). Then, in the same database, the cost of the ids' per-row random
bits: a row's judgment, case and debtor ids, timed for the rows' count with one suffix per
run (the scheme before ids became underivable) and with md5(secret || line) per row,
alternating three times (the best of each is printed). The scratch database is dropped
afterwards.

``--compare-unpinned`` times the same export four times, each on a scratch database of its
own: migrated up to before 20261202120200 (intake helpers with no search_path, the SQL ones
inlinable), as migrated, as migrated, before; and prints the mean of each and their ratio.
Then each helper alone on both: the fastest of five timings of one call per row (a figure
that a busy machine disturbs less).
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import scratch_database
from workers.db.migrate import default_migrations_dir
from workers.intake.simplicity import COLUMNS

FIRST = ["John", "Jane", "Maria", "Robert", "Ann", "Sam", "Wei", "Olga", "Luis", "Fatima"]
LAST = ["Smith", "Garcia", "Chen", "Brown", "Lee", "Khan", "Novak", "Diaz", "Okafor", "Rossi"]
COUNTIES = ["New York", "Kings", "Queens", "Bronx", "Richmond", "Nassau"]
PRIORITIES = ["urgent", "high", "normal", "normal", "normal", "low", ""]


def generate(rows: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    plaintiffs = [
        (f"Creditor {i:03d} Funding LLC", f"ops{i}@creditor{i}.example", f"212555{i:04d}")
        for i in range(300)
    ]
    out: list[list[str]] = []
    for i in range(rows):
        name, email, phone = plaintiffs[rng.randrange(len(plaintiffs))]
        debtor = f"{rng.choice(FIRST)} {rng.choice(LAST)} {i:06d}"
        case_number = f"CV-{2020 + i % 5}-{i:07d}"
        amount = f"{rng.randint(500, 250_000)}.{rng.randint(0, 99):02d}"
        day = f"20{rng.randint(15, 24):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        row = [
            name,
            email,
            phone,
            "1 Main St",
            "New York",
            "NY",
            "10001",
            debtor,
            "person",
            case_number,
            "Civil Court",
            rng.choice(COUNTIES),
            "NY",
            amount,
            day,
            rng.choice(PRIORITIES),
        ]
        roll = rng.random()
        if roll < 0.02:
            row[13] = "n/a"  # invalid amount
        elif roll < 0.03 and i > 0:
            row[9] = f"CV-{2020 + (i - 1) % 5}-{i - 1:07d}"  # repeats the previous case number
        out.append(row)
    return out


def stage(conn: psycopg.Connection[Any], rows: list[list[str]]) -> Any:
    run = conn.execute(
        "insert into intake.simplicity_import_runs (source_file) values ('bench.csv') returning id"
    ).fetchone()
    assert run is not None
    columns = ", ".join(["run_id", "line_number", *COLUMNS])
    with conn.cursor().copy(f"copy intake.simplicity_import_rows ({columns}) from stdin") as copy:
        for i, row in enumerate(rows, start=2):
            copy.write_row([run[0], i, *[v or None for v in row]])
    conn.commit()
    return run[0]


PINNED_BY = "20261202120200_intake_helpers_search_path.sql"
"""The migration that pinned the intake helpers' search_path (and made the SQL ones PL/pgSQL)."""


@dataclass
class Timing:
    staged: float
    processed: float
    rerun: float
    summary: dict[str, Any]
    server: str


def measure(url: str, rows: list[list[str]]) -> Timing:
    """Stage ``rows``, then time process_simplicity_imports on them, twice."""
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        run_id = stage(conn, rows)
        staged = time.perf_counter() - started
        conn.execute("analyze intake.simplicity_import_rows")
        conn.commit()

        started = time.perf_counter()
        result = conn.execute("select public.process_simplicity_imports(%s)", (run_id,)).fetchone()
        conn.commit()
        elapsed = time.perf_counter() - started
        assert result is not None

        started = time.perf_counter()
        again = conn.execute("select public.process_simplicity_imports(%s)", (run_id,)).fetchone()
        conn.commit()
        rerun = time.perf_counter() - started
        assert again is not None
        assert again[0]["processed_now"] == 0
        server = str(conn.info.parameter_status("server_version"))
    return Timing(staged, elapsed, rerun, result[0], server)


HELPER_CALLS = {
    "guess_entity_type": "intake.guess_entity_type('Acme Holdings LLC ' || g)",
    "normalize_email": "intake.normalize_email('Ops' || g || '@Creditor.example')",
    "normalize_entity_name": "intake.normalize_entity_name('person', 'Smith, John ' || g)",
    "normalize_phone": "intake.normalize_phone('(212) 555-' || lpad((g %% 10000)::text, 4, '0'))",
    "parse_simplicity_date": "intake.parse_simplicity_date('3/' || (g %% 28 + 1) || '/2021')",
    "time_ordered_uuid": "intake.time_ordered_uuid('018f3c2a1b00', g, '0123456789')",
}
"""One call of each pinned helper per row, with arguments that vary by row (no folding)."""


def helper_costs(url: str, calls: int, rounds: int = 5) -> dict[str, float]:
    """Per helper, microseconds per call: the fastest of ``rounds`` timings of ``calls``
    calls in one query (the minimum is what a busy machine disturbs least)."""
    costs: dict[str, float] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name, call in HELPER_CALLS.items():
            best = float("inf")
            for _ in range(rounds):
                started = time.perf_counter()
                conn.execute(f"select count({call}) from generate_series(1, %s) as g", (calls,))
                best = min(best, time.perf_counter() - started)
            costs[name] = best / calls * 1e6
    return costs


# The ids of one imported row as the import makes them: judgment, case and debtor entity
# (a plaintiff entity only per plaintiff); before, one suffix per run; now, one digest per
# line for judgment and case and one for the debtor.
IDS_PER_RUN_SUFFIX = """
select count(x.j) + count(x.c) + count(x.d)
  from (select intake.time_ordered_uuid('0190f00000ab', i, 'a1b2c3d4e5') as j,
               intake.time_ordered_uuid('0190f00000ab', i, 'b1b2c3d4e5') as c,
               intake.time_ordered_uuid('0190f00000ab', i, 'c1b2c3d4e5') as d
          from generate_series(1, %s) as i) as x
"""
IDS_PER_ROW_SUFFIX = """
select count(x.j) + count(x.c) + count(x.d)
  from (select intake.time_ordered_uuid('0190f00000ab', i, substr(r.bits, 1, 10)) as j,
               intake.time_ordered_uuid('0190f00000ab', i, substr(r.bits, 11, 10)) as c,
               intake.time_ordered_uuid('0190f00000ab', i,
                   substr(md5('0a0a0a0a-1111-4222-8333-444444444444:' || i), 1, 10)) as d
          from generate_series(1, %s) as i
         cross join lateral (
               select md5('6f1d7c4e-0000-4000-8000-000000000001:' || i) as bits) as r) as x
"""


def time_ids(url: str, rows: int) -> tuple[float, float]:
    """Best of three alternating timings of the two id schemes for ``rows`` rows."""
    best = [float("inf"), float("inf")]
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(3):
            for slot, query in enumerate((IDS_PER_RUN_SUFFIX, IDS_PER_ROW_SUFFIX)):
                started = time.perf_counter()
                conn.execute(query, (rows,)).fetchone()
                best[slot] = min(best[slot], time.perf_counter() - started)
    return best[0], best[1]


@contextmanager
def migrations_before(name: str) -> Iterator[Path]:
    """A directory with the project's migrations that sort before ``name``."""
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(default_migrations_dir().glob("*.sql")):
            if path.name < name:
                shutil.copy(path, tmp)
        yield Path(tmp)


def report(title: str, rows: int, t: Timing) -> float:
    rate = rows / t.processed
    print(f"process_simplicity_imports, {rows:,} rows (PostgreSQL {t.server}){title}")
    print(f"  staged with COPY:   {t.staged:8.2f} s  ({rows / t.staged:,.0f} rows/s)")
    print(f"  processed:          {t.processed:8.2f} s  ({rate:,.0f} rows/s; target >= 20,000)")
    print(f"  processed again:    {t.rerun:8.3f} s  (changes nothing)")
    s = t.summary
    print(
        f"  outcome: {s['status']}: {s['imported_rows']:,} imported, "
        f"{s['duplicate_rows']:,} duplicate, {s['failed_rows']:,} failed"
    )
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="admin URL of the server")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--compare-unpinned",
        action="store_true",
        help="compare with the database as it was before the intake helpers' search_path\n"
        "was pinned (see above)",
    )
    args = parser.parse_args()

    rows = generate(args.rows, args.seed)
    if not args.compare_unpinned:
        with scratch_database(args.database_url, "df_bench_import", args.keep) as url:
            timing = measure(url, rows)
            per_run, per_row = time_ids(url, args.rows)
        rate = report("", args.rows, timing)
        print(
            f"  ids of the rows:    {per_run:8.3f} s with one suffix per run, {per_row:.3f} s per"
            f" row (+{per_row - per_run:.3f} s, {100 * (per_row - per_run) / timing.processed:.1f}%"
            " of the import)"
        )
        return 0 if rate >= 20_000 else 1

    # Before, pinned, pinned, before: each on a scratch database of its own, in an order that
    # cancels a steady drift of the machine's speed (caches warming, other load).
    url = args.database_url
    timings: dict[bool, list[Timing]] = {False: [], True: []}
    with migrations_before(PINNED_BY) as before:
        for pinned in (False, True, True, False):
            with scratch_database(
                url, "df_bench_import", args.keep, None if pinned else before
            ) as db:
                timing = measure(db, rows)
            timings[pinned].append(timing)
            report("; as migrated" if pinned else f"; before {PINNED_BY}", args.rows, timing)
        with scratch_database(url, "df_bench_import", args.keep, before) as db:
            old_costs = helper_costs(db, calls=args.rows)
    with scratch_database(url, "df_bench_import", args.keep) as db:
        new_costs = helper_costs(db, calls=args.rows)
    old, new = (sum(t.processed for t in timings[k]) / 2 for k in (False, True))
    print(f"mean processed: before {old:.2f} s, as migrated {new:.2f} s; ratio {new / old:.3f}")
    print(f"per call, fastest of 5 x {args.rows:,} calls in one query (before -> as migrated):")
    for name, old_us in old_costs.items():
        print(f"  {name:24} {old_us:6.2f} -> {new_costs[name]:6.2f} us")
    return 0 if args.rows / new >= 20_000 else 1


if __name__ == "__main__":
    sys.exit(main())
