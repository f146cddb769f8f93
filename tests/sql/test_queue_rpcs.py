"""queue_job() and the PGMQ wrappers (migration 20261127003000_queue_rpcs.sql).

Most tests run in the ``db`` fixture's rolled-back transaction; the concurrency and
rollback tests commit, so they use a database of their own (``fresh_db_url``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.security.support import VIEWER, become
from tests.sql.job_payloads import valid_jobs
from workers.job_kinds import KINDS

Conn = psycopg.Connection[Any]

WRAPPERS = (
    "public.pgmq_read(text, integer, integer)",
    "public.pgmq_delete(text, bigint)",
    "public.pgmq_archive(text, bigint)",
    "public.pgmq_set_vt(text, bigint, integer)",
    "public.pgmq_metrics(text)",
)


def queue_job(conn: Conn, payload: Any) -> int:
    row = conn.execute("select public.queue_job(%s)", (Jsonb(payload),)).fetchone()
    assert row is not None
    return int(row[0])


def queue_length(conn: Conn, queue: str) -> int:
    row = conn.execute(f"select count(*) from pgmq.q_{queue}").fetchone()
    assert row is not None
    return int(row[0])


def enqueued_count(conn: Conn) -> int:
    row = conn.execute("select count(*) from dragonfly.enqueued_jobs").fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def as_role(conn: Conn, role: str) -> Iterator[None]:
    """Run as a PostgREST role (with its JWT claims) inside the current transaction.

    On an exception the enclosing savepoint's rollback undoes the SET LOCAL.
    """
    conn.execute(f"set local role {role}")
    conn.execute("select set_config('request.jwt.claims', %s, true)", (f'{{"role": "{role}"}}',))
    yield
    conn.execute("reset role")


@pytest.fixture
def jobs(db: Conn) -> dict[str, dict[str, Any]]:
    """A valid payload per kind (queue_job checks each kind's shape at the door)."""
    return valid_jobs(db)


# --- queue_job: happy path and dedupe -------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_queue_job_sends_the_envelope_to_the_kinds_queue(
    db: Conn, jobs: dict[str, dict[str, Any]], kind: str
) -> None:
    msg_id = queue_job(
        db,
        {
            "kind": kind,
            "idempotency_key": f"k-{kind}",
            "payload": jobs[kind],
            "requested_by": "ops@example.com",
        },
    )
    row = db.execute(
        f"select message, vt <= clock_timestamp() from pgmq.q_{kind} where msg_id = %s", (msg_id,)
    )
    message, visible = row.fetchone() or (None, None)
    assert visible is True
    assert set(message) == {
        "kind",
        "idempotency_key",
        "payload",
        "requested_by",
        "provenance",
        "tenant",
        "enqueued_at",
    }
    assert message["kind"] == kind
    # The job's tenant is its row's (seeded in the default tenant).
    assert message["tenant"] == "00000000-0000-4000-8000-000000000001"
    assert message["idempotency_key"] == f"k-{kind}"
    assert message["payload"] == jobs[kind]
    assert message["requested_by"] == "ops@example.com"
    # The test's superuser is internal: it may name the person it acts for.
    assert message["provenance"] == {
        "level": "internal",
        "role": db.info.user,
        "sub": None,
        "email": None,
    }
    assert message["enqueued_at"].endswith("Z")
    record = db.execute(
        "select msg_id, enqueued_by from dragonfly.enqueued_jobs"
        " where kind = %s and idempotency_key = %s",
        (kind, f"k-{kind}"),
    ).fetchone()
    assert record == (msg_id, "ops@example.com")


def test_queue_job_defaults_payload_and_requested_by(db: Conn) -> None:
    # A kind registered without a payload shape takes a job with no payload at all.
    db.execute("select dragonfly.register_job_kind('shapeless', 'A kind without a shape.')")
    msg_id = queue_job(db, {"kind": "shapeless", "idempotency_key": "defaults"})
    row = db.execute("select message from pgmq.q_shapeless where msg_id = %s", (msg_id,)).fetchone()
    assert row is not None
    assert row[0]["payload"] == {}
    assert row[0]["requested_by"] is None


