"""request_case_copilot as the console's public callers make it: a brief reads the case, so
the caller must reach the case's tenant; a viewer (signed in, trust level public) gets one
pending brief per case, however many requests (one after another or all at once), and the
session — not the argument — is ``requested_by``. anon and signed-in non-members reach no
case: the answer of a missing one. Operators' and the fleet's requests work as before.

These tests commit (each request is its own transaction, as over HTTP), so each uses a
database of its own."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from tests.security.support import (
    PUBLIC_ROLES,
    TENANT_A,
    become,
    identity_of,
    make_tenants,
    new_uuid,
    postgrest_rpc,
    refusal,
    request_brief,
    without_ids,
)
from tests.sql.enforcement_seed import one, seed

Conn = psycopg.Connection[Any]


def queued(url: str, case_id: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select msg_id from pgmq.q_case_copilot where message->'payload'->>'case_id' = %s"
            " order by msg_id",
            (case_id,),
        ).fetchall()
    return [int(r[0]) for r in rows]


@pytest.fixture
def case_id(fresh_db_url: str) -> str:
    """An open case of tenant A, committed with the tenants and their members."""
    with psycopg.connect(fresh_db_url) as conn:
        make_tenants(conn)
        seeded = seed(conn, tenant=TENANT_A)
        conn.commit()
    assert seeded.case_id is not None
    return seeded.case_id


def test_viewer_requests_one_after_another_share_the_pending_brief(
    fresh_db_url: str, case_id: str
) -> None:
    ids = {request_brief(fresh_db_url, "viewer_a", case_id) for _ in range(20)}
    assert len(ids) == 1
    assert queued(fresh_db_url, case_id) == sorted(ids)


@pytest.mark.parametrize("role", [*PUBLIC_ROLES, "operator_b"])
def test_callers_outside_the_tenant_get_the_missing_case_answer_and_queue_nothing(
    fresh_db_url: str, case_id: str, role: str
) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        missing = refusal(
            conn,
            lambda: (
                become(conn, role),
                postgrest_rpc(conn, "request_case_copilot", {"case_id": new_uuid()}),
            ),
        )
        error = refusal(
            conn,
            lambda: (
                become(conn, role),
                postgrest_rpc(conn, "request_case_copilot", {"case_id": case_id}),
            ),
        )
    assert (error.sqlstate, without_ids(str(error.diag.message_primary))) == (
        missing.sqlstate,
        without_ids(str(missing.diag.message_primary)),
    )
    assert (error.sqlstate, without_ids(str(error.diag.message_primary))) == (
        "P0002",
        "request_case_copilot: enforcement case <id> does not exist",
    )
    assert queued(fresh_db_url, case_id) == []


def test_viewer_requests_all_at_once_share_the_pending_brief(
    fresh_db_url: str, case_id: str
) -> None:
    callers = 8
    barrier = threading.Barrier(callers)

    def call(i: int) -> int:
        barrier.wait(timeout=30)
        return request_brief(fresh_db_url, "viewer_a", case_id)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        ids = set(pool.map(call, range(callers)))
    assert len(ids) == 1
    assert len(queued(fresh_db_url, case_id)) == 1


def test_a_new_brief_may_be_requested_once_the_pending_one_is_done(
    fresh_db_url: str, case_id: str
) -> None:
    first = request_brief(fresh_db_url, "viewer_a", case_id)
    with psycopg.connect(fresh_db_url) as conn:
        # What the worker does once the brief is stored.
        conn.execute("select pgmq.delete('case_copilot', %s::bigint)", (first,))
        conn.commit()
    second = request_brief(fresh_db_url, "viewer_a", case_id)
    assert second != first
    assert queued(fresh_db_url, case_id) == [second]


def test_a_pending_brief_of_another_case_does_not_count(fresh_db_url: str, case_id: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        other = seed(conn, tenant=TENANT_A).case_id
        conn.commit()
    assert other is not None
    assert request_brief(fresh_db_url, "viewer_a", case_id) != request_brief(
        fresh_db_url, "viewer_a", other
    )


@pytest.mark.parametrize(
    "role", ["operator_a", "admin_a", "enforcement_operator", "service_role", "dragonfly_worker"]
)
def test_operators_and_the_fleet_get_a_job_per_request(
    fresh_db_url: str, case_id: str, role: str
) -> None:
    ids = [request_brief(fresh_db_url, role, case_id) for _ in range(2)]
    assert len(set(ids)) == 2
    assert queued(fresh_db_url, case_id) == ids


@pytest.mark.parametrize(
    ("role", "recorded"),
    [
        ("viewer_a", "viewer.a@example.test (on behalf of dragonfly:scheduler)"),
        ("operator_a", "operator.a@example.test (on behalf of dragonfly:scheduler)"),
        ("enforcement_operator", "ops@example.test (on behalf of dragonfly:scheduler)"),
        ("service_role", "dragonfly:scheduler"),
    ],
)
def test_requested_by_is_the_session_unless_the_caller_is_internal(
    fresh_db_url: str, case_id: str, role: str, recorded: str
) -> None:
    msg_id = request_brief(fresh_db_url, role, case_id, "dragonfly:scheduler")
    with psycopg.connect(fresh_db_url) as conn:
        message = one(conn, "select message from pgmq.q_case_copilot where msg_id = %s", (msg_id,))
    assert message["requested_by"] == message["payload"]["requested_by"] == recorded


@pytest.mark.parametrize(
    ("role", "level", "pg_role"),
    [
        ("viewer_a", "public", "authenticated"),
        ("operator_a", "operator", "authenticated"),
        ("enforcement_operator", "operator", "enforcement_operator"),
    ],
)
def test_the_envelope_names_the_fields_the_rpc_derived_itself(
    fresh_db_url: str, case_id: str, role: str, level: str, pg_role: str
) -> None:
    # The worker's policy re-check holds the caller's level to case_id alone, and lets
    # through what the provenance says the RPC formed (docs/worker-runtime.md).
    msg_id = request_brief(fresh_db_url, role, case_id, "someone")
    with psycopg.connect(fresh_db_url) as conn:
        message = one(conn, "select message from pgmq.q_case_copilot where msg_id = %s", (msg_id,))
    assert message["provenance"]["level"] == level
    assert message["provenance"]["role"] == pg_role
    assert message["provenance"]["derived"] == ["case_number", "requested_by", "requested_at"]
    assert set(message["payload"]) == {"case_id", "case_number", "requested_by", "requested_at"}


@pytest.mark.parametrize("role", ["viewer_a", "operator_a"])
def test_no_name_records_the_session(fresh_db_url: str, case_id: str, role: str) -> None:
    msg_id = request_brief(fresh_db_url, role, case_id)
    with psycopg.connect(fresh_db_url) as conn:
        message = one(conn, "select message from pgmq.q_case_copilot where msg_id = %s", (msg_id,))
    assert message["payload"]["requested_by"] == identity_of(role)


@pytest.mark.parametrize(
    ("case_id", "sqlstate", "text"),
    [
        ("not-a-case", "22023", "request_case_copilot: case_id must be a uuid"),
        ("C" * 1_000_000, "22023", "request_case_copilot: case_id must be a uuid"),
        ("6f1d7c4e-0000-4000-8000-00000000dead", "P0002", "does not exist"),
    ],
)
def test_bad_case_ids_are_refused_with_a_short_message_and_nothing_queued(
    db: Conn, case_id: str, sqlstate: str, text: str
) -> None:
    before = one(db, "select count(*) from pgmq.q_case_copilot")
    error = refusal(
        db,
        lambda: (
            become(db, "anon"),
            postgrest_rpc(db, "request_case_copilot", {"case_id": case_id}),
        ),
    )
    message = str(error.diag.message_primary)
    assert (error.sqlstate, text in message) == (sqlstate, True)
    assert len(message) < 250
    assert one(db, "select count(*) from pgmq.q_case_copilot") == before
