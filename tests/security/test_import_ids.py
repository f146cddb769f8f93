"""Ids of imported rows cannot be derived from one another.

A UUIDv7-layout id is 48 bits of clock, the version, a 32-bit sequence (the line number),
and 40 more bits (the last 10 hex digits). Before, those 40 bits were one random value per
run and kind of row, so one id gave away its neighbours; they must now differ row by row."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.sql.enforcement_seed import one

Conn = psycopg.Connection[Any]

ROWS = 40


def import_run(conn: Conn, tag: str = "A") -> list[tuple[str, str, str]]:
    """Stage and import ``ROWS`` good rows; return (judgment, case, debtor entity) ids."""
    run_id = one(
        conn,
        "insert into intake.simplicity_import_runs (source_file) values ('ids.csv') returning id",
    )
    conn.execute(
        "insert into intake.simplicity_import_rows"
        " (run_id, line_number, plaintiff_name, debtor_name, debtor_type, case_number,"
        "  judgment_amount)"
        " select %s, n + 1, 'Acme Funding LLC', 'Debtor ' || %s || n, 'person',"
        "        'CV-IDS-' || %s || n, '100'"
        "   from generate_series(1, %s) as n",
        (run_id, tag, tag, ROWS),
    )
    result = one(conn, "select public.process_simplicity_imports(%s)", (run_id,))
    assert result["imported_rows"] == ROWS
    rows = conn.execute(
        "select r.judgment_id::text, r.case_id::text, j.debtor_entity_id::text"
        " from intake.simplicity_import_rows r join public.judgments j on j.id = r.judgment_id"
        " where r.run_id = %s order by r.line_number",
        (run_id,),
    ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def tail(uuid_text: str) -> str:
    """The 40 bits after the sequence number."""
    return uuid_text.replace("-", "")[-10:]


def test_every_imported_row_has_random_bits_of_its_own(db: Conn) -> None:
    ids = import_run(db)
    tails = [tail(i) for row in ids for i in row]
    # 120 ids, 120 different 40-bit tails: no tail is shared between rows or kinds of row.
    assert len(set(tails)) == len(tails) == 3 * ROWS


def test_ids_stay_time_ordered(db: Conn) -> None:
    ids = import_run(db)
    for column in range(3):
        heads = [row[column].replace("-", "")[:22] for row in ids]
        assert heads == sorted(heads)


def test_two_runs_share_no_random_bits(db: Conn) -> None:
    first = {tail(i) for row in import_run(db, "A") for i in row}
    second = {tail(i) for row in import_run(db, "B") for i in row}
    assert not first & second