def test_same_kind_and_key_returns_the_first_message_and_sends_nothing(
    db: Conn, jobs: dict[str, dict[str, Any]]
) -> None:
    before = queue_length(db, "outreach")
    one = jobs["outreach"]
    other = {**one, "reason": "reactivation"}
    first = queue_job(db, {"kind": "outreach", "idempotency_key": "dup", "payload": one})
    again = queue_job(db, {"kind": "outreach", "idempotency_key": "dup", "payload": other})
    assert again == first
    assert queue_length(db, "outreach") == before + 1


def test_same_key_for_another_kind_is_another_job(
    db: Conn, jobs: dict[str, dict[str, Any]]
) -> None:
    a = queue_job(db, {"kind": "enrich", "idempotency_key": "shared", "payload": jobs["enrich"]})
    b = queue_job(db, {"kind": "enforce", "idempotency_key": "shared", "payload": jobs["enforce"]})
    assert queue_length(db, "enrich") >= 1
    assert queue_length(db, "enforce") >= 1
    assert db.execute(
        "select count(*) from dragonfly.enqueued_jobs where idempotency_key = 'shared'"
    ).fetchone() == (2,)
    assert a > 0
    assert b > 0


def test_delay_seconds_hides_the_message(db: Conn, jobs: dict[str, dict[str, Any]]) -> None:
    msg_id = queue_job(
        db,
        {
            "kind": "enforce",
            "idempotency_key": "later",
            "delay_seconds": 3600,
            "payload": jobs["enforce"],
        },
    )
    row = db.execute(
        "select vt - now() from pgmq.q_enforce where msg_id = %s", (msg_id,)
    ).fetchone()
    assert row is not None
    assert 3590 <= row[0].total_seconds() <= 3610
    read = db.execute("select msg_id from public.pgmq_read('enforce', 30, 10)").fetchall()
    assert (msg_id,) not in read


# --- queue_job: refusals ---------------------------------------------------------------

REFUSALS: list[tuple[Any, str]] = [
    (None, "payload must be a JSON object"),
    ([1, 2], "payload must be a JSON object"),
    ("enrich", "payload must be a JSON object"),
    ({}, "kind"),
    ({"idempotency_key": "k"}, "kind"),
    ({"kind": "mail", "idempotency_key": "k"}, "kind"),
    ({"kind": "ENRICH", "idempotency_key": "k"}, "kind"),
    ({"kind": 3, "idempotency_key": "k"}, "kind"),
    ({"kind": "enrich"}, "idempotency_key"),
    ({"kind": "enrich", "idempotency_key": ""}, "idempotency_key"),
    ({"kind": "enrich", "idempotency_key": "   "}, "idempotency_key"),
    ({"kind": "enrich", "idempotency_key": 42}, "idempotency_key"),
    ({"kind": "enrich", "idempotency_key": None}, "idempotency_key"),
    ({"kind": "enrich", "idempotency_key": "x" * 256}, "idempotency_key"),
    ({"kind": "enrich", "idempotency_key": "k", "payload": [1]}, "payload.payload"),
    ({"kind": "enrich", "idempotency_key": "k", "payload": "x"}, "payload.payload"),
    ({"kind": "enrich", "idempotency_key": "k", "delay_seconds": -1}, "delay_seconds"),
    ({"kind": "enrich", "idempotency_key": "k", "delay_seconds": 86401}, "delay_seconds"),
    ({"kind": "enrich", "idempotency_key": "k", "delay_seconds": 1.5}, "delay_seconds"),
    ({"kind": "enrich", "idempotency_key": "k", "delay_seconds": "10"}, "delay_seconds"),
    ({"kind": "enrich", "idempotency_key": "k", "requested_by": 7}, "requested_by"),
    ({"kind": "enrich", "idempotency_key": "k", "idempotencyKey": "x"}, "idempotencyKey"),
]


