"""find_dead_letters by error text: a literal, case-insensitive substring, served by a trigram
index where pg_trgm is installed."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

Conn = psycopg.Connection[Any]

ERRORS = [
    "Vendor returned HTTP 503",
    "vendor timeout after 30s",
    "100% of retries used",
    "bad field first_name",
    "bad field firstXname",
    r"path C:\tmp\x",
]


def add_dead_letters(db: Conn, errors: list[str], start: int = 1) -> None:
    db.execute(
        "insert into dragonfly.dead_letters (queue, msg_id, kind, idempotency_key, message, "
        "attempts, reason, last_error) "
        "select 'search_q', %s + o - 1, 'k', 'key' || o, '{}'::jsonb, 1, 'permanent', e "
        "from unnest(%s::text[]) with ordinality as u(e, o)",
        (start, errors),
    )


def found(db: Conn, text: str) -> list[str]:
    rows = db.execute(
        "select last_error from dragonfly.find_dead_letters(p_queue => 'search_q', p_error => %s)",
        (text,),
    ).fetchall()
    return sorted(r[0] for r in rows)


def test_error_text_is_a_literal_case_insensitive_substring(db: Conn) -> None:
    add_dead_letters(db, ERRORS)
    assert found(db, "VENDOR") == ["Vendor returned HTTP 503", "vendor timeout after 30s"]
    assert found(db, "100%") == ["100% of retries used"]
    assert found(db, "%") == ["100% of retries used"]
    assert found(db, "first_name") == ["bad field first_name"]
    assert found(db, r"c:\tmp") == [r"path C:\tmp\x"]
    assert found(db, "no such error text") == []
    assert len(found(db, "")) == len(ERRORS)


def test_the_error_search_has_a_trigram_index(db: Conn) -> None:
    if not db.execute(
        "select exists (select 1 from pg_extension where extname = 'pg_trgm')"
    ).fetchone()[0]:  # type: ignore[index]
        pytest.skip("pg_trgm is not installed on this server")
    add_dead_letters(
        db, [f"vendor returned HTTP {500 + i % 4} for case {i:x}" for i in range(5000)]
    )
    db.execute("analyze dragonfly.dead_letters")
    # Whether the index can serve the search; at scale the planner picks it by itself
    # (bench/bench_scale.py).
    db.execute("set local enable_seqscan = off")
    plan = "\n".join(
        r[0]
        for r in db.execute(
            "explain select * from dragonfly.dead_letters where last_error ilike '%no such error%'"
        ).fetchall()
    )
    assert "dead_letters_last_error_trgm_idx" in plan, plan
