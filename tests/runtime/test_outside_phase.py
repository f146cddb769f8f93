"""The outside phase (``JobKind.fetch``) and the runtime's transaction hygiene, in-process.

A batch runner of the phased test kind (tests.runtime.handlers:PHASED) on a real database:
its fetch runs with no transaction open and nothing locked, its message hidden from other
workers for the phase; what it returns reaches ``handle``; what it raises is classified like a
handler's failure; jobs with nothing to fetch still go to ``handle_batch``. And a handler that
enqueues, with nothing of its own to call for it, holds up no other producer of that queue
while its batch's transaction stays open.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.runtime import handlers
from tests.runtime.handlers import PHASED
from tests.runtime.support import (
    completed,
    make_runner,
    queue_length,
    scalar,
    wait_until,
)
from workers.runtime import queries
from workers.runtime.batch import BatchReport
from workers.runtime.watchdog import Slot, Watchdog

Conn = psycopg.Connection[Any]


@pytest.fixture
def other(runtime_db: str) -> Iterator[Conn]:
    with psycopg.connect(runtime_db, autocommit=True) as c:
        yield c


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """The phased kind's gate, closed; opened at the end whatever happens."""
    handlers.OUTSIDE_GATE.clear()
    handlers.OUTSIDE_ENTERED.clear()
    yield handlers.OUTSIDE_GATE
    handlers.OUTSIDE_GATE.set()


def _send(conn: Conn, key: str, **payload: Any) -> int:
    return int(
        scalar(
            conn,
            "select public.queue_job(%s)",
            (Jsonb({"kind": "enrich", "idempotency_key": key, "payload": payload}),),
        )
    )


def _effects(conn: Conn) -> dict[str, str]:
    rows = conn.execute("select idempotency_key, via from runtime_test.effects").fetchall()
    return {str(k): str(v) for k, v in rows}


def _run_in_thread(conn: Conn, job_timeout: float = 30.0) -> tuple[threading.Thread, list[Any]]:
    """Read a batch (visibility timeout 2 s) and run it in a thread, under a watchdog."""
    outcome: list[Any] = []
    runner = make_runner(job=PHASED, job_timeout=job_timeout)
    slot = Slot(0)
    watchdog = Watchdog([slot])

    def run() -> None:
        watchdog.start()
        try:
            outcome.append(runner.run_deliveries(conn, slot, queries.read(conn, "enrich", 2, 10)))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)
        finally:
            watchdog.stop()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_the_outside_phase_runs_with_no_transaction_open_and_its_message_held(
    conn: Conn, other: Conn, gate: threading.Event
) -> None:
    _send(conn, "slow", fetch="gate")
    pid = conn.info.backend_pid
    thread, outcome = _run_in_thread(conn, job_timeout=20.0)
    try:
        assert handlers.OUTSIDE_ENTERED.wait(20), "the fetch never started"
        # The worker's session while its fetch waits on the outside world: no transaction,
        # no snapshot, no lock at all (not even the message's row).
        activity = other.execute(
            "select state, xact_start, backend_xid, backend_xmin from pg_stat_activity"
            " where pid = %s",
            (pid,),
        ).fetchone()
        assert activity == ("idle", None, None, None)
        assert scalar(other, "select count(*) from pg_locks where pid = %s", (pid,)) == 0
        # Read with a 2 s visibility timeout, the message is held for the whole phase
        # (batch window + job timeout + visibility timeout): another worker cannot read it.
        hidden_for = float(
            scalar(other, "select extract(epoch from vt - clock_timestamp()) from pgmq.q_enrich")
        )
        assert hidden_for > 30.0 + 20.0
        assert queries.read(other, "enrich", 30, 10) == []
    finally:
        gate.set()
        thread.join(30)
    [report] = outcome
    assert isinstance(report, BatchReport)
    assert _effects(conn) == {"slow": "fetched:slow"}  # what fetch returned reached handle
    assert completed(conn) == {"slow": 1}
    assert queue_length(conn) == 0


def test_fetch_failures_are_retried_or_dead_lettered_and_the_rest_of_the_batch_goes_on(
    conn: Conn,
) -> None:
    transient = _send(conn, "t", fetch="transient")
    permanent = _send(conn, "p", fetch="permanent")
    for key in ("n1", "n2"):
        _send(conn, key, fetch="none")
    _send(conn, "v", fetch="value")
    report = make_runner(job=PHASED).run_deliveries(
        conn, Slot(0), queries.read(conn, "enrich", 30, 10)
    )
    assert report is not None
    # Nothing to fetch: offered to handle_batch together; a fetched value: through handle.
    assert _effects(conn) == {"n1": "batch", "n2": "batch", "v": "fetched:v"}
    assert completed(conn) == {"n1": 1, "n2": 1, "v": 1}
    failed = {f.job.delivery.msg_id: f for f in report.failed}
    assert failed[transient].retry_in is not None
    assert failed[transient].failure == "transient"
    assert failed[permanent].reason == "permanent"
    assert "the vendor refused the case" in failed[permanent].error
    dead = conn.execute("select msg_id, reason from dragonfly.dead_letters").fetchall()
    assert dead == [(permanent, "permanent")]
    waiting = conn.execute("select msg_id, read_ct from pgmq.q_enrich").fetchall()
    assert waiting == [(transient, 1)]  # retried later, the attempt counted


def test_a_fetch_past_the_job_timeout_fails_with_a_timeout(
    conn: Conn, gate: threading.Event
) -> None:
    msg_id = _send(conn, "stuck", fetch="gate")
    thread, outcome = _run_in_thread(conn, job_timeout=0.5)
    thread.join(30)
    [report] = outcome
    assert isinstance(report, BatchReport)
    [failed] = report.failed
    assert (failed.job.delivery.msg_id, failed.failure) == (msg_id, "timeout")
    assert failed.retry_in is not None
    assert _effects(conn) == {}


def test_a_handler_that_enqueues_holds_up_no_other_producer_until_its_batch_commits(
    conn: Conn, other: Conn, gate: threading.Event
) -> None:
    _send(conn, "enqueuer", fetch="none", enqueue=True)
    thread, outcome = _run_in_thread(conn)
    try:
        assert handlers.OUTSIDE_ENTERED.wait(20), "the handler never enqueued"
        # The batch's transaction is open and has enqueued an outreach job (the handler
        # calls nothing for it). Another producer's enqueue on the same queue
        # must not wait for that batch to commit.
        with other.transaction():
            other.execute("set local lock_timeout = '1s'")
            other.execute(
                "select public.queue_job(jsonb_build_object('kind', 'outreach',"
                " 'idempotency_key', 'elsewhere', 'payload', '{}'::jsonb))"
            )
    finally:
        gate.set()
        thread.join(30)
    assert isinstance(outcome[0], BatchReport)
    assert completed(conn) == {"enqueuer": 1}
    wait_until(lambda: queue_length(conn, "outreach") == 2, what="both outreach jobs")
