"""The outreach handler's two phases run directly in a rolled-back transaction, against a
loopback SMTP server."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.kinds.enrich_outreach_support import (
    make_plaintiff,
    outreach_config,
    quiet_zone,
    smtp_server,
)
from tests.kinds.enrich_outreach_support import run_outreach as run
from tests.kinds.enrich_outreach_support import smtp_mailer as _mailer
from workers.outreach.handler import continuation_key, send_email
from workers.outreach.mailer import MailRejected, MailTemporarilyFailed
from workers.outreach.payload import OutreachPayload
from workers.runtime import PermanentError, TransientError
from workers.runtime.errors import classify

Conn = psycopg.Connection[Any]
CONFIG = outreach_config()


def _attempts(db: Conn, plaintiff_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in db.execute(
            "select idempotency_key, outcome, channel, plaintiff_status"
            " from public.outreach_attempts where plaintiff_id = %s"
            " order by attempted_at, idempotency_key",
            (plaintiff_id,),
        ).fetchall()
    ]


def _payload(pid: uuid.UUID, **kw: Any) -> OutreachPayload:
    return OutreachPayload.model_validate(
        {"plaintiff_id": str(pid), "reason": "new_judgment", **kw}
    )


def _daytime(db: Conn, pid: uuid.UUID) -> None:
    db.execute(
        "update public.plaintiffs set timezone = %s where id = %s",
        (quiet_zone(quiet=False), pid),
    )


def test_an_email_is_sent_once_for_a_job_delivered_twice(db: Conn) -> None:
    pid = make_plaintiff(db, email="jane@creditor.test")
    _daytime(db, pid)
    now = datetime.now(UTC)
    with smtp_server() as smtp:
        first = run(
            db,
            _payload(pid),
            idempotency_key="o-1",
            mailer=_mailer(smtp.port),
            config=CONFIG,
            now=now,
        )
        second = run(
            db,
            _payload(pid),
            idempotency_key="o-1",
            mailer=_mailer(smtp.port),
            config=CONFIG,
            now=now,
        )
        assert first.outcome == "sent"
        assert second.outcome is None
        [message] = smtp.messages
    assert message["To"] == "Acme Holdings LLC <jane@creditor.test>"
    assert message["From"] == "Dragonfly <outreach@dragonfly.test>"
    assert message["Message-ID"].endswith("@dragonfly.test>")
    assert _attempts(db, pid) == [("o-1", "sent", "email", "new")]
    status = db.execute("select status from public.plaintiffs where id = %s", (pid,)).fetchone()
    assert status == ("contacted",)


@pytest.mark.parametrize("status", ["do_not_call", "bad_number"])
def test_a_blocked_plaintiff_gets_nothing(db: Conn, status: str) -> None:
    pid = make_plaintiff(db, status=status)
    _daytime(db, pid)
    with smtp_server() as smtp:
        for channel in ("auto", "email", "call"):
            result = run(
                db,
                _payload(pid, channel=channel),
                idempotency_key=f"blocked-{channel}",
                mailer=_mailer(smtp.port),
                config=CONFIG,
                now=datetime.now(UTC),
            )
            assert result.outcome == "suppressed"
        assert smtp.messages == []
    assert {row[1] for row in _attempts(db, pid)} == {"suppressed"}
    tasks = db.execute(
        "select count(*) from public.plaintiff_tasks where plaintiff_id = %s", (pid,)
    ).fetchone()
    assert tasks == (0,)


def test_a_warm_plaintiff_gets_a_call_task(db: Conn) -> None:
    pid = make_plaintiff(db, status="reached_hot")
    _daytime(db, pid)
    result = run(
        db,
        _payload(pid, campaign="spring"),
        idempotency_key="call-1",
        mailer=None,
        config=CONFIG,
        now=datetime.now(UTC),
    )
    assert result.outcome == "task_created"
    task = db.execute(
        "select kind, status, metadata ->> 'campaign', metadata ->> 'reason'"
        " from public.plaintiff_tasks where plaintiff_id = %s",
        (pid,),
    ).fetchone()
    assert task == ("call", "open", "spring", "new_judgment")


def test_no_smtp_and_no_phone_means_no_channel(db: Conn) -> None:
    pid = make_plaintiff(db, phone=None)
    _daytime(db, pid)
    result = run(
        db,
        _payload(pid),
        idempotency_key="nc",
        mailer=None,
        config=CONFIG,
        now=datetime.now(UTC),
    )
    assert result.outcome == "no_channel"
    assert "SMTP not configured" in result.detail


def test_quiet_hours_defer_to_a_continuation_job(db: Conn) -> None:
    pid = make_plaintiff(db)
    zone = quiet_zone()
    db.execute("update public.plaintiffs set timezone = %s where id = %s", (zone, pid))
    now = datetime.now(UTC)
    with smtp_server() as smtp:
        result = run(
            db,
            _payload(pid),
            idempotency_key="q-1",
            mailer=_mailer(smtp.port),
            config=CONFIG,
            now=now,
        )
        assert smtp.messages == []
    assert result.outcome == "deferred"
    assert result.not_before is not None
    assert result.next_idempotency_key == continuation_key("q-1", result.not_before)
    assert zone in result.detail
    [(message, visible_in)] = db.execute(
        "select message, extract(epoch from vt - now()) from pgmq.q_outreach"
    ).fetchall()
    assert message["idempotency_key"] == result.next_idempotency_key
    assert message["payload"] == {
        "plaintiff_id": str(pid),
        "reason": "new_judgment",
        "channel": "auto",
        "outreach_key": "q-1",
    }
    expected = (result.not_before - now).total_seconds()
    assert expected - 5 <= float(visible_in) <= expected + 5
    assert _attempts(db, pid) == [("q-1", "deferred", None, "new")]

    # The continuation runs in the morning: it emails once, under the first job's outreach.
    _daytime(db, pid)
    continuation = OutreachPayload.model_validate(message["payload"])
    with smtp_server() as smtp:
        done = run(
            db,
            continuation,
            idempotency_key=message["idempotency_key"],
            mailer=_mailer(smtp.port),
            config=CONFIG,
            now=datetime.now(UTC),
        )
        assert done.outcome == "sent"
        assert len(smtp.messages) == 1
        # Another job of the same outreach finds it done.
        dup = run(
            db,
            continuation,
            idempotency_key="q-1-again",
            mailer=_mailer(smtp.port),
            config=CONFIG,
            now=datetime.now(UTC),
        )
        assert dup.outcome == "duplicate"
        assert len(smtp.messages) == 1


def test_smtp_refusals_are_classified_and_leave_no_row(db: Conn) -> None:
    pid = make_plaintiff(db, email="nobody@creditor.test")
    _daytime(db, pid)
    with smtp_server() as smtp:
        port = smtp.port
    # Nothing listens any more: a transient failure, and the savepoint discards the row.
    with pytest.raises(MailTemporarilyFailed) as caught, db.transaction():
        run(
            db,
            _payload(pid),
            idempotency_key="s-1",
            mailer=_mailer(port),
            config=CONFIG,
            now=datetime.now(UTC),
        )
    assert isinstance(caught.value, TransientError)
    assert _attempts(db, pid) == []


def test_a_5xx_reply_is_permanent() -> None:
    from workers.outreach.mailer import _classify

    assert isinstance(_classify(550, b"mailbox unavailable"), MailRejected)
    assert isinstance(_classify(550, b"x"), PermanentError)
    assert isinstance(_classify(451, "try later"), MailTemporarilyFailed)


def test_payload_needs_a_reason_or_a_campaign() -> None:
    with pytest.raises(ValueError, match="reason or a campaign"):
        OutreachPayload.model_validate({"plaintiff_id": str(uuid.uuid4())})
    with pytest.raises(ValueError, match="extra"):
        OutreachPayload.model_validate(
            {"plaintiff_id": str(uuid.uuid4()), "reason": "x", "colour": "red"}
        )


def test_an_unknown_plaintiff_is_permanent(db: Conn) -> None:
    with pytest.raises(psycopg.errors.NoDataFound) as caught, db.transaction():
        run(
            db,
            _payload(uuid.uuid4()),
            idempotency_key="u",
            mailer=None,
            config=CONFIG,
            now=datetime.now(UTC),
        )
    assert classify(caught.value) == "permanent"


def _intent(db: Conn, key: str) -> tuple[Any, ...] | None:
    row = db.execute(
        "select state, message_id from public.outreach_emails where idempotency_key = %s", (key,)
    ).fetchone()
    return tuple(row) if row else None


def test_an_intent_left_sending_is_recorded_unknown_and_nothing_is_sent(db: Conn) -> None:
    pid = make_plaintiff(db, email="jane@creditor.test")
    _daytime(db, pid)
    now = datetime.now(UTC)
    # An earlier attempt committed its intent and died during the send.
    db.execute(
        "select public.begin_outreach_email('o-x', 'o-x', %s, 'jane@creditor.test', '<m@x>', 2)",
        (pid,),
    )
    with smtp_server() as smtp:
        result = run(
            db,
            _payload(pid),
            idempotency_key="o-x",
            mailer=_mailer(smtp.port),
            config=CONFIG,
            now=now,
        )
        assert smtp.messages == []
    assert result.outcome == "unknown"
    assert "<m@x>" in result.detail
    assert _attempts(db, pid) == [("o-x", "unknown", "email", "new")]
    status = db.execute("select status from public.plaintiffs where id = %s", (pid,)).fetchone()
    assert status == ("new",)  # nobody knows yet whether it arrived
    # Another job of the same outreach does not email either.
    again = run(
        db,
        _payload(pid, outreach_key="o-x"),
        idempotency_key="o-y",
        mailer=_mailer(1),
        config=CONFIG,
        now=now,
    )
    assert again.outcome == "duplicate"


def test_an_email_sent_but_not_recorded_is_recorded_sent_on_retry(db: Conn) -> None:
    pid = make_plaintiff(db, email="jane@creditor.test")
    _daytime(db, pid)
    now = datetime.now(UTC)
    with smtp_server() as smtp:
        emailed = send_email(
            db,
            _payload(pid),
            idempotency_key="o-s",
            mailer=_mailer(smtp.port),
            config=CONFIG,
            now=now,
        )
        assert emailed is not None
        assert emailed.outcome == "sent"
        assert _intent(db, "o-s") == ("sent", emailed.message_id)
        # The job's transaction never committed; the retry runs both phases again.
        result = run(
            db,
            _payload(pid),
            idempotency_key="o-s",
            mailer=_mailer(smtp.port),
            config=CONFIG,
            now=now,
        )
        assert len(smtp.messages) == 1
    assert result.outcome == "sent"
    assert _attempts(db, pid) == [("o-s", "sent", "email", "new")]


def test_a_refused_send_withdraws_the_intent_and_a_cut_off_one_keeps_it(db: Conn) -> None:
    pid = make_plaintiff(db, email="nobody@creditor.test")
    _daytime(db, pid)
    with smtp_server() as smtp:
        port = smtp.port
    with pytest.raises(MailTemporarilyFailed) as caught:  # nothing listens: nothing went out
        send_email(
            db,
            _payload(pid),
            idempotency_key="w-1",
            mailer=_mailer(port),
            config=CONFIG,
            now=datetime.now(UTC),
        )
    assert not caught.value.maybe_sent
    assert _intent(db, "w-1") is None  # a retry may send

    class CutOff:
        def send(self, message: Any) -> None:
            raise MailTemporarilyFailed("connection dropped after DATA", maybe_sent=True)

    with pytest.raises(MailTemporarilyFailed):
        send_email(
            db,
            _payload(pid),
            idempotency_key="w-2",
            mailer=CutOff(),
            config=CONFIG,
            now=datetime.now(UTC),
        )
    assert _intent(db, "w-2") is not None
    assert _intent(db, "w-2")[0] == "sending"  # the retry records unknown, sends nothing
