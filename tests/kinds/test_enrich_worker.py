"""enrich end to end: queue_job -> a real `dragonfly worker enrich` process -> database
state; redelivery changes nothing; bad payloads are dead-lettered with a clear reason; a
vendor that answers 503 then 200 enriches the case once; a batch of good jobs with one bad
bundle goes through the batch path and dead-letters only the bad one."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.harness import WORKER_LOGIN, run_cli
from tests.kinds.enrich_outreach_support import (
    RICH_BUNDLE,
    FakeVendor,
    make_case,
    open_enforcement_case,
    wait_for,
)
from tests.kinds.unchecked import send_unchecked
from tests.runtime.support import INTERNAL, WorkerProcess
from workers.enrich.handler import plan_key

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def start_worker(fresh_db_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """`python -m workers.cli worker enrich` (the real JOB) with short retry timings."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(
            fresh_db_url,
            tmp_path,
            kind="enrich",
            handler="workers.enrich:JOB",
            env=env,
            name=f"enrich{len(started) + 1}",
        )
        started.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.terminate()
        try:
            worker.wait(30)
        finally:
            worker.close()


def _enqueue(conn: Conn, key: str, payload: dict[str, Any]) -> int:
    row = conn.execute(
        "select public.queue_job(%s)",
        (Jsonb({"kind": "enrich", "idempotency_key": key, "payload": payload}),),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _completed(conn: Conn, key: str) -> int | None:
    row = conn.execute(
        "select attempts from dragonfly.completed_jobs"
        " where kind = 'enrich' and idempotency_key = %s",
        (key,),
    ).fetchone()
    return int(row[0]) if row else None


def _dead_letter(conn: Conn, msg_id: int) -> tuple[str, str] | None:
    row = conn.execute(
        "select reason, last_error from dragonfly.dead_letters"
        " where queue = 'enrich' and msg_id = %s",
        (msg_id,),
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def _state(conn: Conn, case_id: uuid.UUID) -> tuple[Any, ...]:
    row = conn.execute(
        "select c.collectability_score, c.collectability_tier, c.last_scored_at, c.updated_at,"
        " (select count(*) from enrichment.contacts k where k.case_id = c.id),"
        " (select count(*) from enrichment.assets a where a.case_id = c.id),"
        " (select max(updated_at) from enrichment.contacts k where k.case_id = c.id)"
        " from judgments.cases c where c.id = %s",
        (case_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _queue_empty(conn: Conn) -> bool:
    row = conn.execute("select count(*) from pgmq.q_enrich").fetchone()
    return row == (0,)


def test_an_enrich_job_scores_the_case_once_and_a_redelivery_changes_nothing(
    conn: Conn, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids = make_case(conn)
    enforcement_id = open_enforcement_case(conn, ids)
    key = f"enrich-{uuid.uuid4()}"
    payload = {"case_id": str(ids["case_id"]), "bundle": RICH_BUNDLE}
    worker = start_worker()

    msg_id = _enqueue(conn, key, payload)
    assert wait_for(lambda: _completed(conn, key), what="the enrich job") == 1
    score, tier, _at, _updated, contacts, assets, _ = before = _state(conn, ids["case_id"])
    assert score is not None
    assert tier is not None
    assert (contacts, assets) == (3, 2)
    signals = conn.execute(
        "select source, identity_confidence from enrichment.case_signals where case_id = %s",
        (ids["case_id"],),
    ).fetchall()
    assert [(s, float(c)) for s, c in signals] == [("acme-skiptrace", 0.85)]
    enforcement = conn.execute(
        "select tier, collectability_score from public.enforcement_cases where id = %s",
        (enforcement_id,),
    ).fetchone()
    assert enforcement == (tier, score)
    # The tier changed (unscored -> tier): one plan job for the enforce worker.
    plans = conn.execute(
        "select message ->> 'idempotency_key', message -> 'payload' ->> 'trigger'"
        " from pgmq.q_enforce"
    ).fetchall()
    assert plans == [(plan_key(enforcement_id, tier, key), "tier_change")]
    worker.wait_for("case_enriched", idempotency_key=key)

    # queue_job with the same key sends nothing; the same envelope sent again as a raw
    # message (a redelivery after commit, a replay) is acknowledged without running.
    assert _enqueue(conn, key, payload) == msg_id
    conn.execute(
        "select pgmq.send('enrich', %s)",
        (
            Jsonb(
                {
                    "kind": "enrich",
                    "idempotency_key": key,
                    "payload": payload,
                    "provenance": INTERNAL,
                }
            ),
        ),
    )
    wait_for(lambda: _queue_empty(conn), what="the redelivered message to be acknowledged")
    worker.wait_for("job_already_done", idempotency_key=key)
    assert _state(conn, ids["case_id"]) == before
    assert len(conn.execute("select 1 from pgmq.q_enforce").fetchall()) == 1
    assert len(worker.events("case_enriched", idempotency_key=key)) == 1


def test_bad_payloads_are_dead_lettered_with_a_clear_reason(
    conn: Conn, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker()
    not_a_uuid = send_unchecked(conn, "enrich", "bad-1", {"case_id": "not-a-uuid"})
    extra_field = send_unchecked(
        conn, "enrich", "bad-2", {"case_id": str(uuid.uuid4()), "colour": "red"}
    )
    bad_bundle = send_unchecked(
        conn,
        "enrich",
        "bad-3",
        {"case_id": str(uuid.uuid4()), "bundle": {"contacts": [{"contact_type": "fax"}]}},
    )
    unknown_case = send_unchecked(conn, "enrich", "bad-4", {"case_id": str(uuid.uuid4())})

    reason, error = wait_for(lambda: _dead_letter(conn, not_a_uuid), what="dead letter 1")
    assert reason == "malformed"
    assert "case_id" in error
    assert "uuid" in error.lower()
    reason, error = wait_for(lambda: _dead_letter(conn, extra_field), what="dead letter 2")
    assert reason == "malformed"
    assert "colour" in error
    reason, error = wait_for(lambda: _dead_letter(conn, bad_bundle), what="dead letter 3")
    assert reason == "malformed"
    assert "bundle.contacts.0.contact_type" in error
    reason, error = wait_for(lambda: _dead_letter(conn, unknown_case), what="dead letter 4")
    assert reason == "permanent"
    assert "P0002" in error
    assert "not found" in error
    assert _queue_empty(conn)


def test_a_vendor_503_then_200_enriches_once(
    conn: Conn, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids = make_case(conn)
    with FakeVendor([(503, {"error": "maintenance"})]) as vendor:
        # One try per attempt: the 503 fails the job transiently and the queue retries it.
        worker = start_worker(
            {
                "DRAGONFLY_ENRICH_VENDOR_URL": vendor.url,
                "DRAGONFLY_ENRICH_VENDOR_API_KEY": "test-key",
                "DRAGONFLY_ENRICH_VENDOR_ATTEMPTS": "1",
                "DRAGONFLY_ENRICH_VENDOR_TIMEOUT": "5",
            }
        )
        key = f"vendor-{uuid.uuid4()}"
        _enqueue(conn, key, {"case_id": str(ids["case_id"])})
        attempts = wait_for(lambda: _completed(conn, key), what="the enrich job")

    assert attempts == 2
    assert [r["idempotency_key"] for r in vendor.requests] == [key, key]
    assert {r["authorization"] for r in vendor.requests} == {"Bearer test-key"}
    failed = worker.events("job_failed", idempotency_key=key)
    assert len(failed) == 1
    assert "503" in failed[0]["error"]
    assert failed[0]["error_class"] == "transient"
    _score, _tier, _at, _upd, contacts, assets, _ = _state(conn, ids["case_id"])
    assert (contacts, assets) == (3, 2)
    assert len(worker.events("case_enriched", idempotency_key=key)) == 1
    assert conn.execute("select count(*) from dragonfly.dead_letters").fetchone() == (0,)


def test_a_worker_batches_the_good_jobs_and_dead_letters_the_bad_one(
    conn: Conn, start_worker: Callable[..., WorkerProcess]
) -> None:
    cases = [make_case(conn) for _ in range(4)]
    open_enforcement_case(conn, cases[0])
    bad_bundle = {"source": "v", "contacts": [{"contact_type": "phone", "value": "12"}]}
    msg_ids = []
    for n, ids in enumerate(cases):
        payload = {"case_id": str(ids["case_id"]), "bundle": bad_bundle if n == 2 else RICH_BUNDLE}
        msg_ids.append(_enqueue(conn, f"e2e-{n}", payload))
    worker = start_worker()  # all four are waiting: one read, one batch

    dead = wait_for(
        lambda: conn.execute(
            "select reason, last_error from dragonfly.dead_letters where msg_id = %s",
            (msg_ids[2],),
        ).fetchone(),
        what="the bad job's dead letter",
    )
    assert dead[0] == "permanent"
    assert "contacts[0].value '12' is not a valid phone" in dead[1]
    wait_for(
        lambda: conn.execute(
            "select count(*) = 3 from dragonfly.completed_jobs where kind = 'enrich'"
        ).fetchone()[0],  # type: ignore[index]
        what="the three good jobs",
    )
    enriched = worker.events("case_enriched", batch=True)
    assert sorted(e["msg_id"] for e in enriched) == sorted(msg_ids[:2] + msg_ids[3:])
    assert not worker.events("batch_handler_failed")
    scored = conn.execute(
        "select id, collectability_tier is not null,"
        " (select count(*) from enrichment.contacts k where k.case_id = c.id)"
        " from judgments.cases c"
    ).fetchall()
    assert {row[0]: row[1:] for row in scored} == {
        ids["case_id"]: ((False, 0) if n == 2 else (True, 3)) for n, ids in enumerate(cases)
    }
    plans = conn.execute("select message ->> 'idempotency_key' from pgmq.q_enforce").fetchall()
    assert len(plans) == 1
    assert plans[0][0].endswith(":e2e-0")


def test_the_vendor_pull_happens_with_no_transaction_open(
    conn: Conn, start_worker: Callable[..., WorkerProcess]
) -> None:
    ids = make_case(conn)
    with FakeVendor() as vendor:
        vendor.gate = threading.Event()
        try:
            start_worker(
                {
                    "DRAGONFLY_ENRICH_VENDOR_URL": vendor.url,
                    "DRAGONFLY_ENRICH_VENDOR_ATTEMPTS": "1",
                    "DRAGONFLY_ENRICH_VENDOR_TIMEOUT": "30",
                }
            )
            key = f"held-{uuid.uuid4()}"
            _enqueue(conn, key, {"case_id": str(ids["case_id"])})
            assert vendor.entered.wait(20), "the vendor was never asked"
            # While the vendor holds the request, the worker's sessions (its slots and its
            # listener) have no transaction open and hold no lock.
            sessions = conn.execute(
                "select pid, state, xact_start from pg_stat_activity"
                " where application_name = 'dragonfly-worker:enrich'"
                " and datname = current_database()"
            ).fetchall()
            assert sessions
            assert [(state, xact) for _, state, xact in sessions] == [("idle", None)] * len(
                sessions
            )
            locks = conn.execute(
                "select count(*) from pg_locks where pid = any(%s)", ([p for p, _, _ in sessions],)
            ).fetchone()
            assert locks == (0,)
        finally:
            vendor.gate.set()
        attempts = wait_for(lambda: _completed(conn, key), what="the enrich job")
    assert attempts == 1
    assert _state(conn, ids["case_id"])[4:6] == (3, 2)  # the vendor's contacts and assets


def test_a_vendor_echoing_the_token_leaks_it_nowhere(
    conn: Conn, fresh_db_url: str, start_worker: Callable[..., WorkerProcess]
) -> None:
    token = f"MARKER-token-{uuid.uuid4().hex}"
    tenant = f"MARKER-tenant-{uuid.uuid4().hex}"
    ids = make_case(conn)

    def echo(request: dict[str, Any]) -> dict[str, Any]:
        # What some providers do: the refusal quotes the request, credentials and all.
        return {
            "error": "unauthorized",
            "path": request["path"],
            "header": request["authorization"],
            "detail": f"Authorization: {request['authorization']} rejected",
        }

    with FakeVendor([(401, echo)]) as vendor:
        worker = start_worker(
            {
                "DRAGONFLY_ENRICH_VENDOR_URL": f"{vendor.url}/{tenant}",
                "DRAGONFLY_ENRICH_VENDOR_API_KEY": token,
                "DRAGONFLY_ENRICH_VENDOR_ATTEMPTS": "1",
            }
        )
        msg_id = _enqueue(conn, f"leak-{uuid.uuid4()}", {"case_id": str(ids["case_id"])})
        dead = wait_for(lambda: _dead_letter(conn, msg_id), what="the refused job's dead letter")
        worker.wait_for("job_dead_lettered")
        assert vendor.requests[0]["authorization"] == f"Bearer {token}"  # the echo carried it
    row = conn.execute(
        "select id, d::text from dragonfly.dead_letters d where queue = 'enrich' and msg_id = %s",
        (msg_id,),
    ).fetchone()
    assert row is not None
    dead_id, stored = row
    shown = run_cli("dlq", "show", str(dead_id), env={"DATABASE_URL": fresh_db_url})
    listed = run_cli("dlq", "list", env={"DATABASE_URL": fresh_db_url})

    assert dead[0] == "permanent", dead
    assert "401" in dead[1], dead
    assert shown.returncode == 0, shown.stderr
    assert "401" in shown.stdout
    log = worker.output()
    for text in (stored, log, shown.stdout + shown.stderr, listed.stdout + listed.stderr):
        assert token not in text
        assert tenant not in text
    # The library's own request line was logged, as JSON, with the host kept.
    requests = [e for e in worker.events() if e.get("logger") == "httpx"]
    assert requests
    assert all(f"{vendor.url}/***" in e["event"] for e in requests)


def test_the_fleet_role_commits_a_batch_that_enqueues_plan_jobs(
    conn: Conn, start_worker: Callable[..., WorkerProcess]
) -> None:
    # The documented deployment: the worker logs in as a member of dragonfly_worker, which
    # has no right on schema pgmq. Each tier change enqueues a plan job inside the batch.
    cases = [make_case(conn) for _ in range(3)]
    enforcement_ids = [open_enforcement_case(conn, ids) for ids in cases]
    for n, ids in enumerate(cases):
        _enqueue(conn, f"role-{n}", {"case_id": str(ids["case_id"]), "bundle": RICH_BUNDLE})
    worker = start_worker()
    logins = conn.execute(
        "select distinct usename from pg_stat_activity where datname = current_database()"
        " and pid <> pg_backend_pid()"
    ).fetchall()
    assert logins == [(WORKER_LOGIN,)]

    wait_for(
        lambda: conn.execute(
            "select count(*) = 3 from dragonfly.completed_jobs where kind = 'enrich'"
        ).fetchone()[0],  # type: ignore[index]
        what="the batch to commit",
    )
    assert worker.events("case_enriched", batch=True)
    assert not worker.events("batch_handler_failed")
    assert conn.execute("select count(*) from dragonfly.dead_letters").fetchone() == (0,)
    plans = conn.execute("select message -> 'payload' ->> 'case_id' from pgmq.q_enforce")
    assert sorted(row[0] for row in plans) == sorted(str(e) for e in enforcement_ids)
