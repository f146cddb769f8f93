"""The job queues' insert notifications, as the fleet's login role sees them: an enqueue
commits, locks nothing another enqueuer needs, and wakes listeners at commit."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.harness import worker_url
from tests.sql.job_payloads import valid_jobs

Conn = psycopg.Connection[Any]


@pytest.fixture
def plan(fresh_db_url: str) -> dict[str, Any]:
    """An enforce job's payload for a case committed in ``fresh_db_url``."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        return valid_jobs(conn)["enforce"]


def plan_job(conn: Conn, key: str, plan: dict[str, Any]) -> int:
    row = conn.execute(
        "select public.queue_job(%s)",
        (Jsonb({"kind": "enforce", "idempotency_key": key, "payload": plan}),),
    ).fetchone()
    assert row is not None
    return int(row[0])


def queued(url: str) -> int:
    with psycopg.connect(url) as admin:
        row = admin.execute("select count(*) from pgmq.q_enforce").fetchone()
    assert row is not None
    return int(row[0])


def test_a_worker_login_commits_an_enqueue_after_defer_queue_notify(
    fresh_db_url: str, plan: dict[str, Any]
) -> None:
    # The handlers' sequence, as a member of dragonfly_worker; it used to fail at commit with
    # 42501 permission denied for schema pgmq (PGMQ's deferred trigger ran as this login).
    with psycopg.connect(worker_url(fresh_db_url)) as conn:
        conn.execute("select dragonfly.defer_queue_notify()")
        plan_job(conn, "x", plan)
        conn.commit()

    assert queued(fresh_db_url) == 1


def test_an_open_enqueue_does_not_hold_up_another_enqueuer(
    fresh_db_url: str, plan: dict[str, Any]
) -> None:
    with (
        psycopg.connect(worker_url(fresh_db_url)) as batch,
        psycopg.connect(worker_url(fresh_db_url)) as other,
    ):
        plan_job(batch, "early-in-a-long-batch", plan)  # its transaction stays open
        other.execute("set lock_timeout = '2s'")
        plan_job(other, "another-worker", plan)  # would wait on the batch's lock (55P03)
        other.commit()
        batch.commit()

    assert queued(fresh_db_url) == 2


def test_listeners_are_woken_at_commit_on_pgmq_s_channel(
    fresh_db_url: str, plan: dict[str, Any]
) -> None:
    with (
        psycopg.connect(fresh_db_url, autocommit=True) as listener,
        psycopg.connect(worker_url(fresh_db_url)) as sender,
    ):
        listener.execute('listen "pgmq.q_enforce.INSERT"')
        plan_job(sender, "one", plan)
        plan_job(sender, "two", plan)
        sender.commit()
        notices = list(listener.notifies(timeout=5, stop_after=1))
        assert [n.channel for n in notices] == ["pgmq.q_enforce.INSERT"]
