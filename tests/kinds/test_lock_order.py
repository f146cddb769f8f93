"""No deadlock between batches that lock several cases (docs/architecture.md, "Lock order").

Two connections, stepped by the test: an enforce batch (the enforce kind's batch step, then
its jobs one by one, as the runtime runs them in one transaction) holds one of its cases
when another transaction that needs both cases starts and blocks; then the batch goes on
to its other case. Taken in message order, that second case is held by the blocked
transaction: 40P01. Taken in id order up front, the other transaction waits its turn.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import structlog
from psycopg.types.json import Jsonb

from tests.harness import worker_url
from tests.kinds.enrich_outreach_support import make_case, open_enforcement_case, wait_for
from workers.enforce import JOB
from workers.enforce.handler import run
from workers.enforce.payload import EnforcePayload
from workers.runtime import BatchContext, BatchItem
from workers.runtime.envelope import Envelope

Conn = psycopg.Connection[Any]
Step = Callable[[Conn], None]


class Cases:
    """Two open enforcement cases, ``low`` and ``high`` by id, and their court cases."""

    def __init__(self, conn: Conn) -> None:
        opened = []
        for _ in range(2):
            ids = make_case(conn)
            opened.append((open_enforcement_case(conn, ids), ids["case_id"]))
        opened.sort()
        (self.low, self.low_court), (self.high, self.high_court) = opened


def enforce_batch(case_ids: list[uuid.UUID]) -> list[Step]:
    """The steps of one enforce batch: the kind's batch step, then each job's plan."""
    payloads = [EnforcePayload(case_id=c, trigger="demo") for c in case_ids]

    def batch_step(conn: Conn) -> None:
        assert JOB.handle_batch is not None
        items = [
            BatchItem(n, Envelope(kind="enforce", idempotency_key=f"k{n}", payload={}), p)
            for n, p in enumerate(payloads)
        ]
        ctx = BatchContext(
            conn, queue="enforce", log=structlog.get_logger(), adapters={}, stop=threading.Event()
        )
        assert not JOB.handle_batch(ctx, items)  # it completes no job itself

    def job(payload: EnforcePayload) -> Step:
        def step(conn: Conn) -> None:
            run(conn, payload, idempotency_key=f"plan:{payload.case_id}")

        return step

    return [batch_step, *(job(p) for p in payloads)]


def record_scores(court_case_ids: list[uuid.UUID]) -> list[Step]:
    """enrich's batch step: scores (and so tiers) for the court cases and their
    enforcement cases, in one statement."""
    scores = [
        {
            "case_id": str(c),
            "identity_score": 80,
            "contactability_score": 70,
            "asset_score": 60,
            "recency_amount_score": 50,
            "adverse_penalty": 0,
            "collectability_score": 65,
            "summary": "scored",
        }
        for c in court_case_ids
    ]

    def step(conn: Conn) -> None:
        conn.execute("select * from enrichment.record_case_scores_batch(%s)", (Jsonb(scores),))

    return [step]


def waiting_on_a_lock(admin: Conn, pid: int) -> bool:
    row = admin.execute(
        "select wait_event_type = 'Lock' from pg_stat_activity where pid = %s", (pid,)
    ).fetchone()
    return bool(row and row[0])


@pytest.mark.parametrize("other", ["enforce batch in the other order", "enrich scores batch"])
def test_a_batch_and_another_transaction_on_the_same_cases_do_not_deadlock(
    fresh_db_url: str, other: str
) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as admin:
        cases = Cases(admin)
        first = enforce_batch([cases.high, cases.low])  # message order: high id first
        second = (
            enforce_batch([cases.low, cases.high])
            if other.startswith("enforce")
            else record_scores([cases.low_court, cases.high_court])
        )
        errors: list[BaseException] = []
        with (
            psycopg.connect(worker_url(fresh_db_url)) as a,
            psycopg.connect(worker_url(fresh_db_url)) as b,
        ):
            for step in first[:2]:  # the batch step, then the job of the high case
                step(a)

            def run_other() -> None:
                try:
                    for step in second:
                        step(b)
                    b.commit()
                except psycopg.Error as exc:
                    errors.append(exc)
                    b.rollback()

            thread = threading.Thread(target=run_other)
            thread.start()
            wait_for(lambda: waiting_on_a_lock(admin, b.info.backend_pid), what="b to block")
            try:
                for step in first[2:]:  # the job of the low case
                    step(a)
                a.commit()
            except psycopg.Error as exc:
                errors.append(exc)
                a.rollback()
            thread.join(timeout=30)
            assert not thread.is_alive()

    assert [type(e).__name__ for e in errors] == []
