"""The outreach contact cap and the campaign rule, run through the handler's two phases against
the database and a loopback SMTP server: what is counted, that the count and the contact are
one atomic step under the plaintiff's lock (two connections racing for one plaintiff), and
that a campaign from a job of public provenance is a known one or nothing happens."""

from __future__ import annotations

import email.policy
import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import psycopg
import pytest

from tests.kinds.enrich_outreach_support import (
    make_plaintiff,
    outreach_config,
    quiet_zone,
    smtp_server,
    wait_for,
)
from tests.kinds.enrich_outreach_support import run_outreach as run
from tests.kinds.enrich_outreach_support import smtp_mailer as _mailer
from workers.outreach.handler import OutreachResult, begin, record
from workers.outreach.message import campaign_token, render_email
from workers.outreach.payload import OutreachPayload
from workers.runtime import PermanentError

Conn = psycopg.Connection[Any]
CONFIG = outreach_config()


def _plaintiff(db: Conn, **kw: Any) -> uuid.UUID:
    return make_plaintiff(db, timezone=quiet_zone(quiet=False), **kw)


def _payload(pid: uuid.UUID, **kw: Any) -> OutreachPayload:
    return OutreachPayload.model_validate({"plaintiff_id": str(pid), "reason": "follow_up", **kw})


def _outcomes(db: Conn, pid: uuid.UUID) -> dict[str, int]:
    rows = db.execute(
        "select outcome || ':' || coalesce(channel, '-'), count(*) from public.outreach_attempts"
        " where plaintiff_id = %s group by 1",
        (pid,),
    ).fetchall()
    return {str(k): int(n) for k, n in rows}


