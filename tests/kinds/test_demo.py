"""The demo: the synthetic book generator (pure) and a small end-to-end `dragonfly demo`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.harness import run_cli
from workers.demo.generator import generate_book, write_csv
from workers.demo.seed import bundle_for
from workers.intake.simplicity import COLUMNS as IMPORT_COLUMNS
from workers.intake.simplicity import load_and_process


def test_the_book_is_deterministic_for_a_seed() -> None:
    assert generate_book(30, seed=3) == generate_book(30, seed=3)
    assert generate_book(30, seed=3) != generate_book(30, seed=4)


def test_the_book_has_variety() -> None:
    rows = generate_book(200, seed=7)
    assert len({r.case_number for r in rows}) == 200
    assert len({r.plaintiff_name for r in rows}) > 10
    kinds = {a.asset_type for r in rows for a in r.profile.assets}
    assert kinds == {"bank", "employer", "vehicle", "real_property"}
    assert sum(1 for r in rows if not r.profile.assets) > 20  # some debtors have nothing
    assert {r.debtor_type for r in rows} == {"person", "organization"}
    assert all(r.state == "NY" and r.judgment_amount > 0 for r in rows)
    # fictional phone numbers and reserved email domains only
    assert all("555-01" in r.plaintiff_phone for r in rows)
    assert all(r.plaintiff_email.split("@")[1].startswith("example.") for r in rows)


def test_the_csv_is_a_simplicity_export(tmp_path: Path) -> None:
    path = write_csv(generate_book(5, seed=1), tmp_path / "book.csv")
    with path.open(newline="") as fh:
        records = list(csv.DictReader(fh))
    assert len(records) == 5
    assert list(records[0]) == list(IMPORT_COLUMNS)


def test_every_generated_bundle_is_a_valid_enrichment_bundle() -> None:
    for row in generate_book(100, seed=5):
        bundle = bundle_for(row)
        assert bundle["source"] == "demo-skiptrace"
        assert len(bundle["assets"]) == len(row.profile.assets)


def test_the_book_imports_cleanly(fresh_db_url: str, tmp_path: Path) -> None:
    path = write_csv(generate_book(60, seed=9), tmp_path / "book.csv")
    with psycopg.connect(fresh_db_url) as conn:
        result = load_and_process(conn, path, created_by="test")
    assert (result.imported_rows, result.failed_rows) == (60, 0), result.bad_rows


@pytest.mark.slow
def test_a_small_demo_runs_end_to_end(fresh_db_url: str, tmp_path: Path) -> None:
    result = run_cli(
        "demo",
        "--cases",
        "20",
        "--seed",
        "11",
        "--copilot",
        "3",
        "--timeout",
        "150",
        "--csv",
        str(tmp_path / "book.csv"),
        # The owner's login, not the fleet's: the demo migrates and seeds the database
        # before it starts its fleet with the same DATABASE_URL.
        env={"DATABASE_URL": fresh_db_url, "DRAGONFLY_HOME": str(tmp_path / "home")},
        timeout=170,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for heading in (
        "Jobs per queue",
        "Collectability",
        "Enforcement stage",
        "Actions opened",
        "Alerts:",
        "Dead letters: 0",
        "Case Copilot briefs: 3",
    ):
        assert heading in out, out
    with psycopg.connect(fresh_db_url) as conn:
        done: dict[str, Any] = dict(
            conn.execute("select kind, count(*) from dragonfly.completed_jobs group by kind")
        )
        scored = conn.execute(
            "select count(*) from judgments.cases where collectability_tier is not null"
        ).fetchone()
        planned = conn.execute(
            "select count(*) from public.enforcement_cases where next_action_at is not null"
        ).fetchone()
    assert done["enrich"] == 20
    assert done["enforce"] >= 20
    assert done["case_copilot"] == 3
    assert done["outreach"] >= 1
    assert scored == (20,)
    assert planned == (20,)