@pytest.mark.parametrize(("payload", "field"), REFUSALS)
def test_queue_job_refuses_invalid_input_before_writing(db: Conn, payload: Any, field: str) -> None:
    jobs_before = enqueued_count(db)
    queued_before = sum(queue_length(db, k) for k in KINDS)
    arg = None if payload is None else Jsonb(payload)
    with pytest.raises(errors.InvalidParameterValue) as info, db.transaction():
        db.execute("select public.queue_job(%s)", (arg,))
    assert info.value.sqlstate == "22023"
    assert field in str(info.value)
    assert enqueued_count(db) == jobs_before
    assert sum(queue_length(db, k) for k in KINDS) == queued_before


def test_delay_bounds_are_accepted(db: Conn, jobs: dict[str, dict[str, Any]]) -> None:
    job = jobs["enrich"]
    queue_job(db, {"kind": "enrich", "idempotency_key": "d0", "delay_seconds": 0, "payload": job})
    queue_job(
        db, {"kind": "enrich", "idempotency_key": "d1", "delay_seconds": 86400, "payload": job}
    )
    queue_job(
        db, {"kind": "enrich", "idempotency_key": "d2", "delay_seconds": None, "payload": job}
    )


# --- rights ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_postgrest_roles_may_enqueue(db: Conn, jobs: dict[str, dict[str, Any]], role: str) -> None:
    job = {"kind": "case_copilot", "idempotency_key": f"r-{role}", "payload": jobs["case_copilot"]}
    if role == "service_role":
        with as_role(db, role):
            msg_id = queue_job(db, job)
        assert msg_id > 0
        return
    # Granted, but anon and a signed-in user of no tenant reach no tenant's rows: the case is
    # answered as missing. A viewer of its tenant (a public caller too) gets its job in.
    refused = pytest.raises(errors.ForeignKeyViolation, match="no enforcement case")
    with refused, db.transaction(), as_role(db, role):
        queue_job(db, job)
    with db.transaction():
        become(db, VIEWER)
        assert queue_job(db, job) > 0
        db.execute("reset role")


def test_queue_job_grants_in_the_catalog(db: Conn) -> None:
    for role in (
        "anon",
        "authenticated",
        "service_role",
        "enforcement_operator",
        "dragonfly_worker",
    ):
        row = db.execute(
            "select has_function_privilege(%s, 'public.queue_job(jsonb)', 'execute')", (role,)
        ).fetchone()
        assert row == (True,), role
    acl = db.execute(
        "select proacl::text[] from pg_proc where oid = 'public.queue_job(jsonb)'::regprocedure"
    ).fetchone()
    assert acl is not None
    assert not any(entry.startswith("=") for entry in acl[0]), "PUBLIC must not have EXECUTE"


def test_every_queue_function_is_security_definer_with_empty_search_path(db: Conn) -> None:
    for signature in ("public.queue_job(jsonb)", *WRAPPERS):
        row = db.execute(
            "select prosecdef, proconfig from pg_proc where oid = %s::regprocedure",
            (signature,),
        ).fetchone()
        assert row == (True, ['search_path=""']), signature


@pytest.mark.parametrize("signature", WRAPPERS)
def test_wrappers_are_for_service_role_and_the_fleet_only(db: Conn, signature: str) -> None:
    expected = {
        "anon": False,
        "authenticated": False,
        "enforcement_operator": False,
        "service_role": True,
        "dragonfly_worker": True,
    }
    for role, allowed in expected.items():
        row = db.execute(
            "select has_function_privilege(%s, %s, 'execute')", (role, signature)
        ).fetchone()
        assert row == (allowed,), f"{role} on {signature}"


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_wrappers_refuse_postgrest_roles(db: Conn, role: str) -> None:
    calls = [
        "select * from public.pgmq_read('enrich', 30, 1)",
        "select public.pgmq_delete('enrich', 1)",
        "select public.pgmq_archive('enrich', 1)",
        "select public.pgmq_set_vt('enrich', 1, 0)",
        "select * from public.pgmq_metrics('enrich')",
    ]
    for call in calls:
        with pytest.raises(errors.InsufficientPrivilege), db.transaction(), as_role(db, role):
            db.execute(call)


