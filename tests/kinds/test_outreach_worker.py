"""outreach end to end: queue_job -> a real `dragonfly worker outreach` process -> a loopback
SMTP server and the database. The SMTP server receives exactly one email, also when the job
is delivered twice; a do_not_call plaintiff gets nothing; quiet hours defer the job; bad
payloads are dead-lettered with a clear reason."""

from __future__ import annotations

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
    no_reason = _enqueue(conn, "bad-1", {"plaintiff_id": str(uuid.uuid4())})
    unknown = _enqueue(conn, "bad-2", {"plaintiff_id": str(uuid.uuid4()), "reason": "x"})

    def dead(msg_id: int) -> tuple[str, str] | None:
        row = conn.execute(
            "select reason, last_error from dragonfly.dead_letters"
            " where queue = 'outreach' and msg_id = %s",
            (msg_id,),
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    reason, error = wait_for(lambda: dead(no_reason), what="dead letter 1")
    assert reason == "malformed"
    assert "reason or a campaign" in error
    reason, error = wait_for(lambda: dead(unknown), what="dead letter 2")
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
