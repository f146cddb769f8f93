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
from workers.demo.tenants import TENANTS, operator_email, split
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


def test_the_book_is_dealt_out_to_the_tenants_whole() -> None:
    rows = generate_book(21, seed=2)
    parts = split(rows, len(TENANTS))
    assert [len(p) for p in parts] == [11, 10]
    assert sorted(r.case_number for p in parts for r in p) == sorted(r.case_number for r in rows)
    # The big creditors hold judgments in both tenants: one plaintiff in each.
    assert {r.plaintiff_name for r in parts[0]} & {r.plaintiff_name for r in parts[1]}


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
    assert_tenants_isolated(fresh_db_url, out, per_tenant=10)


def assert_tenants_isolated(url: str, out: str, per_tenant: int) -> None:
    """Half the book in each tenant, each with its operator, and the summary's isolation
    lines: each operator sees its own tenant's cases and none of the other's."""
    with psycopg.connect(url) as conn:
        split_cases = conn.execute(
            "select t.slug, count(c.id) from public.tenants t"
            " left join public.enforcement_cases c on c.tenant_id = t.id group by 1 order by 1"
        ).fetchall()
        operators = conn.execute(
            "select t.slug, u.email, m.role from public.tenant_members m"
            " join public.tenants t on t.id = m.tenant_id join auth.users u on u.id = m.user_id"
            " order by 1"
        ).fetchall()
        overview_readable = conn.execute(
            "select has_table_privilege('authenticated', 'public.enforcement_overview_rollup',"
            " 'select')"
        ).fetchone()
    assert split_cases == [("default", per_tenant), ("north", per_tenant)]
    assert operators == [(slug, operator_email(slug), "operator") for slug, _n in TENANTS]
    lines = out.splitlines()
    start = lines.index(
        "Tenant isolation: what each operator sees, signed in (role authenticated, its JWT sub)"
    )
    for line, (slug, _name) in zip(lines[start + 1 : start + 3], TENANTS, strict=True):
        assert line.split()[:2] == [slug, operator_email(slug)], line
        assert f"own cases {per_tenant} of {per_tenant}" in line, line
        assert f"other tenants' 0 of {per_tenant}" in line, line
        if overview_readable == (True,):
            assert f"overview: {per_tenant} open" in line, line
        else:
            assert "overview: not readable signed in" in line, line


def _demo(url: str, tmp_path: Path, copilot: int) -> str:
    result = run_cli(
        "demo",
        "--cases",
        "10",
        "--seed",
        "3",
        "--copilot",
        str(copilot),
        "--timeout",
        "150",
        # The owner's login, as in the end-to-end test above: the demo migrates and seeds.
        env={"DATABASE_URL": url, "DRAGONFLY_HOME": str(tmp_path / "home")},
        timeout=170,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _section_total(out: str, heading: str) -> int:
    """The sum of the counts on the indented lines under ``heading``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    total = 0
    for line in lines[start + 1 :]:
        if not line.startswith("  ") or line.strip().startswith("("):
            break
        total += int(line.split()[-1])
    return total


@pytest.mark.slow
def test_a_second_run_on_the_same_book_counts_only_its_own_work(
    fresh_db_url: str, tmp_path: Path
) -> None:
    _demo(fresh_db_url, tmp_path, copilot=2)
    with psycopg.connect(fresh_db_url) as conn:
        between = conn.execute("select now()").fetchone()[0]  # type: ignore[index]
    second = _demo(fresh_db_url, tmp_path, copilot=1)
    # Each tenant's part is found again in that tenant.
    for slug in ("default", "north"):
        assert f"Imported 5 into {slug} through the Simplicity path: 0 new, 5 already known" in (
            second
        ), second
    assert_tenants_isolated(fresh_db_url, second, per_tenant=5)

    with psycopg.connect(fresh_db_url) as conn:

        def count(query: str) -> int:
            return int(conn.execute(query, (between,)).fetchone()[0])  # type: ignore[index]

        actions = count("select count(*) from public.enforcement_actions where opened_at >= %s")
        alerts = count("select count(*) from dragonfly.alert_deliveries where created_at >= %s")
        briefs = count(
            "select count(distinct enforcement_case_id) from public.case_copilot_outputs"
            " where created_at >= %s"
        )
        deferred = count(
            "select count(*) from pgmq.q_outreach"
            " where read_ct = 0 and vt > now() and enqueued_at >= %s"
        )
    assert f"Actions opened: {actions}\n" in second, second
    assert _section_total(second, "Alerts:") == alerts, second
    assert f"Case Copilot briefs: {briefs} " in second, second
    assert briefs == 1
    outreach_row = next(line for line in second.splitlines() if line.startswith("  outreach "))
    assert int(outreach_row.split()[2]) == deferred, second