def test_the_fleet_role_needs_no_rights_on_pgmq_itself(
    db: Conn, jobs: dict[str, dict[str, Any]]
) -> None:
    row = db.execute(
        "select has_schema_privilege('dragonfly_worker', 'pgmq', 'usage'),"
        " has_table_privilege('dragonfly_worker', 'pgmq.q_enrich', 'delete')"
    ).fetchone()
    assert row == (False, False)
    msg_id = queue_job(
        db, {"kind": "enrich", "idempotency_key": "fleet", "payload": jobs["enrich"]}
    )
    db.execute("set local role dragonfly_worker")
    read = db.execute("select msg_id, message from public.pgmq_read('enrich', 30, 100)").fetchall()
    assert msg_id in [r[0] for r in read]
    assert db.execute("select public.pgmq_delete('enrich', %s)", (msg_id,)).fetchone() == (True,)
    db.execute("reset role")


# --- wrappers ----------------------------------------------------------------------------


def test_read_hides_then_set_vt_reveals_then_delete_acknowledges(
    db: Conn, jobs: dict[str, dict[str, Any]]
) -> None:
    msg_id = queue_job(
        db, {"kind": "outreach", "idempotency_key": "cycle", "payload": jobs["outreach"]}
    )
    first = db.execute(
        "select msg_id, read_ct, message from public.pgmq_read('outreach', 60, 10)"
    ).fetchall()
    assert msg_id in [r[0] for r in first]
    hidden = db.execute("select msg_id from public.pgmq_read('outreach', 60, 10)").fetchall()
    assert (msg_id,) not in hidden
    assert db.execute("select public.pgmq_set_vt('outreach', %s, 0)", (msg_id,)).fetchone() == (
        True,
    )
    again = db.execute(
        "select msg_id, read_ct from public.pgmq_read('outreach', 60, 10)"
    ).fetchall()
    assert (msg_id, 2) in again
    assert db.execute("select public.pgmq_delete('outreach', %s)", (msg_id,)).fetchone() == (True,)
    assert db.execute("select public.pgmq_delete('outreach', %s)", (msg_id,)).fetchone() == (False,)
    assert db.execute("select public.pgmq_set_vt('outreach', %s, 0)", (msg_id,)).fetchone() == (
        False,
    )


def test_archive_moves_the_message(db: Conn, jobs: dict[str, dict[str, Any]]) -> None:
    msg_id = queue_job(
        db, {"kind": "enforce", "idempotency_key": "arch", "payload": jobs["enforce"]}
    )
    assert db.execute("select public.pgmq_archive('enforce', %s)", (msg_id,)).fetchone() == (True,)
    assert db.execute(
        "select count(*) from pgmq.a_enforce where msg_id = %s", (msg_id,)
    ).fetchone() == (1,)
    assert db.execute(
        "select count(*) from pgmq.q_enforce where msg_id = %s", (msg_id,)
    ).fetchone() == (0,)
    assert db.execute("select public.pgmq_archive('enforce', %s)", (msg_id,)).fetchone() == (False,)


