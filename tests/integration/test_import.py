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


def staged_links(url: str, run_id: str) -> list[tuple[Any, ...]]:
    """(line, status, plaintiff, judgment, case) of a run's imported and duplicate rows."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select line_number, status, plaintiff_id, judgment_id, case_id"
            " from intake.simplicity_import_rows where run_id = %s and status <> 'failed'"
            " order by line_number",
            (run_id,),
        ).fetchall()


def run_id_of(stdout: str) -> str:
    return stdout.split()[1]


def test_one_file_into_two_tenants_gives_two_books(fresh_db_url: str) -> None:
    env = {"DATABASE_URL": fresh_db_url}
    created = run_cli("tenants", "create", "north", "--name", "North Collections", env=env)
    assert created.returncode == 0, created.stderr
    into_default = run_cli("import", "simplicity", str(SAMPLE), env=env)
    into_north = run_cli("import", "simplicity", str(SAMPLE), "--tenant", "north", env=env)
    for result, slug in ((into_default, "default"), (into_north, "north")):
        assert result.returncode == 0, result.stderr
        assert f"(simplicity_sample.csv, tenant {slug}): completed" in result.stdout
        assert "rows: 9 total, 5 imported, 1 duplicate, 3 failed" in result.stdout
    # Two books (plaintiffs, judgments and court cases per tenant) on shared entities.
    assert counts(fresh_db_url) == {
        "public.plaintiffs": 6,
        "public.judgments": 10,
        "judgments.cases": 10,
        "public.entities": 8,
    }
    with psycopg.connect(fresh_db_url) as conn:
        per_tenant = conn.execute(
            "select t.slug, count(distinct p.id), count(distinct j.id), count(distinct c.id)"
            " from public.tenants t"
            " join public.plaintiffs p on p.tenant_id = t.id"
            " join public.judgments j on j.plaintiff_id = p.id and j.tenant_id = t.id"
            " join judgments.cases c on c.judgment_id = j.id and c.tenant_id = t.id"
            " group by t.slug order by 1"
        ).fetchall()
    assert per_tenant == [("default", 3, 5, 5), ("north", 3, 5, 5)]

    # Again into the default tenant: every good row is a duplicate of default's rows.
    again = run_cli("import", "simplicity", str(SAMPLE), "--tenant", "DEFAULT", env=env)
    assert again.returncode == 0, again.stderr
    assert "rows: 9 total, 0 imported, 6 duplicate, 3 failed" in again.stdout
    default_links = {row[2:] for row in staged_links(fresh_db_url, run_id_of(into_default.stdout))}
    north_links = {row[2:] for row in staged_links(fresh_db_url, run_id_of(into_north.stdout))}
    again_links = {row[2:] for row in staged_links(fresh_db_url, run_id_of(again.stdout))}
    assert again_links == default_links
    assert not again_links & north_links
    assert counts(fresh_db_url)["public.judgments"] == 10


@pytest.mark.parametrize("tenant", ["nrth", "00000000-0000-4000-8000-00000000beef"])
def test_an_unknown_tenant_exits_2_with_one_line_and_writes_nothing(
    fresh_db_url: str, tenant: str
) -> None:
    result = run_cli(
        "import", "simplicity", str(SAMPLE), "--tenant", tenant, env={"DATABASE_URL": fresh_db_url}
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"dragonfly: tenant '{tenant}' does not exist (dragonfly tenants list shows them)"
    ]
    with psycopg.connect(fresh_db_url) as conn:
        row = conn.execute("select count(*) from intake.simplicity_import_runs").fetchone()
        assert row == (0,)
