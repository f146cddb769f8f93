"""``dragonfly db guard``: the live schema against the manifest, and the drift it catches."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.harness import run_cli

pytestmark = pytest.mark.slow


def test_a_migrated_database_matches_the_checked_in_manifest(fresh_db_url: str) -> None:
    result = run_cli("db", "guard", env={"DATABASE_URL": fresh_db_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "schema matches" in result.stdout


@pytest.fixture
def manifest(fresh_db_url: str, tmp_path: Path) -> Path:
    """A manifest written from the fresh database, so drift tests do not depend on the
    checked-in one being current."""
    path = tmp_path / "manifest.json"
    written = run_cli(
        "db", "guard", "--write", "--manifest", str(path), env={"DATABASE_URL": fresh_db_url}
    )
    assert written.returncode == 0, written.stderr
    clean = run_cli("db", "guard", "--manifest", str(path), env={"DATABASE_URL": fresh_db_url})
    assert clean.returncode == 0, clean.stdout
    return path


def guard_after(url: str, manifest: Path, ddl: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ddl)
    result = run_cli("db", "guard", "--manifest", str(manifest), env={"DATABASE_URL": url})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "schema drift" in result.stdout
    return result.stdout


def test_guard_catches_a_dropped_column(fresh_db_url: str, manifest: Path) -> None:
    out = guard_after(fresh_db_url, manifest, "alter table public.plaintiffs drop column email")
    assert "missing     column public.plaintiffs.email: text" in out


def test_guard_catches_a_revoked_grant(fresh_db_url: str, manifest: Path) -> None:
    out = guard_after(
        fresh_db_url, manifest, "revoke execute on function public.queue_job(jsonb) from anon"
    )
    assert "changed     execute on public.queue_job(payload jsonb): expected anon," in out


def test_guard_catches_a_resurrected_retired_rpc(fresh_db_url: str, manifest: Path) -> None:
    out = guard_after(
        fresh_db_url,
        manifest,
        "create function public.ack_job(queue_name text, msg_id bigint) returns boolean"
        " language sql as 'select true'",
    )
    assert "retired     function public.ack_job(queue_name text, msg_id bigint) exists" in out


def test_guard_catches_rls_turned_off(fresh_db_url: str, manifest: Path) -> None:
    out = guard_after(
        fresh_db_url, manifest, "alter table public.plaintiffs disable row level security"
    )
    assert "changed     table public.plaintiffs: expected row level security on" in out


def test_guard_refuses_a_bad_manifest_with_exit_2(fresh_db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    result = run_cli("db", "guard", "--manifest", str(bad), env={"DATABASE_URL": fresh_db_url})
    assert result.returncode == 2
    assert "is not valid JSON" in result.stderr