def test_metrics_for_one_queue_and_for_all(db: Conn, jobs: dict[str, dict[str, Any]]) -> None:
    queue_job(
        db, {"kind": "case_copilot", "idempotency_key": "m1", "payload": jobs["case_copilot"]}
    )
    one = db.execute(
        "select queue, queue_length from public.pgmq_metrics('case_copilot')"
    ).fetchall()
    assert len(one) == 1
    assert one[0][0] == "case_copilot"
    assert one[0][1] >= 1
    every = db.execute("select queue from public.pgmq_metrics()").fetchall()
    assert sorted(r[0] for r in every) == sorted(KINDS)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ("select * from public.pgmq_read('jobs', 30, 1)", "queue_name"),
        ("select * from public.pgmq_read(null, 30, 1)", "queue_name"),
        ("select * from public.pgmq_read('enrich', -1, 1)", "sleep_seconds"),
        ("select * from public.pgmq_read('enrich', 30, 0)", "n"),
        ("select * from public.pgmq_read('enrich', 30, 1001)", "n"),
        ("select public.pgmq_delete('q_enrich', 1)", "queue_name"),
        ("select public.pgmq_delete('enrich', null)", "msg_id"),
        ("select public.pgmq_archive('Enrich', 1)", "queue_name"),
        ("select public.pgmq_archive('enrich', null)", "msg_id"),
        ("select public.pgmq_set_vt('x', 1, 0)", "queue_name"),
        ("select public.pgmq_set_vt('enrich', 1, -5)", "vt_offset"),
        ("select public.pgmq_set_vt('enrich', null, 5)", "msg_id"),
        ("select * from public.pgmq_metrics('nope')", "queue_name"),
    ],
)
def test_wrappers_refuse_bad_arguments(db: Conn, call: str, field: str) -> None:
    with pytest.raises(errors.InvalidParameterValue) as info, db.transaction():
        db.execute(call)
    assert field in str(info.value)


# --- commits, rollbacks, concurrency (own database) ----------------------------------------


def test_a_rolled_back_enqueue_leaves_nothing(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        job = {"kind": "enrich", "idempotency_key": "rb", "payload": valid_jobs(conn)["enrich"]}
        conn.commit()
        queue_job(conn, job)
        conn.rollback()
        assert enqueued_count(conn) == 0
        assert queue_length(conn, "enrich") == 0
        msg_id = queue_job(conn, job)
        conn.commit()
        assert queue_length(conn, "enrich") == 1
        assert conn.execute(
            "select msg_id from dragonfly.enqueued_jobs where idempotency_key = 'rb'"
        ).fetchone() == (msg_id,)


def _wait_until_blocked(observer: Conn, pid: int, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        row = observer.execute(
            "select wait_event_type from pg_stat_activity where pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on a lock")


def test_a_waiter_enqueues_its_own_job_when_the_first_enqueue_rolls_back(
    fresh_db_url: str,
) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as seeder:
        payload = {
            "kind": "enforce",
            "idempotency_key": "race",
            "payload": valid_jobs(seeder)["enforce"],
        }
    with (
        psycopg.connect(fresh_db_url) as holder,
        psycopg.connect(fresh_db_url) as waiter,
        psycopg.connect(fresh_db_url, autocommit=True) as observer,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        queue_job(holder, payload)

        def run() -> int:
            msg_id = queue_job(waiter, payload)
            waiter.commit()
            return msg_id

        future = pool.submit(run)
        _wait_until_blocked(observer, waiter.info.backend_pid)
        holder.rollback()
        msg_id = future.result(timeout=30)
        rows = observer.execute("select msg_id from pgmq.q_enforce").fetchall()
        assert rows == [(msg_id,)]


def test_concurrent_calls_with_one_key_send_one_message(fresh_db_url: str) -> None:
    """100 calls from 20 connections, released together: one message, one id for all."""
    connections, calls_each = 20, 5
    with psycopg.connect(fresh_db_url, autocommit=True) as seeder:
        job = valid_jobs(seeder)["enrich"]
    payload = {"kind": "enrich", "idempotency_key": "same-key", "payload": job}
    barrier = threading.Barrier(connections)

    def worker() -> list[int]:
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            barrier.wait(timeout=30)
            return [queue_job(conn, payload) for _ in range(calls_each)]

    with ThreadPoolExecutor(max_workers=connections) as pool:
        futures = [pool.submit(worker) for _ in range(connections)]
        results = [msg_id for f in futures for msg_id in f.result(timeout=60)]
    assert len(results) == connections * calls_each
    assert len(set(results)) == 1
    with psycopg.connect(fresh_db_url) as conn:
        assert queue_length(conn, "enrich") == 1
        assert enqueued_count(conn) == 1
        assert conn.execute("select msg_id from pgmq.q_enrich").fetchone() == (results[0],)
