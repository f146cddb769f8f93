"""The documented step that revokes anon from the three public RPCs, run as docs/security.md
gives it: afterwards anon may call none of them and signed-in users still may; the undo
restores the spec's grants."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

from tests.security.support import become, refusal

Conn = psycopg.Connection[Any]

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
RPCS = (
    "public.queue_job(jsonb)",
    "public.request_case_copilot(text, text)",
    "public.log_call_outcome(text, text, text, text, text, text)",
)


def documented_step() -> tuple[str, str]:
    """The revoke and the undo, from the SQL block of the doc's section."""
    section = DOC.read_text().split("## Revoking anon from the public RPCs", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.S)
    assert block is not None
    revoke, undo = block.group(1).split("-- undo:")
    return revoke, undo


def may_execute(conn: Conn, role: str) -> list[bool]:
    return [
        bool(
            conn.execute(
                "select has_function_privilege(%s, %s, 'execute')", (role, rpc)
            ).fetchone()[0]  # type: ignore[index]
        )
        for rpc in RPCS
    ]


def test_the_documented_revoke_and_its_undo(db: Conn) -> None:
    revoke, undo = documented_step()
    assert may_execute(db, "anon") == [True, True, True]
    db.execute(revoke)
    assert may_execute(db, "anon") == [False, False, False]
    assert may_execute(db, "authenticated") == [True, True, True]

    # As PostgREST would run anon's call: refused by PostgreSQL itself.
    def anon_call() -> None:
        become(db, "anon")
        db.execute("select public.queue_job('{}'::jsonb)")

    assert refusal(db, anon_call).sqlstate == "42501"
    db.execute(undo)
    assert may_execute(db, "anon") == [True, True, True]
