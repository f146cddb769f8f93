"""begin_outreach / record_outreach_attempt and the outreach_attempts table's guarantees."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.kinds.enrich_outreach_support import make_plaintiff

Conn = psycopg.Connection[Any]


def _begin(db: Conn, plaintiff_id: uuid.UUID, key: str, outreach_key: str | None = None) -> Any:
    row = db.execute(
        "select public.begin_outreach(%s, %s, %s)", (plaintiff_id, key, outreach_key or key)
    ).fetchone()
    assert row is not None
    return row[0]


def _record(db: Conn, plaintiff_id: uuid.UUID, key: str, outcome: str, **kw: Any) -> Any:
    params = {
        "k": key,
        "o": kw.pop("outreach_key", key),
        "p": plaintiff_id,
        "outcome": outcome,
        "channel": kw.pop("channel", None),
        "email_to": kw.pop("email_to", None),
        "message_id": kw.pop("message_id", None),
        "not_before": kw.pop("not_before", None),
    }
    assert not kw
    row = db.execute(
        "select public.record_outreach_attempt(p_idempotency_key => %(k)s, p_outreach_key => %(o)s,"
        " p_plaintiff_id => %(p)s, p_outcome => %(outcome)s, p_reason => 'new_judgment',"
        " p_channel => %(channel)s, p_email_to => %(email_to)s, p_message_id => %(message_id)s,"
        " p_not_before => %(not_before)s, p_actor => 'test')",
        params,
    ).fetchone()
    assert row is not None
    return row[0]


def test_begin_outreach_returns_the_plaintiff_and_what_was_done(db: Conn) -> None:
    pid = make_plaintiff(db, phone="  ")
    state = _begin(db, pid, "k1")
    assert state["plaintiff"]["status"] == "new"
    assert state["plaintiff"]["phone"] is None  # blank phone is no phone
    assert state["this_attempt"] is None
    assert state["delivered"] is None

    _record(db, pid, "k1", "task_created", channel="call")
    again = _begin(db, pid, "k1")
    assert again["this_attempt"]["outcome"] == "task_created"
    other = _begin(db, pid, "k2", outreach_key="k1")
    assert other["this_attempt"] is None
    assert other["delivered"]["idempotency_key"] == "k1"


def test_a_call_task_is_created_with_the_attempt(db: Conn) -> None:
    pid = make_plaintiff(db)
    out = _record(db, pid, "call-1", "task_created", channel="call")
    task = db.execute(
        "select kind, status, metadata ->> 'outreach_key', created_by from public.plaintiff_tasks"
        " where id = %s",
        (out["task_id"],),
    ).fetchone()
    assert task == ("call", "open", "call-1", "test")


def test_a_first_email_moves_a_new_plaintiff_to_contacted(db: Conn) -> None:
    pid = make_plaintiff(db)
    out = _record(
        db, pid, "mail-1", "sent", channel="email", email_to="a@b.test", message_id="<x@b.test>"
    )
    assert out["status_changed"] is True
    assert db.execute("select status from public.plaintiffs where id = %s", (pid,)).fetchone() == (
        "contacted",
    )
    history = db.execute(
        "select previous_status, status from public.plaintiff_status_history"
        " where plaintiff_id = %s",
        (pid,),
    ).fetchall()
    assert history == [("new", "contacted")]


@pytest.mark.parametrize("status", ["do_not_call", "bad_number"])
def test_the_database_refuses_to_record_contact_with_a_blocked_plaintiff(
    db: Conn, status: str
) -> None:
    pid = make_plaintiff(db, status=status)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=status), db.transaction():
        _record(db, pid, "x", "task_created", channel="call")
    assert _record(db, pid, "y", "suppressed")["attempt_id"]


def test_one_contact_per_outreach_and_one_row_per_job(db: Conn) -> None:
    pid = make_plaintiff(db)
    _record(db, pid, "a", "sent", channel="email", email_to="a@b.test", message_id="<1@b>")
    with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
        _record(db, pid, "a", "no_channel")
    with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
        _record(
            db,
            pid,
            "b",
            "sent",
            outreach_key="a",
            channel="email",
            email_to="a@b.test",
            message_id="<1@b>",
        )
    _record(db, pid, "c", "duplicate", outreach_key="a")


def test_attempt_rows_are_consistent(db: Conn) -> None:
    pid = make_plaintiff(db)
    with pytest.raises(psycopg.errors.CheckViolation), db.transaction():
        _record(db, pid, "d1", "sent", channel="email")  # no address, no message id
    with pytest.raises(psycopg.errors.CheckViolation), db.transaction():
        _record(db, pid, "d2", "deferred")  # no not_before
    _record(db, pid, "d3", "deferred", not_before=datetime.now(UTC) + timedelta(hours=3))
    with pytest.raises(psycopg.errors.InvalidParameterValue), db.transaction():
        _record(db, pid, "d4", "emailed")
    with pytest.raises(psycopg.errors.NoDataFound), db.transaction():
        _begin(db, uuid.uuid4(), "d5")


FUNCTIONS = (
    "begin_outreach",
    "record_outreach_attempt",
    "begin_outreach_email",
    "settle_outreach_email",
)


def test_rights_and_row_level_security(db: Conn) -> None:
    rows = db.execute(
        """
        select p.proname, r.rolname
          from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace
          cross join (values ('anon'), ('authenticated'), ('service_role'), ('dragonfly_worker'),
                             ('enforcement_operator')) as r(rolname)
         where n.nspname = 'public' and p.proname = any(%s)
           and has_function_privilege(r.rolname, p.oid, 'execute')
        """,
        (list(FUNCTIONS),),
    ).fetchall()
    assert sorted(rows) == sorted(
        (name, role) for name in FUNCTIONS for role in ("service_role", "dragonfly_worker")
    )
    for table in ("public.outreach_attempts", "public.outreach_emails"):
        assert db.execute(
            "select relrowsecurity from pg_class where oid = %s::regclass", (table,)
        ).fetchone() == (True,)
        for role in ("anon", "authenticated"):
            assert db.execute(
                "select has_table_privilege(%s, %s, 'select')", (role, table)
            ).fetchone() == (False,)


def _intend(db: Conn, plaintiff_id: uuid.UUID, key: str, outreach_key: str | None = None) -> Any:
    row = db.execute(
        "select public.begin_outreach_email(%s, %s, %s, 'a@b.test', %s, 10, 'test')",
        (key, outreach_key or key, plaintiff_id, f"<{key}@b>"),
    ).fetchone()
    assert row is not None
    return row[0]


def test_begin_outreach_email_records_one_intent_per_job_and_per_outreach(db: Conn) -> None:
    pid = make_plaintiff(db)
    assert _intend(db, pid, "e1")["state"] == "new"
    assert _intend(db, pid, "e1")["state"] == "sending"  # this job's, not settled yet
    assert _intend(db, pid, "e2", outreach_key="e1") == {"state": "other", "idempotency_key": "e1"}
    settled = db.execute("select public.settle_outreach_email('e1', true)").fetchone()
    assert settled == (True,)
    assert _intend(db, pid, "e1")["state"] == "sent"
    assert db.execute("select public.settle_outreach_email('e1', false)").fetchone() == (False,)

    assert _intend(db, pid, "f1")["state"] == "new"
    db.execute("select public.settle_outreach_email('f1', false)")  # refused: withdrawn
    assert _intend(db, pid, "f1")["state"] == "new"


def test_begin_outreach_email_refuses_a_blocked_plaintiff_and_bad_arguments(db: Conn) -> None:
    pid = make_plaintiff(db, status="do_not_call")
    assert _intend(db, pid, "b1") == {"state": "blocked", "status": "do_not_call"}
    assert db.execute("select count(*) from public.outreach_emails").fetchone() == (0,)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_email_to"), db.transaction():
        db.execute("select public.begin_outreach_email('k', 'k', %s, ' ', '<m>', 1)", (pid,))
    with pytest.raises(psycopg.errors.NoDataFound), db.transaction():
        db.execute(
            "select public.begin_outreach_email('k', 'k', %s, 'a@b', '<m>', 1)", (uuid.uuid4(),)
        )


def test_unknown_is_recorded_as_a_contact_even_after_the_plaintiff_was_blocked(db: Conn) -> None:
    pid = make_plaintiff(db)
    _intend(db, pid, "u1")
    db.execute("update public.plaintiffs set status = 'do_not_call' where id = %s", (pid,))
    _record(db, pid, "u1", "unknown", channel="email", email_to="a@b.test", message_id="<u1@b>")
    assert _begin(db, pid, "u2", outreach_key="u1")["delivered"]["outcome"] == "unknown"
    # Without an intent of its own a contact with a blocked plaintiff is still refused.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
        _record(db, pid, "u3", "sent", channel="email", email_to="a@b.test", message_id="<u3@b>")