def _count(db: Conn, table: str, pid: uuid.UUID) -> int:
    row = db.execute(
        f"select count(*) from {table} where plaintiff_id = %s",
        (pid,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _contacts(db: Conn, pid: uuid.UUID, key: str = "probe") -> dict[str, Any]:
    row = db.execute("select public.begin_outreach(%s, %s, %s)", (pid, key, key)).fetchone()
    assert row is not None
    contacts: dict[str, Any] = row[0]["contacts"]
    return contacts


def _intend(db: Conn, pid: uuid.UUID, key: str, max_emails: int = 10) -> dict[str, Any]:
    row = db.execute(
        "select public.begin_outreach_email(%s, %s, %s, 'a@b.test', %s, %s, 'test')",
        (key, key, pid, f"<{key}@b>", max_emails),
    ).fetchone()
    assert row is not None
    state: dict[str, Any] = row[0]
    return state


def _record(db: Conn, pid: uuid.UUID, key: str, outcome: str, channel: str | None) -> None:
    fields = {"sent": ("a@b.test", f"<{key}@b>"), "unknown": ("a@b.test", f"<{key}@b>")}
    email_to, message_id = fields.get(outcome, (None, None))
    db.execute(
        "select public.record_outreach_attempt(p_idempotency_key => %s, p_outreach_key => %s,"
        " p_plaintiff_id => %s, p_outcome => %s, p_reason => 'x', p_channel => %s,"
        " p_email_to => %s, p_message_id => %s)",
        (key, key, pid, outcome, channel, email_to, message_id),
    )


# --- what is counted -----------------------------------------------------------------------


def test_the_count_is_what_reached_the_plaintiff_in_the_last_7_days(db: Conn) -> None:
    pid = _plaintiff(db)
    assert _contacts(db, pid) == {"emails": 0, "calls": 0, "window_days": 7}

    assert _intend(db, pid, "e-sending")["state"] == "new"  # may be out: counts
    assert _intend(db, pid, "e-sent")["state"] == "new"
    db.execute("select public.settle_outreach_email('e-sent', true)")
    _record(db, pid, "e-sent", "sent", "email")  # the same email: counted once
    assert _intend(db, pid, "e-refused")["state"] == "new"
    db.execute("select public.settle_outreach_email('e-refused', false)")  # nothing went out
    _record(db, pid, "c-1", "task_created", "call")
    for key, outcome in (("d", "duplicate"), ("n", "no_channel"), ("s", "suppressed")):
        _record(db, pid, key, outcome, None)
    _record(db, pid, "cap", "capped", "email")
    assert _contacts(db, pid) == {"emails": 2, "calls": 1, "window_days": 7}

    # A job's own contacts never count against it.
    assert _contacts(db, pid, "e-sending")["emails"] == 1
    assert _contacts(db, pid, "c-1")["calls"] == 0
    # Another plaintiff's neither.
    assert _contacts(db, _plaintiff(db)) == {"emails": 0, "calls": 0, "window_days": 7}

    # Eight days on, the window has moved past them.
    db.execute(
        "update public.outreach_emails set created_at = now() - interval '8 days'"
        " where plaintiff_id = %s",
        (pid,),
    )
    db.execute(
        "update public.outreach_attempts set attempted_at = now() - interval '8 days'"
        " where plaintiff_id = %s",
        (pid,),
    )
    assert _contacts(db, pid) == {"emails": 0, "calls": 0, "window_days": 7}


def test_begin_outreach_email_refuses_an_intent_over_the_cap(db: Conn) -> None:
    pid = _plaintiff(db)
    assert _intend(db, pid, "a", max_emails=2)["state"] == "new"
    assert _intend(db, pid, "b", max_emails=2)["state"] == "new"
    assert _intend(db, pid, "c", max_emails=2) == {"state": "capped", "emails": 2, "max_emails": 2}
    assert _count(db, "public.outreach_emails", pid) == 2
    # A job's own intent is what it is, over the cap or not (its retry records it).
    assert _intend(db, pid, "a", max_emails=0)["state"] == "sending"
    assert _intend(db, _plaintiff(db), "z", max_emails=0)["state"] == "capped"
    for bad in ("null", "-1"):
        with (
            pytest.raises(psycopg.errors.InvalidParameterValue, match="p_max_emails"),
            db.transaction(),
        ):
            db.execute(
                f"select public.begin_outreach_email('k', 'k', %s, 'a@b', '<m>', {bad})",
                (pid,),
            )


# --- the handler ---------------------------------------------------------------------------


def test_twenty_jobs_with_twenty_keys_send_the_cap_and_record_the_rest_capped(db: Conn) -> None:
    pid = _plaintiff(db, email="jane@creditor.test")
    with smtp_server() as smtp:
        results = [
            run(
                db,
                _payload(pid, campaign="spring"),
                idempotency_key=f"attack-{i}",
                mailer=_mailer(smtp.port),
                config=CONFIG,
                now=datetime.now(UTC),
            )
            for i in range(20)
        ]
        assert len(smtp.messages) == 2
    assert [r.outcome for r in results] == ["sent"] * 2 + ["capped"] * 18
    assert results[-1].channel == "email"
    assert "2 emails" in results[-1].detail
    assert "at most 2 a week" in results[-1].detail
    assert _outcomes(db, pid) == {"sent:email": 2, "capped:email": 18}
    assert _count(db, "public.outreach_emails", pid) == 2

    # Emails and calls are counted apart: the email cap leaves calls alone.
    calls = [
        run(
            db,
            _payload(pid, channel="call"),
            idempotency_key=f"call-{i}",
            mailer=None,
            config=CONFIG,
            now=datetime.now(UTC),
        ).outcome
        for i in range(5)
    ]
    assert calls == ["task_created"] * 3 + ["capped"] * 2
    assert _count(db, "public.plaintiff_tasks", pid) == 3
    assert _outcomes(db, pid) == {
        "sent:email": 2,
        "capped:email": 18,
        "task_created:call": 3,
        "capped:call": 2,
    }

    # A redelivery of a capped job does nothing more.
    again = run(
        db,
        _payload(pid, campaign="spring"),
        idempotency_key="attack-19",
        mailer=None,
        config=CONFIG,
        now=datetime.now(UTC),
    )
    assert again.outcome is None


def test_a_capped_plaintiff_is_not_deferred_and_a_retry_of_an_intent_is_not_capped(
    db: Conn,
) -> None:
    night = make_plaintiff(db, timezone=quiet_zone(quiet=True), email=None)
    config = outreach_config(calls=0)
    result = run(
        db, _payload(night), idempotency_key="n", mailer=None, config=config, now=datetime.now(UTC)
    )
    assert (result.outcome, result.channel) == ("capped", "call")
    assert db.execute("select count(*) from pgmq.q_outreach").fetchone() == (0,)  # no continuation

    # An earlier attempt of job "x" committed its intent, then died during the send.
    pid = _plaintiff(db, email="jane@creditor.test")
    assert _intend(db, pid, "x")["state"] == "new"
    with smtp_server() as smtp:
        other = run(
            db,
            _payload(pid),
            idempotency_key="y",
            mailer=_mailer(smtp.port),
            config=outreach_config(emails=1),
            now=datetime.now(UTC),
        )
        retry = run(
            db,
            _payload(pid),
            idempotency_key="x",
            mailer=_mailer(smtp.port),
            config=outreach_config(emails=0),  # even with the cap lowered since
            now=datetime.now(UTC),
        )
        assert smtp.messages == []
    assert other.outcome == "capped"  # x's intent counts: its email may be out
    assert retry.outcome == "unknown"


def test_the_cap_is_counted_again_with_the_intent(db: Conn) -> None:
    """Two jobs that both found room under the cap (the outside phase decides without the
    lock): the intent of the second is refused, and the job is recorded capped."""
    pid = _plaintiff(db)
    config = outreach_config(emails=1)
    now = datetime.now(UTC)
    payloads = {key: _payload(pid) for key in ("r-1", "r-2")}
    decisions = {
        key: begin(
            db,
            payload,
            idempotency_key=key,
            email_enabled=True,
            config=config,
            now=now,
            level="internal",
        )
        for key, payload in payloads.items()
    }
    assert {d.outcome for d in decisions.values()} == {"sent"}  # both would email
    states = [_intend(db, pid, key, max_emails=1)["state"] for key in decisions]
    assert states == ["new", "capped"]


# --- racing connections --------------------------------------------------------------------


def _waiting_for_a_lock(admin: Conn, backend_pid: int) -> bool:
    row = admin.execute(
        "select wait_event_type from pg_stat_activity where pid = %s", (backend_pid,)
    ).fetchone()
    return row is not None and row[0] == "Lock"


def _race(url: str, pid: uuid.UUID, work: Callable[[Conn, str], Any], keys: list[str]) -> list[Any]:
    """Run ``work(conn, key)`` and commit, for each key on a connection of its own, all of
    them queued up behind a transaction that holds the plaintiff's row lock; then release
    it. Returns the results in the order of ``keys``."""

    def one(conn: Conn, key: str) -> Any:
        result = work(conn, key)
        conn.commit()
        return result

    with (
        psycopg.connect(url, autocommit=True) as admin,
        psycopg.connect(url) as holder,
        ThreadPoolExecutor(len(keys)) as pool,
    ):
        holder.execute("select 1 from public.plaintiffs where id = %s for no key update", (pid,))
        conns = [psycopg.connect(url) for _ in keys]
        try:
            futures = [pool.submit(one, conn, key) for conn, key in zip(conns, keys, strict=True)]
            for conn in conns:
                wait_for(
                    lambda conn=conn: _waiting_for_a_lock(admin, conn.info.backend_pid),
                    what="a racer to wait for the plaintiff's lock",
                )
            holder.commit()
            return [future.result(timeout=30) for future in futures]
        finally:
            for conn in conns:
                conn.close()


def test_two_connections_racing_for_one_plaintiff_get_one_intent(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        pid = _plaintiff(conn)

    def intend(conn: Conn, key: str) -> str:
        return str(_intend(conn, pid, key, max_emails=1)["state"])

    states = _race(fresh_db_url, pid, intend, ["p-1", "p-2"])
    assert sorted(states) == ["capped", "new"]
    with psycopg.connect(fresh_db_url) as conn:
        assert _count(conn, "public.outreach_emails", pid) == 1


def test_two_jobs_racing_for_one_plaintiff_open_one_call_task(fresh_db_url: str) -> None:
    """The call cap is counted under the lock begin_outreach takes in the job's transaction,
    which holds it until the task is committed."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        pid = _plaintiff(conn, email=None)

    def call(conn: Conn, key: str) -> OutreachResult:
        return record(
            conn,
            _payload(pid),
            idempotency_key=key,
            emailed=None,
            email_enabled=False,
            config=outreach_config(calls=1),
            now=datetime.now(UTC),
            level="internal",
        )

    results = _race(fresh_db_url, pid, call, ["t-1", "t-2", "t-3"])
    assert sorted(str(r.outcome) for r in results) == ["capped", "capped", "task_created"]
    with psycopg.connect(fresh_db_url) as conn:
        assert _count(conn, "public.plaintiff_tasks", pid) == 1
        assert _outcomes(conn, pid) == {"task_created:call": 1, "capped:call": 2}


# --- campaigns -----------------------------------------------------------------------------


def _campaign(db: Conn, name: str, *, active: bool = True) -> None:
    db.execute(
        "insert into public.outreach_campaigns (name, description, active) values (%s, %s, %s)",
        (name, f"the {name} campaign", active),
    )


@pytest.mark.parametrize("campaign", ["spring", "retired", "Spring 2026", "x" * 200])
def test_a_public_job_naming_an_unknown_campaign_is_forbidden_and_does_nothing(
    db: Conn, campaign: str
) -> None:
    _campaign(db, "retired", active=False)
    pid = _plaintiff(db, email="jane@creditor.test")
    with smtp_server() as smtp:
        for channel in ("email", "call"):
            with pytest.raises(PermanentError, match=r"^forbidden: campaign ") as caught:
                run(
                    db,
                    _payload(pid, campaign=campaign, channel=channel),
                    idempotency_key=f"f-{channel}",
                    mailer=_mailer(smtp.port),
                    config=CONFIG,
                    now=datetime.now(UTC),
                    level="public",
                )
            assert len(str(caught.value)) < 250  # at most 100 characters of the campaign
        assert smtp.messages == []
    for table in ("public.outreach_attempts", "public.outreach_emails", "public.plaintiff_tasks"):
        assert _count(db, table, pid) == 0


def test_a_public_job_may_name_an_active_campaign_and_the_fleet_any(db: Conn) -> None:
    _campaign(db, "2026-q1-reactivation")
    pid = _plaintiff(db, email="jane@creditor.test")
    with smtp_server() as smtp:
        for key, level, campaign in (
            ("pub", "public", "2026-q1-reactivation"),
            ("ops", "operator", "Ops: spring push"),
        ):
            result = run(
                db,
                _payload(pid, campaign=campaign),
                idempotency_key=key,
                mailer=_mailer(smtp.port),
                config=CONFIG,
                now=datetime.now(UTC),
                level=level,  # type: ignore[arg-type]
            )
            assert result.outcome == "sent"
        first, second = smtp.messages
    assert first["X-Dragonfly-Campaign"] == "2026-q1-reactivation"
    assert re.fullmatch(r"ops-spring-push-[0-9a-f]{8}", second["X-Dragonfly-Campaign"])


# --- the header ----------------------------------------------------------------------------

TOKEN = re.compile(r"[a-z0-9._-]{1,56}")


@pytest.mark.parametrize(
    "campaign",
    [
        "spring\r\nBcc: attacker@evil.test",
        "spring\nX-Priority: 1",
        "Frühling ✓ 2026",
        "\r\n",
        "a" * 200,
        "-._-",
        "=?utf-8?q?evil?=",
    ],
)
def test_the_campaign_header_is_always_a_bounded_printable_token(campaign: str) -> None:
    token = campaign_token(campaign)
    assert token is not None
    assert TOKEN.fullmatch(token)
    message = render_email(
        to_name="Jane",
        to_address="jane@creditor.test",
        from_address="outreach@dragonfly.test",
        reason=None,
        campaign=campaign,
        outreach_key="k",
    )
    data = message.as_bytes()
    parsed = message_from_bytes(data, policy=email.policy.default)
    assert f"\nX-Dragonfly-Campaign: {token}\n".encode() in data  # one line, not folded
    assert parsed["X-Dragonfly-Campaign"] == token
    assert parsed["Bcc"] is None
    assert parsed["X-Priority"] is None
    assert sorted(set(parsed.keys())) == sorted(
        {"From", "To", "Subject", "Message-ID", "X-Dragonfly-Outreach", "X-Dragonfly-Campaign"}
        | {"Content-Type", "Content-Transfer-Encoding", "MIME-Version"}
    )


def test_campaign_tokens_keep_names_and_tell_other_text_apart() -> None:
    assert campaign_token("2026-q1-reactivation") == "2026-q1-reactivation"
    assert campaign_token("n" * 56) == "n" * 56
    long = campaign_token("n" * 64)  # a name the table allows, too long for one line
    assert long is not None
    assert re.fullmatch(r"n{47}-[0-9a-f]{8}", long)
    assert campaign_token(None) is None
    assert campaign_token("Spring") != campaign_token("spring")  # only names are kept as is
    assert campaign_token("a b") != campaign_token("a-b") != campaign_token("a\r\nb")


def test_a_campaign_with_a_line_break_reaches_the_smtp_server_as_a_token(db: Conn) -> None:
    pid = _plaintiff(db, email="jane@creditor.test")
    campaign = "spring\r\nBcc: attacker@evil.test"
    with smtp_server() as smtp:
        result = run(
            db,
            _payload(pid, campaign=campaign),
            idempotency_key="crlf",
            mailer=_mailer(smtp.port),
            config=CONFIG,
            now=datetime.now(UTC),
        )
        [message] = smtp.messages
    assert result.outcome == "sent"
    assert message["X-Dragonfly-Campaign"] == campaign_token(campaign)
    assert message["Bcc"] is None
    assert message["X-RcptTo"] == "jane@creditor.test"
