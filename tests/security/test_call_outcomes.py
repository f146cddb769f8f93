"""log_call_outcome as the internet calls it (anon key, or any signed-in user), and as the
Ops Console (a signed-in member of the plaintiff's tenant) and the fleet call it.

Each refusal is checked for its SQLSTATE, for its message (one answer for every "no such
open call task", nothing of the input beyond ~100 characters), and for zero effect on every
table the RPC writes. Public callers reach no tenant to write in, so every call of theirs
gets the one answer; tests/security/test_rpc_tenancy.py has the members of other tenants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.security.support import (
    PUBLIC_ROLES,
    TENANT_A,
    accepted,
    become,
    identity_of,
    new_uuid,
    postgrest_rpc,
    refusal,
    without_ids,
)
from tests.sql.enforcement_seed import digest, one

Conn = psycopg.Connection[Any]

CALL_TABLES = (
    "public.plaintiff_call_attempts",
    "public.plaintiff_status_history",
    "public.plaintiff_tasks",
    "public.plaintiffs",
)


def plaintiff(conn: Conn, status: str = "new", tenant: str | None = None) -> str:
    return str(
        one(
            conn,
            "insert into public.plaintiffs (name, status, tenant_id)"
            " values ('Acme Funding LLC', %s, coalesce(%s::uuid, tenancy.default_tenant_id()))"
            " returning id",
            (status, tenant),
        )
    )


def task(
    conn: Conn,
    plaintiff_id: str,
    kind: str = "call",
    status: str = "open",
    due_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    return str(
        one(
            conn,
            "insert into public.plaintiff_tasks (plaintiff_id, kind, status, due_at, metadata,"
            " closed_at) values (%s, %s, %s, %s, %s,"
            " case when %s in ('done', 'cancelled') then now() end) returning id",
            (plaintiff_id, kind, status, due_at, Jsonb(metadata or {}), status),
        )
    )


def log(conn: Conn, **body: Any) -> Any:
    return postgrest_rpc(conn, "log_call_outcome", body)


def iso(at: datetime) -> str:
    return at.isoformat()


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_public_callers_get_one_answer_for_every_task_open_call_tasks_included(
    db: Conn, role: str, tenants: None
) -> None:
    p = plaintiff(db)
    other = plaintiff(db)
    in_a = plaintiff(db, tenant=TENANT_A)
    later = datetime.now(UTC) + timedelta(days=1)
    targets = {
        "an open call task": (p, task(db, p)),
        "a due call follow-up": (
            p,
            task(
                db,
                p,
                "follow_up",
                due_at=datetime.now(UTC) - timedelta(minutes=1),
                metadata={"created_by_rpc": "log_call_outcome"},
            ),
        ),
        "an open call task of tenant A": (in_a, task(db, in_a)),
        "a review task": (p, task(db, p, "review")),
        "a subpoena follow-up": (p, task(db, p, "follow_up", metadata={"action_id": new_uuid()})),
        "a call follow-up not yet due": (
            p,
            task(db, p, "follow_up", due_at=later, metadata={"created_by_rpc": "log_call_outcome"}),
        ),
        "a closed call task": (p, task(db, p, status="done")),
        "another plaintiff's call task": (p, task(db, other)),
        "no task": (p, new_uuid()),
        "no plaintiff": (new_uuid(), task(db, p)),
    }
    before = digest(db, CALL_TABLES)
    answers = set()
    for what, (plaintiff_id, task_id) in targets.items():
        error = refusal(
            db,
            lambda pid=plaintiff_id, tid=task_id: (
                become(db, role),
                log(db, plaintiff_id=pid, task_id=tid, outcome="reached_hot"),
            ),
        )
        assert error.sqlstate == "P0002", what
        answers.add(without_ids(str(error.diag.message_primary)))
    assert answers == {"log_call_outcome: no open call task <id> for plaintiff <id>"}
    assert digest(db, CALL_TABLES) == before


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_public_callers_cannot_move_a_plaintiff_out_of_do_not_call_and_a_member_can(
    db: Conn, role: str, tenants: None
) -> None:
    p = plaintiff(db, "do_not_call", tenant=TENANT_A)
    t = task(db, p)
    before = digest(db, CALL_TABLES)
    error = refusal(
        db,
        lambda: (become(db, role), log(db, plaintiff_id=p, task_id=t, outcome="very interested")),
    )
    assert (error.sqlstate, without_ids(str(error.diag.message_primary))) == (
        "P0002",
        "log_call_outcome: no open call task <id> for plaintiff <id>",
    )
    assert digest(db, CALL_TABLES) == before

    # An operator of the plaintiff's tenant lifts it, recorded under its own identity.
    lifted = accepted(
        db, "operator_a", lambda: log(db, plaintiff_id=p, task_id=t, outcome="interested")
    )
    assert (lifted["previous_status"], lifted["status"]) == ("do_not_call", "reached_hot")
    assert one(
        db, "select created_by from public.plaintiff_call_attempts where task_id = %s", (t,)
    ) == identity_of("operator_a")


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_a_public_follow_up_must_be_at_least_15_minutes_ahead(db: Conn, role: str) -> None:
    too_soon = refused_follow_up(db, role, iso(datetime.now(UTC) + timedelta(minutes=5)))
    assert "at least 15 minutes ahead" in too_soon


def refused_follow_up(db: Conn, role: str, follow_up_at: str) -> str:
    """Log a callback with ``follow_up_at`` as ``role``; it must be refused with 22023 and
    write nothing. Returns the message."""
    p = plaintiff(db)
    t = task(db, p)
    before = digest(db, CALL_TABLES)
    error = refusal(
        db,
        lambda: (
            become(db, role),
            log(db, plaintiff_id=p, task_id=t, outcome="callback", follow_up_at=follow_up_at),
        ),
    )
    assert error.sqlstate == "22023"
    assert digest(db, CALL_TABLES) == before
    return str(error.diag.message_primary)


@pytest.mark.parametrize("role", [*PUBLIC_ROLES, "enforcement_operator", "service_role"])
@pytest.mark.parametrize(
    "follow_up_at",
    ["tomorrow", "J2461000", "1/2/2027", "epoch", "infinity", "99999-01-01", "2027-13-01"],
)
def test_follow_up_at_is_iso_8601_only(db: Conn, role: str, follow_up_at: str) -> None:
    message = refused_follow_up(db, role, follow_up_at)
    assert "follow_up_at must be an ISO 8601 timestamp" in message


@pytest.mark.parametrize("role", [*PUBLIC_ROLES, "service_role"])
def test_follow_up_at_is_at_most_a_year_ahead(db: Conn, role: str) -> None:
    message = refused_follow_up(db, role, iso(datetime.now(UTC) + timedelta(days=400)))
    assert "at most one year ahead" in message


@pytest.mark.parametrize(
    ("body", "argument"),
    [
        ({"plaintiff_id": "1", "task_id": "6f1d7c4e-0000-4000-8000-000000000001"}, "plaintiff_id"),
        ({"plaintiff_id": "6f1d7c4e-0000-4000-8000-000000000001", "task_id": "x"}, "task_id"),
        (
            {
                "plaintiff_id": "6f1d7c4e-0000-4000-8000-000000000001",
                "task_id": "6f1d7c4e-0000-4000-8000-000000000002",
                "follow_up_at": "2027-01-02T25:00:00Z",
            },
            "follow_up_at",
        ),
    ],
)
def test_typed_arguments_answer_22023_naming_the_argument(
    db: Conn, body: dict[str, Any], argument: str
) -> None:
    error = refusal(db, lambda: (become(db, "anon"), log(db, outcome="busy", **body)))
    assert error.sqlstate == "22023"
    assert f"log_call_outcome: {argument} must be" in str(error)


@pytest.mark.parametrize(
    "field", ["plaintiff_id", "task_id", "outcome", "interest", "follow_up_at"]
)
def test_no_error_echoes_more_than_about_200_characters_of_input(db: Conn, field: str) -> None:
    p = plaintiff(db)
    body: dict[str, Any] = {"plaintiff_id": p, "task_id": task(db, p), "outcome": "reached"}
    body[field] = "A" * 1_000_000
    error = refusal(db, lambda: (become(db, "anon"), log(db, **body)))
    assert error.sqlstate == "22023"
    message = str(error.diag.message_primary)
    assert len(message) < 250
    assert "A" * 101 not in message


@pytest.mark.parametrize("role", ["operator_a", "admin_a"])
def test_the_console_logs_an_open_call_task_and_the_session_is_the_actor(
    db: Conn, role: str, tenants: None
) -> None:
    p = plaintiff(db, tenant=TENANT_A)
    t = task(db, p)
    follow = datetime.now(UTC) + timedelta(days=2)
    result = accepted(
        db,
        role,
        lambda: log(
            db, plaintiff_id=p, task_id=t, outcome="Left Voicemail", follow_up_at=iso(follow)
        ),
    )
    assert (result["status"], result["status_changed"]) == ("left_voicemail", True)
    assert result["follow_up_task_id"] is not None
    closed_by, created_by = db.execute(
        "select t.closed_by, a.created_by from public.plaintiff_tasks t"
        " join public.plaintiff_call_attempts a on a.task_id = t.id where t.id = %s",
        (t,),
    ).fetchone() or (None, None)
    assert closed_by == created_by == identity_of(role)


@pytest.mark.parametrize("role", ["dragonfly_worker", "service_role", "enforcement_operator"])
def test_the_fleet_and_operators_keep_the_detailed_answers(db: Conn, role: str) -> None:
    p = plaintiff(db)
    review = task(db, p, "review")
    error = refusal(
        db, lambda: (become(db, role), log(db, plaintiff_id=p, task_id=review, outcome="busy"))
    )
    assert (error.sqlstate, "is a review task" in str(error)) == ("22023", True)
