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
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import scratch_database
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


def time_ids(conn: psycopg.Connection[Any], rows: int) -> tuple[float, float]:
    """Best of three alternating timings of the two id schemes for ``rows`` rows."""
    best = [float("inf"), float("inf")]
    for _ in range(3):
        for slot, query in enumerate((IDS_PER_RUN_SUFFIX, IDS_PER_ROW_SUFFIX)):
            started = time.perf_counter()
            conn.execute(query, (rows,)).fetchone()
            best[slot] = min(best[slot], time.perf_counter() - started)
    return best[0], best[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="admin URL of the server")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    rows = generate(args.rows, args.seed)
    with scratch_database(args.database_url, "df_bench_import", args.keep) as url:
        with psycopg.connect(url) as conn:
            started = time.perf_counter()
            run_id = stage(conn, rows)
            staged = time.perf_counter() - started
            conn.execute("analyze intake.simplicity_import_rows")
            conn.commit()

            started = time.perf_counter()
            result = conn.execute(
                "select public.process_simplicity_imports(%s)", (run_id,)
            ).fetchone()
            conn.commit()
            elapsed = time.perf_counter() - started
            assert result is not None
            summary = result[0]

            started = time.perf_counter()
            again = conn.execute(
                "select public.process_simplicity_imports(%s)", (run_id,)
            ).fetchone()
            conn.commit()
            rerun = time.perf_counter() - started
            assert again is not None
            assert again[0]["processed_now"] == 0
            per_run, per_row = time_ids(conn, args.rows)

        server = psycopg.connect(url).info.parameter_status("server_version")
    rate = args.rows / elapsed
    print(f"process_simplicity_imports, {args.rows:,} rows (PostgreSQL {server})")
    print(f"  staged with COPY:   {staged:8.2f} s  ({args.rows / staged:,.0f} rows/s)")
    print(f"  processed:          {elapsed:8.2f} s  ({rate:,.0f} rows/s; target >= 20,000)")
    print(f"  processed again:    {rerun:8.3f} s  (changes nothing)")
    print(
        f"  outcome: {summary['status']}: {summary['imported_rows']:,} imported, "
        f"{summary['duplicate_rows']:,} duplicate, {summary['failed_rows']:,} failed"
    )
    print(
        f"  ids of the rows:    {per_run:8.3f} s with one suffix per run, {per_row:.3f} s per row"
        f" (+{per_row - per_run:.3f} s, {100 * (per_row - per_run) / elapsed:.1f}% of the import)"
    )
    return 0 if rate >= 20_000 else 1


if __name__ == "__main__":
    sys.exit(main())
