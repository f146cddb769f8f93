"""``dragonfly import simplicity FILE.csv``: the real CLI against a database of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.harness import REPO, run_cli

SAMPLE = REPO / "tests" / "data" / "simplicity_sample.csv"
HEADER = (
    "plaintiff_name,plaintiff_email,plaintiff_phone,plaintiff_address,plaintiff_city,"
    "plaintiff_state,plaintiff_zip,debtor_name,debtor_type,case_number,court,county,state,"
    "judgment_amount,judgment_date,priority"
)

pytestmark = pytest.mark.slow


def counts(url: str) -> dict[str, int]:
    tables = ("public.plaintiffs", "public.judgments", "judgments.cases", "public.entities")
    with psycopg.connect(url) as conn:
        result: dict[str, int] = {}
        for table in tables:
            row = conn.execute(f"select count(*) from {table}").fetchone()
            assert row is not None
            result[table] = int(row[0])
        return result


def test_sample_file_imports_good_rows_and_reports_bad_ones(fresh_db_url: str) -> None:
    result = run_cli("import", "simplicity", str(SAMPLE), env={"DATABASE_URL": fresh_db_url})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert ": completed" in out
    assert "rows: 9 total, 5 imported, 1 duplicate, 3 failed" in out
    assert "line 6: plaintiff_email 'not-an-email' is not an email address" in out
    assert "line 7: plaintiff_name is required" in out
    assert "line 9: debtor_type 'alien' is not person or organization" in out
    assert counts(fresh_db_url) == {
        "public.plaintiffs": 3,
        "public.judgments": 5,
        "judgments.cases": 5,
        "public.entities": 8,
    }

    # The same file again: a new run whose good rows are all duplicates; nothing changes.
    again = run_cli("import", "simplicity", str(SAMPLE), env={"DATABASE_URL": fresh_db_url})
    assert again.returncode == 0, again.stderr
    assert "rows: 9 total, 0 imported, 6 duplicate, 3 failed" in again.stdout
    assert counts(fresh_db_url)["public.judgments"] == 5


def test_staged_rows_keep_their_file_line_numbers(fresh_db_url: str, tmp_path: Path) -> None:
    csv_file = tmp_path / "multiline.csv"
    csv_file.write_text(
        HEADER + "\n"
        'Acme LLC,,,"1 Main St\nSuite 2",,,,John Smith,,CV-1,,,,100,,\n'
        "\n"
        "Acme LLC,,,,,,,Jane Doe,,CV-2,,,,oops,,\n"
        "Acme LLC,too,few,fields\n",
        encoding="utf-8",
    )
    result = run_cli("import", "simplicity", str(csv_file), env={"DATABASE_URL": fresh_db_url})
    assert result.returncode == 0, result.stderr
    assert "rows: 3 total, 1 imported, 0 duplicate, 2 failed" in result.stdout
    assert "line 5: judgment_amount 'oops' is not a positive amount" in result.stdout
    assert "line 6: expected 16 fields, found 4" in result.stdout
    with psycopg.connect(fresh_db_url) as conn:
        rows: list[tuple[Any, ...]] = conn.execute(
            "select line_number, status from intake.simplicity_import_rows order by 1"
        ).fetchall()
    assert rows == [(2, "imported"), (5, "failed"), (6, "failed")]


def test_columns_may_come_in_any_order_and_optional_ones_may_be_left_out(
    fresh_db_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "short.csv"
    csv_file.write_text(
        "\ufeffCase_Number, judgment_amount,debtor_name,plaintiff_name\n"
        "CV-9,250,Widget Corp,Maria Garcia\n",
        encoding="utf-8",
    )
    result = run_cli("import", "simplicity", str(csv_file), env={"DATABASE_URL": fresh_db_url})
    assert result.returncode == 0, result.stderr
    assert "1 imported" in result.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("", "the file is empty"),
        ("plaintiff_name,debtor_name,case_number\nA,B,C\n", "required column(s) missing"),
        (HEADER + ",colour\n", "unknown column(s) in header: 'colour'"),
        ("plaintiff_name,plaintiff_name,debtor_name,case_number,judgment_amount\n", "repeated"),
        (HEADER + "\n" + 'a,"b"c,' + ",".join([""] * 14) + "\n", "malformed CSV at line 2"),
        (b"plaintiff_name\xff\n", "not UTF-8"),
    ],
)
def test_unreadable_files_exit_2_with_one_line_and_write_nothing(
    fresh_db_url: str, tmp_path: Path, content: str | bytes | None, expected: str
) -> None:
    csv_file = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        csv_file.write_bytes(content)
    elif content is not None:
        csv_file.write_text(content, encoding="utf-8")
    result = run_cli("import", "simplicity", str(csv_file), env={"DATABASE_URL": fresh_db_url})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    with psycopg.connect(fresh_db_url) as conn:
        row = conn.execute("select count(*) from intake.simplicity_import_runs").fetchone()
        assert row == (0,)
