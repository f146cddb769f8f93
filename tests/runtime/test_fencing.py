"""The fence and the exactly-once record, driven step by step in-process.

A process test cannot choose the moment a worker stalls; these tests interleave
two "workers" (two connections, one batch runner each) by hand, against a real
database.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from tests.runtime.support import (
    INTERNAL,
    RecordingMetrics,
    completed,
    effects_by_key,
    enqueue,
    make_runner,
    queue_length,
    scalar,
    send_raw,
    wait_until,
)
from workers.runtime import queries
from workers.runtime.batch import BatchReport
from workers.runtime.watchdog import Slot

Conn = psycopg.Connection[Any]


@pytest.fixture
def other(runtime_db: str) -> Any:
    with psycopg.connect(runtime_db, autocommit=True) as c:
        yield c


def test_a_stale_workers_delete_after_its_message_was_read_again_is_refused(
    conn: Conn, other: Conn
) -> None:
    msg_id = enqueue(conn, "contested")
    stale_conn, owner_conn = conn, other
    [stale] = queries.read(stale_conn, "enrich", 1, 1)
    # The first worker stalls past its 1 s visibility timeout; another reads the message.
    [fresh] = wait_until(lambda: queries.read(owner_conn, "enrich", 30, 1), what="re-read")
    assert (stale.msg_id, stale.read_ct, fresh.read_ct) == (msg_id, 1, 2)

    # The stale worker's fenced delete is refused, its completion too (nothing written).
    with pytest.raises(psycopg.Error) as refused, stale_conn.transaction():
        queries.ack(stale_conn, "enrich", [stale])
    assert refused.value.sqlstate == "DF100"
    with pytest.raises(psycopg.Error) as refused, stale_conn.transaction():
        queries.complete(stale_conn, "enrich", "stale", [stale], [1])
    assert refused.value.sqlstate == "DF100"
    assert completed(conn) == {}

    # Its whole batch: the claim says lost, the handler never runs.
    report = make_runner().run_deliveries(stale_conn, Slot(0), [stale])
    assert report is not None
    assert [j.delivery.msg_id for j in report.lost] == [msg_id]
    assert not report.done
    assert effects_by_key(conn) == {}

    # The owner completes it; the stale delete is still refused afterwards.
    report = make_runner().run_deliveries(owner_conn, Slot(1), [fresh])
    assert report is not None
    assert len(report.done) == 1
    with pytest.raises(psycopg.Error) as refused, stale_conn.transaction():
        queries.ack(stale_conn, "enrich", [stale])
    assert refused.value.sqlstate == "DF100"
    assert effects_by_key(conn) == {"contested": 1}
    assert completed(conn) == {"contested": 2}
    assert queue_length(conn) == 0


def test_a_claimed_message_is_not_read_again_after_its_visibility_timeout(
    conn: Conn, other: Conn
) -> None:
    enqueue(conn, "held")
    [delivery] = queries.read(conn, "enrich", 1, 1)
    with conn.transaction():
        assert queries.claim(conn, "enrich", [delivery]) == {}  # owned: nothing to report
        # vt ran out a while ago, yet the row lock keeps every reader off it.
        wait_until(
            lambda: scalar(
                other, "select vt < clock_timestamp() - interval '0.2 s' from pgmq.q_enrich"
            ),
            what="vt expired",
        )
        assert queries.read(other, "enrich", 30, 10) == []
        queries.ack(conn, "enrich", [delivery])
    assert queue_length(conn) == 0


def test_a_second_message_with_a_done_key_is_acknowledged_without_running(
    conn: Conn,
) -> None:
    metrics = RecordingMetrics()
    runner = make_runner(metrics)
    envelope = {
        "kind": "enrich",
        "idempotency_key": "twice",
        "payload": {},
        "provenance": INTERNAL,  # a redelivered copy of one of the fleet's own jobs
    }
    first, second = send_raw(conn, envelope), send_raw(conn, envelope)

    # Both in one batch: the first runs, the copy goes back unrun (its read undone).
    report = runner.run_deliveries(conn, Slot(0), queries.read(conn, "enrich", 30, 10))
    assert isinstance(report, BatchReport)
    assert [j.delivery.msg_id for j, _ in report.done] == [first]
    assert [j.delivery.msg_id for j in report.released] == [second]
    assert scalar(conn, "select read_ct from pgmq.q_enrich where msg_id = %s", (second,)) == 0

    # Read again: the key is done, so the copy is deleted without running.
    report = runner.run_deliveries(conn, Slot(0), queries.read(conn, "enrich", 30, 10))
    assert report is not None
    assert [j.delivery.msg_id for j in report.duplicates] == [second]
    assert effects_by_key(conn) == {"twice": 1}
    assert queue_length(conn) == 0
    assert [name for name, _ in metrics.calls] == ["done"]
    assert metrics.calls[0][1]["queue"] == "enrich"


def test_a_key_completed_concurrently_rolls_the_batch_back_and_releases_it(
    conn: Conn, other: Conn
) -> None:
    msg_id = enqueue(conn, "raced")
    enqueue(conn, "bystander")
    deliveries = queries.read(conn, "enrich", 30, 10)
    # Another transaction is completing the same key right now (not yet committed).
    other.execute("begin")
    other.execute(
        "insert into dragonfly.completed_jobs (kind, idempotency_key, queue, msg_id, attempts)"
        " values ('enrich', 'raced', 'enrich', 0, 1)"
    )
    outcome: list[BatchReport | None] = []
    thread = threading.Thread(
        target=lambda: outcome.append(make_runner().run_deliveries(conn, Slot(0), deliveries))
    )
    thread.start()
    # The batch's completion waits on the other transaction's key...
    wait_until(
        lambda: scalar(
            other,
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
            " and datname = current_database()",
        ),
        what="completion blocked on the key",
    )
    other.execute("commit")  # ... which then commits first.
    thread.join(10)

    assert outcome == [None]  # rolled back and released
    assert effects_by_key(conn) == {}
    assert conn.execute("select msg_id, read_ct from pgmq.q_enrich order by msg_id").fetchall() == [
        (msg_id, 0),
        (msg_id + 1, 0),
    ]
    report = make_runner().run_deliveries(conn, Slot(0), queries.read(conn, "enrich", 30, 10))
    assert report is not None
    assert [j.delivery.msg_id for j in report.duplicates] == [msg_id]
    assert effects_by_key(conn) == {"bystander": 1}


def test_a_message_read_more_often_than_max_attempts_is_dead_lettered_unrun(
    conn: Conn,
) -> None:
    # Three earlier reads crashed (kill -9, OOM) without recording anything.
    msg_id = enqueue(conn, "poison")
    conn.execute("update pgmq.q_enrich set read_ct = 3")
    report = make_runner().run_deliveries(conn, Slot(0), queries.read(conn, "enrich", 30, 10))
    assert report is not None
    assert effects_by_key(conn) == {}
    row = conn.execute(
        "select msg_id, reason, attempts, last_error from dragonfly.dead_letters"
    ).fetchone()
    assert row is not None
    assert row[:3] == (msg_id, "max_attempts", 4)
    assert "without an outcome" in row[3]


def test_the_runtime_functions_reject_unknown_queues_and_bad_input(conn: Conn) -> None:
    cases = [
        ("select dragonfly.ack_jobs('nope', '{1}', '{1}')", "22023"),
        ("select dragonfly.ack_jobs('enrich', '{1,2}', '{1}')", "22023"),
        ("select dragonfly.retry_job('enrich', 1, 1, -1)", "22023"),
        ("select dragonfly.dead_letter_job('enrich', 1, 1, 'bored', 'x')", "22023"),
        ("select dragonfly.dead_letter_job('enrich', 1, 1, 'permanent', ' ')", "22023"),
        ("select dragonfly.dead_letter_job('enrich', 1, 1, 'permanent', 'x')", "DF100"),
        ("select dragonfly.retry_job('enrich', 1, 1, 0)", "DF100"),
    ]
    for query, sqlstate in cases:
        with pytest.raises(psycopg.Error) as err:
            conn.execute(query)
        assert err.value.sqlstate == sqlstate, query
    assert scalar(conn, "select dragonfly.release_jobs('enrich', '{1}', '{1}')") == 0


def test_claiming_stays_a_primary_key_probe_as_completed_jobs_grow(conn: Conn) -> None:
    # A session that claimed while completed_jobs was empty must not keep a plan that
    # scans it (seconds per batch): the probe's cached plan is the primary key whatever the
    # statistics say (tests/sql/test_claim_plans.py counts its pages).
    for i in range(8):
        enqueue(conn, f"warm-{i}")
        [d] = queries.read(conn, "enrich", 30, 1)
        with conn.transaction():
            queries.claim(conn, "enrich", [d])
            queries.ack(conn, "enrich", [d])
    conn.execute(
        "insert into dragonfly.completed_jobs (kind, idempotency_key, queue, msg_id, attempts)"
        " select 'enrich', 'old-' || g, 'enrich', g, 1 from generate_series(1, 100000) g"
    )
    keys = [f"new-{i}" for i in range(200)]
    for key in keys:
        enqueue(conn, key)
    deliveries = queries.read(conn, "enrich", 30, 200)
    with conn.transaction():
        started = time.perf_counter()
        states = queries.claim(conn, "enrich", deliveries)
        elapsed = time.perf_counter() - started
    assert states == {}  # all owned
    assert elapsed < 0.5, f"claiming 200 took {elapsed:.2f}s"
