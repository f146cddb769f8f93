"""Real ``dragonfly worker`` processes against a real PostgreSQL.

Every test counts the effects the test handler commits (``runtime_test.effects``,
one row per committed attempt, no unique constraint): "done exactly once" means
one effect row and one completed-job record per key, and an empty queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.runtime.support import (
    INTERNAL,
    WorkerProcess,
    completed,
    effects_by_key,
    enqueue,
    queue_length,
    scalar,
    send_raw,
    wait_until,
)
from workers.ops.deadletters import replay

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]
StartWorker = Callable[..., WorkerProcess]


def dead_letters(conn: Conn) -> list[dict[str, Any]]:
    cur = conn.execute(
        "select id, msg_id, kind, idempotency_key, message, attempts, reason, last_error,"
        " traceback, status from dragonfly.dead_letters order by id"
    )
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_jobs_are_done_once_and_malformed_messages_dead_lettered_at_once(
    conn: Conn, start_worker: StartWorker
) -> None:
    worker = start_worker(concurrency=2)
    worker.wait_ready()
    keys = [f"job-{i}" for i in range(20)]
    for key in keys:
        enqueue(conn, key)
    not_an_object = send_raw(conn, ["not", "an", "envelope"])
    no_key = send_raw(conn, {"kind": "enrich", "payload": {}})
    wrong_queue = send_raw(conn, {"kind": "outreach", "idempotency_key": "x", "payload": {}})
    bad_payload = send_raw(
        conn,
        {
            "kind": "enrich",
            "idempotency_key": "bad-payload",
            "payload": {"sleep": "long"},
            "provenance": INTERNAL,  # a public sender may not set sleep at all: forbidden
        },
    )

    wait_until(lambda: len(completed(conn)) == 20, what="20 jobs done")
    wait_until(lambda: len(dead_letters(conn)) == 4, what="4 dead letters")

    assert effects_by_key(conn) == dict.fromkeys(keys, 1)
    assert completed(conn) == dict.fromkeys(keys, 1)
    dead = {d["msg_id"]: d for d in dead_letters(conn)}
    assert set(dead) == {not_an_object, no_key, wrong_queue, bad_payload}
    for d in dead.values():
        assert d["reason"] == "malformed"
        assert d["attempts"] == 1  # never retried
        assert d["status"] == "dead"
    assert dead[not_an_object]["message"] == ["not", "an", "envelope"]  # kept, not dropped
    assert "idempotency_key" in dead[no_key]["last_error"]
    assert "does not belong on queue 'enrich'" in dead[wrong_queue]["last_error"]
    assert "sleep" in dead[bad_payload]["last_error"]
    assert dead[bad_payload]["idempotency_key"] == "bad-payload"
    assert queue_length(conn) == 0
    events = worker.events("job_dead_lettered", reason="malformed")
    assert {e["msg_id"] for e in events} == set(dead)


def test_kill_9_mid_job_the_job_is_done_exactly_once_after_the_visibility_timeout(
    conn: Conn, start_worker: StartWorker
) -> None:
    first = start_worker()
    first.wait_ready()
    # Slow on its first attempt only: the worker is killed in the middle of it.
    msg_id = enqueue(conn, "victim", {"hold": 60, "slow_attempts": 1})
    first.wait_for("job_started", msg_id=msg_id)
    killed_at = time.monotonic()
    first.kill()

    second = start_worker()
    wait_until(lambda: completed(conn).get("victim"), what="victim done")
    waited = time.monotonic() - killed_at

    assert effects_by_key(conn) == {"victim": 1}
    assert completed(conn) == {"victim": 2}  # attempt 1 died with the worker
    assert queue_length(conn) == 0
    assert waited >= 1.0  # it came back only when the visibility timeout (2 s) ran out
    assert second.events("job_started", msg_id=msg_id, attempt=2)


def test_a_job_running_three_times_its_visibility_timeout_is_read_once_and_done_once(
    conn: Conn, start_worker: StartWorker
) -> None:
    env = {"DRAGONFLY_VISIBILITY_TIMEOUT": "1"}
    workers = [start_worker(concurrency=2, env=env) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    msg_id = enqueue(conn, "slow", {"hold": 3.0})
    wait_until(lambda: completed(conn).get("slow"), timeout=30, what="slow job done")

    assert effects_by_key(conn) == {"slow": 1}
    assert completed(conn) == {"slow": 1}  # read_ct 1: nobody read it again
    starts = [e for w in workers for e in w.events("job_started", msg_id=msg_id)]
    assert len(starts) == 1
    assert not [e for w in workers for e in w.events("job_lost")]


def test_a_failing_job_is_dead_lettered_after_max_attempts_and_done_after_replay(
    conn: Conn, start_worker: StartWorker
) -> None:
    conn.execute("update runtime_test.switch set broken = true")
    worker = start_worker()
    worker.wait_ready()
    msg_id = enqueue(conn, "flaky", {"fail_while_broken": True})
    wait_until(lambda: dead_letters(conn), what="dead letter")

    [dead] = dead_letters(conn)
    assert dead["msg_id"] == msg_id
    assert dead["reason"] == "max_attempts"
    assert dead["attempts"] == 3
    assert dead["last_error"] == "TransientError: the switch is broken"
    assert "handlers.py" in dead["traceback"]
    assert dead["message"]["payload"] == {"fail_while_broken": True}
    assert effects_by_key(conn) == {}  # every failed attempt rolled back
    assert queue_length(conn) == 0
    retries = worker.events("job_retry_scheduled", msg_id=msg_id)
    assert [e["attempt"] for e in retries] == [1, 2]

    conn.execute("update runtime_test.switch set broken = false")  # the fix
    new_msg_id = replay(conn, dead["id"], "on-call")
    wait_until(lambda: completed(conn).get("flaky"), what="replayed job done")

    assert effects_by_key(conn) == {"flaky": 1}
    assert completed(conn) == {"flaky": 1}  # a fresh attempt count
    assert scalar(conn, "select status from dragonfly.dead_letters") == "replayed"
    assert worker.events("job_succeeded", msg_id=new_msg_id)


def test_a_permanent_error_is_dead_lettered_without_retrying(
    conn: Conn, start_worker: StartWorker
) -> None:
    worker = start_worker()
    worker.wait_ready()
    enqueue(conn, "rejected", {"fail": "permanent"})
    enqueue(conn, "fine")
    wait_until(lambda: dead_letters(conn) and completed(conn), what="both settled")

    [dead] = dead_letters(conn)
    assert (dead["reason"], dead["attempts"]) == ("permanent", 1)
    assert dead["last_error"] == "PermanentError: the vendor rejected the request"
    assert effects_by_key(conn) == {"fine": 1}  # the failed job's savepoint rolled back


def test_a_handler_overrunning_its_timeout_is_stopped_and_counts_as_a_failure(
    conn: Conn, start_worker: StartWorker
) -> None:
    env = {"DRAGONFLY_JOB_TIMEOUTS": '{"enrich": 0.5}', "DRAGONFLY_MAX_ATTEMPTS": "1"}
    worker = start_worker(env=env)
    worker.wait_ready()
    in_database = enqueue(conn, "db-stuck", {"sleep": 30})
    in_python = enqueue(conn, "py-stuck", {"spin": 30})
    enqueue(conn, "quick")
    started = time.monotonic()
    wait_until(lambda: len(dead_letters(conn)) == 2 and completed(conn), timeout=15, what="settled")

    assert time.monotonic() - started < 10
    dead = {d["msg_id"]: d for d in dead_letters(conn)}
    assert {d["reason"] for d in dead.values()} == {"timeout"}
    assert "longer than its 0.5s timeout" in dead[in_database]["last_error"]
    assert "QueryCanceled" in dead[in_database]["traceback"]
    assert "longer than its 0.5s timeout" in dead[in_python]["last_error"]
    assert effects_by_key(conn) == {"quick": 1}


def test_sigterm_during_a_slow_job_lets_it_complete_and_exits_0(
    conn: Conn, start_worker: StartWorker
) -> None:
    worker = start_worker(env={"DRAGONFLY_SHUTDOWN_GRACE": "20"})
    worker.wait_ready()
    slow = enqueue(conn, "slow", {"hold": 2.0})
    worker.wait_for("job_started", msg_id=slow)
    waiting = enqueue(conn, "waiting")  # enqueued after: never started
    signalled = time.monotonic()
    worker.terminate()

    assert worker.wait(timeout=20) == 0
    assert time.monotonic() - signalled < 15  # well within the grace period
    assert completed(conn) == {"slow": 1}
    assert effects_by_key(conn) == {"slow": 1}
    # The job not started stays queued, visible, its read (if any) undone.
    row = conn.execute(
        "select read_ct, vt <= clock_timestamp() from pgmq.q_enrich where msg_id = %s",
        (waiting,),
    ).fetchone()
    assert row == (0, True)
    assert worker.events("worker_stopped", clean=True)


@pytest.mark.parametrize(
    ("payload", "event"),
    [
        # Busy in Python: interrupted in its thread, rolled back, released by the slot.
        ({"spin": 60}, "job_interrupted"),
        # Blocked in a C call (time.sleep) where no exception reaches it: its session
        # is terminated and its batch released from another connection.
        ({"hold": 60}, "batch_abandoned"),
    ],
)
def test_sigterm_past_the_grace_period_releases_the_running_job(
    conn: Conn, start_worker: StartWorker, payload: dict[str, Any], event: str
) -> None:
    worker = start_worker(env={"DRAGONFLY_SHUTDOWN_GRACE": "0.5"})
    worker.wait_ready()
    stuck = enqueue(conn, "stuck", payload)
    worker.wait_for("job_started", msg_id=stuck)
    worker.terminate()

    assert worker.wait(timeout=15) == 0
    assert completed(conn) == {}
    assert effects_by_key(conn) == {}
    row = conn.execute(
        "select read_ct, vt <= clock_timestamp() from pgmq.q_enrich where msg_id = %s", (stuck,)
    ).fetchone()
    assert row == (0, True)  # back on the queue at once, the attempt not counted
    assert worker.events(event)


def effects_via(conn: Conn) -> dict[str, str]:
    rows = conn.execute("select idempotency_key, via from runtime_test.effects").fetchall()
    return {str(k): str(v) for k, v in rows}


def test_a_batch_handler_runs_the_jobs_it_can_and_leaves_the_rest_to_the_single_path(
    conn: Conn, start_worker: StartWorker
) -> None:
    keys = [f"plain-{i}" for i in range(30)]
    for key in keys:
        enqueue(conn, key)
    rejected = enqueue(conn, "rejected", {"fail": "permanent"})
    slow = enqueue(conn, "slow", {"sleep": 0.01})
    worker = start_worker(handler="tests.runtime.handlers:BATCH")  # all in one read

    wait_until(lambda: len(completed(conn)) == 31, what="31 jobs done")
    wait_until(lambda: dead_letters(conn), what="the rejected job dead-lettered")

    via = effects_via(conn)
    assert {k: via[k] for k in keys} == dict.fromkeys(keys, "batch")
    assert via["slow"] == "single"
    assert "rejected" not in via  # its single attempt rolled back
    assert effects_by_key(conn) == dict.fromkeys([*keys, "slow"], 1)
    assert completed(conn) == dict.fromkeys([*keys, "slow"], 1)
    [dead] = dead_letters(conn)
    assert (dead["msg_id"], dead["reason"]) == (rejected, "permanent")
    assert "the vendor rejected the request" in dead["last_error"]
    assert queue_length(conn) == 0
    assert worker.events("job_succeeded", msg_id=slow)
    committed = worker.events("batch_committed")
    assert sum(e["done"] for e in committed) == 31
    assert sum(e["failed"] for e in committed) == 1


def test_when_the_batch_handler_raises_its_writes_are_undone_and_every_job_runs_singly(
    conn: Conn, start_worker: StartWorker
) -> None:
    keys = [f"job-{i}" for i in range(10)]
    for key in keys:
        enqueue(conn, key)
    enqueue(conn, "trigger", {"explode_batch": True})
    worker = start_worker(handler="tests.runtime.handlers:BATCH")

    wait_until(lambda: len(completed(conn)) == 11, what="11 jobs done")

    assert effects_via(conn) == dict.fromkeys([*keys, "trigger"], "single")
    assert effects_by_key(conn) == dict.fromkeys([*keys, "trigger"], 1)
    [failure] = worker.events("batch_handler_failed")
    assert "the batch handler fell over" in failure["error"]
    assert failure["jobs"] == 11
    assert not dead_letters(conn)


def test_one_notification_for_a_burst_brings_in_every_slot(
    conn: Conn, start_worker: StartWorker
) -> None:
    # Polling is off the table (60 s): only the wake-ups can bring the slots in. A burst
    # enqueued in one transaction gives one notification, which wakes one slot; each slot
    # that reads a full batch wakes another.
    worker = start_worker(
        concurrency=3,
        env={"DRAGONFLY_POLL_INTERVAL": "60", "DRAGONFLY_BATCH_SIZE": "2"},
    )
    worker.wait_ready()
    time.sleep(0.5)  # every slot has read the empty queue and waits
    with conn.transaction():
        for i in range(12):
            enqueue(conn, f"burst-{i}", {"sleep": 0.3})
    busy = 0  # the most jobs seen in their pg_sleep at one time
    deadline = time.monotonic() + 20
    while len(completed(conn)) < 12:
        assert time.monotonic() < deadline, "the burst was not done in 20 s"
        sleeping = scalar(
            conn,
            "select count(*) from pg_stat_activity where datname = current_database()"
            " and state = 'active' and query like 'select pg_sleep%%'",
        )
        busy = max(busy, sleeping)
        time.sleep(0.02)
    assert busy == 3
