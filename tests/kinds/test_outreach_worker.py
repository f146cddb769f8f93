"""outreach end to end: queue_job -> a real `dragonfly worker outreach` process -> a loopback
SMTP server and the database. The SMTP server receives exactly one email, also when the job
is delivered twice; a do_not_call plaintiff gets nothing; quiet hours defer the job; bad
payloads are dead-lettered with a clear reason; twenty jobs for one plaintiff get the week's
cap of emails (or call tasks), also from two workers at once; a campaign from a job of public
provenance is a known one, or the job is dead-lettered as forbidden."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.kinds.enrich_outreach_support import make_plaintiff, quiet_zone, smtp_server, wait_for
from tests.runtime.support import INTERNAL, WorkerProcess

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def smtp() -> Iterator[Any]:
    with smtp_server() as handler:
        yield handler


def _outreach_worker(url: str, tmp_path: Path, smtp_port: int, **env: str) -> WorkerProcess:
    """`python -m workers.cli worker outreach` (the real JOB) sending to the loopback SMTP."""
    return WorkerProcess(
        url,
        tmp_path,
        kind="outreach",
        handler="workers.outreach:JOB",
        env={
            "DRAGONFLY_SMTP_HOST": "127.0.0.1",
            "DRAGONFLY_SMTP_PORT": str(smtp_port),
            "DRAGONFLY_SMTP_TIMEOUT": "5",
            "DRAGONFLY_OUTREACH_FROM_EMAIL": "outreach@dragonfly.test",
            **env,
        },
        name="outreach",
    )


@pytest.fixture
def worker(fresh_db_url: str, tmp_path: Path, smtp: Any) -> Iterator[WorkerProcess]:
    process = _outreach_worker(fresh_db_url, tmp_path, smtp.port)
    try:
        process.wait_ready()
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        finally:
            process.close()


def _enqueue(conn: Conn, key: str, payload: dict[str, Any]) -> int:
    row = conn.execute(
        "select public.queue_job(%s)",
        (Jsonb({"kind": "outreach", "idempotency_key": key, "payload": payload}),),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _send(conn: Conn, key: str, payload: dict[str, Any], provenance: dict[str, Any] | None) -> int:
    """pgmq.send() an envelope as is, with ``provenance`` (None: none, which counts as public):
    what the worker does with it, whatever queue_job would have let in."""
    envelope: dict[str, Any] = {"kind": "outreach", "idempotency_key": key, "payload": payload}
    if provenance is not None:
        envelope["provenance"] = provenance
    row = conn.execute("select pgmq.send('outreach', %s)", (Jsonb(envelope),)).fetchone()
    assert row is not None
    return int(row[0])


def _dead(conn: Conn, msg_id: int) -> tuple[str, str] | None:
    row = conn.execute(
        "select reason, last_error from dragonfly.dead_letters"
        " where queue = 'outreach' and msg_id = %s",
        (msg_id,),
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def _outcomes(conn: Conn, plaintiff_id: uuid.UUID) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, outcome, channel in _attempts(conn, plaintiff_id):
        name = f"{outcome}:{channel or '-'}"
        counts[name] = counts.get(name, 0) + 1
    return counts


def _completed(conn: Conn, key: str) -> bool:
    row = conn.execute(
        "select 1 from dragonfly.completed_jobs where kind = 'outreach' and idempotency_key = %s",
        (key,),
    ).fetchone()
    return row is not None


def _attempts(conn: Conn, plaintiff_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            "select idempotency_key, outcome, channel from public.outreach_attempts"
            " where plaintiff_id = %s order by attempted_at",
            (plaintiff_id,),
        ).fetchall()
    ]


def _queue_empty(conn: Conn) -> bool:
    return conn.execute("select count(*) from pgmq.q_outreach").fetchone() == (0,)


def _daytime_plaintiff(conn: Conn, **kw: Any) -> uuid.UUID:
    return make_plaintiff(conn, timezone=quiet_zone(quiet=False), **kw)


def test_the_smtp_server_receives_exactly_one_email(
    conn: Conn, smtp: Any, worker: WorkerProcess
) -> None:
    pid = _daytime_plaintiff(conn, email="jane@creditor.test")
    key = f"outreach-{uuid.uuid4()}"
    payload = {"plaintiff_id": str(pid), "reason": "new_judgment"}
    _enqueue(conn, key, payload)
    wait_for(lambda: _completed(conn, key), what="the outreach job")
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message["To"] == "Acme Holdings LLC <jane@creditor.test>"
    assert message["X-RcptTo"] == "jane@creditor.test"
    assert _attempts(conn, pid) == [(key, "sent", "email")]

    # Delivered again: the same key through queue_job, and the same envelope as a raw
    # message (a redelivery). Neither sends anything.
    _enqueue(conn, key, payload)
    conn.execute(
        "select pgmq.send('outreach', %s)",
        (
            Jsonb(
                {
                    "kind": "outreach",
                    "idempotency_key": key,
                    "payload": payload,
                    "provenance": INTERNAL,
                }
            ),
        ),
    )
    wait_for(lambda: _queue_empty(conn), what="the redelivery to be acknowledged")
    worker.wait_for("job_already_done", idempotency_key=key)
    assert len(smtp.messages) == 1
    assert _attempts(conn, pid) == [(key, "sent", "email")]
    status = conn.execute("select status from public.plaintiffs where id = %s", (pid,)).fetchone()
    assert status == ("contacted",)


@pytest.mark.parametrize("status", ["do_not_call", "bad_number"])
def test_a_blocked_plaintiff_gets_nothing(
    conn: Conn, smtp: Any, worker: WorkerProcess, status: str
) -> None:
    pid = _daytime_plaintiff(conn, status=status)
    keys = [f"blocked-{channel}-{uuid.uuid4()}" for channel in ("auto", "email", "call")]
    for key, channel in zip(keys, ("auto", "email", "call"), strict=True):
        _enqueue(conn, key, {"plaintiff_id": str(pid), "campaign": "spring", "channel": channel})
    for key in keys:
        wait_for(lambda key=key: _completed(conn, key), what=f"job {key}")
    assert smtp.messages == []
    assert {outcome for _, outcome, _ in _attempts(conn, pid)} == {"suppressed"}
    tasks = conn.execute(
        "select count(*) from public.plaintiff_tasks where plaintiff_id = %s", (pid,)
    ).fetchone()
    assert tasks == (0,)


def test_a_call_task_for_a_plaintiff_without_email(conn: Conn, worker: WorkerProcess) -> None:
    pid = _daytime_plaintiff(conn, email=None)
    key = f"call-{uuid.uuid4()}"
    _enqueue(conn, key, {"plaintiff_id": str(pid), "reason": "follow_up"})
    wait_for(lambda: _completed(conn, key), what="the outreach job")
    assert _attempts(conn, pid) == [(key, "task_created", "call")]
    task = conn.execute(
        "select kind, status from public.plaintiff_tasks where plaintiff_id = %s", (pid,)
    ).fetchone()
    assert task == ("call", "open")


def test_quiet_hours_defer_the_job_to_the_morning(
    conn: Conn, smtp: Any, worker: WorkerProcess
) -> None:
    pid = make_plaintiff(conn, timezone=quiet_zone(quiet=True))
    key = f"night-{uuid.uuid4()}"
    _enqueue(conn, key, {"plaintiff_id": str(pid), "reason": "new_judgment"})
    wait_for(lambda: _completed(conn, key), what="the outreach job")
    assert smtp.messages == []
    [(_, outcome, channel)] = _attempts(conn, pid)
    assert (outcome, channel) == ("deferred", None)
    row = conn.execute(
        "select message ->> 'idempotency_key', message -> 'payload' ->> 'outreach_key',"
        " vt > now() + interval '1 hour'"
        " from pgmq.q_outreach"
    ).fetchone()
    next_key = conn.execute(
        "select next_idempotency_key from public.outreach_attempts where idempotency_key = %s",
        (key,),
    ).fetchone()
    assert next_key is not None
    assert row == (next_key[0], key, True)


def test_bad_payloads_are_dead_lettered_with_a_clear_reason(
    conn: Conn, worker: WorkerProcess
) -> None:
    # Sent as they are: queue_job refuses both at the door now; the worker must still.
    internal = {"level": "internal"}
    no_reason = _send(conn, "bad-1", {"plaintiff_id": str(uuid.uuid4())}, internal)
    unknown = _send(conn, "bad-2", {"plaintiff_id": str(uuid.uuid4()), "reason": "x"}, internal)

    reason, error = wait_for(lambda: _dead(conn, no_reason), what="dead letter 1")
    assert reason == "malformed"
    assert "reason or a campaign" in error
    reason, error = wait_for(lambda: _dead(conn, unknown), what="dead letter 2")
    assert reason == "permanent"
    assert "P0002" in error


def test_kill_9_after_the_smtp_server_accepted_the_email_sends_it_once_and_records_unknown(
    conn: Conn, fresh_db_url: str, tmp_path: Path
) -> None:
    workers: list[WorkerProcess] = []
    killed: list[int] = []

    def kill_the_sender(_message: Any) -> None:
        # The server holds the message and has not answered DATA yet: the worker dies
        # before it hears of the acceptance, let alone commits the job.
        workers[0].kill()
        killed.append(workers[0].proc.returncode)

    pid = _daytime_plaintiff(conn, email="jane@creditor.test")
    key = f"crash-{uuid.uuid4()}"
    # A short job timeout: the message comes back once its hold (batch window + job
    # timeout + visibility timeout + 5 s) has run out.
    env = {"DRAGONFLY_JOB_TIMEOUTS": '{"outreach": 5}'}
    try:
        with smtp_server(on_message=kill_the_sender) as smtp:
            workers.append(_outreach_worker(fresh_db_url, tmp_path, smtp.port, **env))
            workers[0].wait_ready()
            _enqueue(conn, key, {"plaintiff_id": str(pid), "reason": "new_judgment"})
            wait_for(lambda: killed, what="the worker to be killed mid-send")
            assert killed == [-9]
            assert not _completed(conn, key)
            intent = conn.execute(
                "select state from public.outreach_emails where idempotency_key = %s", (key,)
            ).fetchone()
            assert intent == ("sending",)  # committed before the send, never settled

            workers.append(_outreach_worker(fresh_db_url, tmp_path, smtp.port, **env))
            wait_for(lambda: _completed(conn, key), timeout=60, what="the retried job")
            assert len(smtp.messages) == 1  # exactly one email, overall
    finally:
        for process in workers:
            process.close()
    [(_, outcome, channel)] = _attempts(conn, pid)
    assert (outcome, channel) == ("unknown", "email")
    dead = conn.execute("select count(*) from dragonfly.dead_letters").fetchone()
    assert dead == (0,)
    attempts = conn.execute(
        "select attempts from dragonfly.completed_jobs where idempotency_key = %s", (key,)
    ).fetchone()
    assert attempts == (2,)
    workers[1].wait_for("outreach_done", outcome="unknown")


# --- the contact cap and campaigns ----------------------------------------------------------


def _all_completed(conn: Conn, keys: list[str]) -> bool:
    row = conn.execute(
        "select count(*) from dragonfly.completed_jobs"
        " where kind = 'outreach' and idempotency_key = any(%s)",
        (keys,),
    ).fetchone()
    return row == (len(keys),)


def test_twenty_jobs_of_the_fleet_for_one_plaintiff_send_the_weekly_cap(
    conn: Conn, smtp: Any, worker: WorkerProcess
) -> None:
    pid = _daytime_plaintiff(conn, email="jane@creditor.test")
    keys = [f"spam-{i}-{uuid.uuid4()}" for i in range(20)]
    for key in keys:  # through queue_job on the owner's session: internal provenance
        _enqueue(conn, key, {"plaintiff_id": str(pid), "campaign": "Fleet spring: Q1 2026"})
    wait_for(lambda: _all_completed(conn, keys), timeout=60, what="the twenty jobs")
    assert len(smtp.messages) == 2  # DRAGONFLY_OUTREACH_MAX_EMAILS_PER_WEEK's default
    assert _outcomes(conn, pid) == {"sent:email": 2, "capped:email": 18}
    assert conn.execute("select count(*) from dragonfly.dead_letters").fetchone() == (0,)
    capped = worker.wait_for("outreach_done", outcome="capped")
    assert capped["level"] == "warning"
    assert "contact cap" in capped["detail"]
    # The caller's text is no header: the campaign arrives as a token.
    for message in smtp.messages:
        assert re.fullmatch(r"fleet-spring-q1-2026-[0-9a-f]{8}", message["X-Dragonfly-Campaign"])


def test_twenty_call_jobs_for_one_plaintiff_open_the_weekly_cap_of_tasks(
    conn: Conn, smtp: Any, worker: WorkerProcess
) -> None:
    pid = _daytime_plaintiff(conn)
    keys = [f"call-{i}-{uuid.uuid4()}" for i in range(20)]
    for key in keys:
        _enqueue(conn, key, {"plaintiff_id": str(pid), "reason": "follow_up", "channel": "call"})
    wait_for(lambda: _all_completed(conn, keys), timeout=60, what="the twenty jobs")
    assert _outcomes(conn, pid) == {"task_created:call": 3, "capped:call": 17}
    tasks = conn.execute(
        "select count(*) from public.plaintiff_tasks where plaintiff_id = %s", (pid,)
    ).fetchone()
    assert tasks == (3,)
    assert smtp.messages == []


def test_public_jobs_are_capped_and_name_only_an_active_campaign(
    conn: Conn, smtp: Any, worker: WorkerProcess
) -> None:
    conn.execute(
        "insert into public.outreach_campaigns (name, description, active) values"
        " ('2026-q1-reactivation', 'Q1 reactivation', true), ('retired', 'old', false)"
    )
    public = {"level": "public", "role": "anon"}
    pid = _daytime_plaintiff(conn, email="jane@creditor.test")
    forbidden = [
        _send(conn, "f-unknown", {"plaintiff_id": str(pid), "campaign": "spring"}, public),
        _send(conn, "f-retired", {"plaintiff_id": str(pid), "campaign": "retired"}, public),
        _send(conn, "f-none", {"plaintiff_id": str(pid), "campaign": "spring\r\nBcc: x@y"}, None),
    ]
    for msg_id in forbidden:
        reason, error = wait_for(lambda msg_id=msg_id: _dead(conn, msg_id), what="a dead letter")
        assert reason == "permanent"
        assert "forbidden: campaign " in error
    assert smtp.messages == []
    assert _attempts(conn, pid) == []  # no effect at all
    assert conn.execute("select count(*) from public.outreach_emails").fetchone() == (0,)

    keys = [f"pub-{i}" for i in range(6)]
    payload = {"plaintiff_id": str(pid), "campaign": "2026-q1-reactivation"}
    for key in keys:
        _send(conn, key, payload, public)
    wait_for(lambda: _all_completed(conn, keys), timeout=60, what="the public jobs")
    assert _outcomes(conn, pid) == {"sent:email": 2, "capped:email": 4}
    assert [m["X-Dragonfly-Campaign"] for m in smtp.messages] == ["2026-q1-reactivation"] * 2


def test_two_workers_on_one_plaintiff_do_not_both_pass_the_cap(
    conn: Conn, fresh_db_url: str, tmp_path: Path
) -> None:
    """The first worker's email is held at the SMTP server's DATA (its intent committed, not
    settled) while the second worker takes the other job: it counts the intent, and is
    capped. Both jobs are enqueued together, so both workers decide at the same moment."""
    held, release = threading.Event(), threading.Event()

    def hold(_message: Any) -> None:
        held.set()
        release.wait(60)

    env = {"DRAGONFLY_OUTREACH_MAX_EMAILS_PER_WEEK": "1"}
    pid = _daytime_plaintiff(conn, email="jane@creditor.test")
    keys = [f"race-{i}-{uuid.uuid4()}" for i in range(2)]
    workers: list[WorkerProcess] = []
    try:
        with smtp_server(on_message=hold) as smtp:
            for _ in range(2):
                workers.append(_outreach_worker(fresh_db_url, tmp_path, smtp.port, **env))
                workers[-1].wait_ready()
            with conn.transaction():
                for key in keys:
                    _enqueue(conn, key, {"plaintiff_id": str(pid), "reason": "new_judgment"})
            wait_for(held.is_set, what="an email held at DATA")
            wait_for(
                lambda: any(_completed(conn, key) for key in keys),
                what="the other job, on the other worker",
            )
            release.set()
            wait_for(lambda: _all_completed(conn, keys), what="both jobs")
            assert len(smtp.messages) == 1
    finally:
        release.set()
        for process in workers:
            process.close()
    assert _outcomes(conn, pid) == {"sent:email": 1, "capped:email": 1}
    assert [len(w.events("outreach_done")) for w in workers] == [1, 1]  # one job each
