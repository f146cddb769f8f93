"""enforce end to end: queue_job -> a real `dragonfly worker enforce` process -> database
state; a redelivered message changes nothing; bad payloads are dead-lettered with a clear
reason; the SLA sweep resurfaces overdue cases through the worker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.kinds.enforce_copilot_support import (
    actions,
    add_asset,
    case_row,
    completed,
    dead_letter,
    enqueue,
    queue_empty,
    resend,
    worker_process,
)
from tests.kinds.enrich_outreach_support import make_case, open_enforcement_case, wait_for
from tests.kinds.unchecked import send_unchecked
from tests.runtime.support import INTERNAL
from workers.enforce.sweep import SlaSweepTask, sla_key
from workers.scheduler.base import TaskContext

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def case(conn: Conn) -> dict[str, uuid.UUID]:
    ids = make_case(conn)
    ids["ec"] = open_enforcement_case(conn, ids)
    add_asset(conn, ids["case_id"], "bank", "Chase")
    conn.execute("update public.enforcement_cases set tier = 'tier1' where id = %s", (ids["ec"],))
    return ids


def _timeline_size(conn: Conn, case_id: uuid.UUID) -> int:
    row = conn.execute(
        "select count(*) from public.v_enforcement_timeline where case_id = %s", (case_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_plan_job_runs_once_and_a_redelivery_changes_nothing(
    fresh_db_url: str, conn: Conn, case: dict[str, uuid.UUID]
) -> None:
    key = f"plan-{uuid.uuid4()}"
    with worker_process("enforce", fresh_db_url):
        enqueue(conn, "enforce", key, {"case_id": str(case["ec"]), "trigger": "manual"})
        wait_for(lambda: completed(conn, "enforce", key), what="the plan job to complete")
        assert actions(conn, case["ec"]) == [("bank_levy", "queued")]
        state = case_row(conn, case["ec"])
        assert state["current_stage"] == "bank_levy"
        assert state["next_action_at"] > datetime.now(UTC)
        size = _timeline_size(conn, case["ec"])

        # The same envelope delivered again (a crash after commit, a replayed message).
        envelope = {
            "kind": "enforce",
            "idempotency_key": key,
            "payload": {"case_id": str(case["ec"]), "trigger": "manual"},
            "provenance": INTERNAL,
        }
        resend(conn, "enforce", envelope)
        # queue_job with the same key sends nothing at all
        enqueue(conn, "enforce", key, {"case_id": str(case["ec"]), "trigger": "manual"})
        wait_for(lambda: queue_empty(conn, "enforce"), what="the redelivery to be consumed")

    assert actions(conn, case["ec"]) == [("bank_levy", "queued")]
    assert case_row(conn, case["ec"]) == state
    assert _timeline_size(conn, case["ec"]) == size


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"case_id": "not-a-uuid"}, "case_id"),
        ({}, "case_id"),
        ({"case_id": str(uuid.UUID(int=1)), "requested_action": "arson"}, "requested_action"),
        ({"case_id": str(uuid.UUID(int=1)), "surprise": 1}, "surprise"),
    ],
    ids=["bad-uuid", "missing", "unknown-action", "unknown-field"],
)
def test_a_bad_payload_is_dead_lettered_with_the_reason(
    fresh_db_url: str, conn: Conn, payload: dict[str, Any], expected: str
) -> None:
    with worker_process("enforce", fresh_db_url):
        msg_id = send_unchecked(conn, "enforce", f"bad-{uuid.uuid4()}", payload)
        reason, error = wait_for(
            lambda: dead_letter(conn, "enforce", msg_id), what="the dead letter"
        )
    assert reason == "malformed"
    assert expected in error


def test_an_unknown_case_is_dead_lettered_as_permanent(fresh_db_url: str, conn: Conn) -> None:
    missing = uuid.uuid4()
    with worker_process("enforce", fresh_db_url):
        msg_id = send_unchecked(conn, "enforce", f"gone-{missing}", {"case_id": str(missing)})
        reason, error = wait_for(
            lambda: dead_letter(conn, "enforce", msg_id), what="the dead letter"
        )
    assert reason == "permanent"
    assert "P0002" in error
    assert str(missing) in error


def test_the_sla_sweep_resurfaces_overdue_cases(
    fresh_db_url: str, conn: Conn, case: dict[str, uuid.UUID]
) -> None:
    conn.execute(
        "update public.enforcement_cases set next_action_at = now() - interval '1 hour'"
        " where id = %s",
        (case["ec"],),
    )
    due = case_row(conn, case["ec"])["next_action_at"]
    task = SlaSweepTask.every_minutes(15, batch=100)

    def sweep() -> Any:
        return task.run_once(TaskContext(conn, datetime.now(UTC), threading.Event()))

    first = sweep()
    assert first.detail == {"due": 1, "enqueued": 1, "batch_full": False}
    assert sweep().detail == {"due": 1, "enqueued": 0, "batch_full": False}  # same key

    key = sla_key(case["ec"], due)
    with worker_process("enforce", fresh_db_url):
        wait_for(lambda: completed(conn, "enforce", key), what="the sweep's plan job")
    assert actions(conn, case["ec"]) == [("bank_levy", "queued")]
    assert case_row(conn, case["ec"])["next_action_at"] > datetime.now(UTC)
    assert sweep().detail == {"due": 0, "enqueued": 0, "batch_full": False}
