"""case_copilot end to end: request_case_copilot -> a real `dragonfly worker case_copilot`
process (rules backend, then a loopback OpenAI-compatible server) -> a stored brief; a
redelivery writes no second brief; bad payloads and refused LLM calls are dead-lettered."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.kinds.enforce_copilot_support import (
    GOOD_BRIEF,
    FakeLLM,
    add_asset,
    call_rpc,
    completed,
    dead_letter,
    queue_empty,
    resend,
    worker_process,
)
from tests.kinds.enrich_outreach_support import make_case, open_enforcement_case, wait_for
from tests.kinds.unchecked import send_unchecked
from tests.sql.enforcement_seed import act_as
from workers.case_copilot.backends import PROMPT_VERSION
from workers.case_copilot.models import Brief
from workers.case_copilot.rules import VERSION as RULES_VERSION

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def case_id(conn: Conn) -> uuid.UUID:
    ids = make_case(conn)
    ec = open_enforcement_case(conn, ids)
    add_asset(conn, ids["case_id"], "bank", "Chase")
    return ec


def _request(conn: Conn, case_id: uuid.UUID) -> tuple[int, str]:
    row = conn.execute(
        "select public.request_case_copilot(%s::text, 'ops@example.test')", (case_id,)
    ).fetchone()
    assert row is not None
    msg_id = int(row[0])
    key = conn.execute(
        "select idempotency_key from dragonfly.enqueued_jobs where kind = 'case_copilot'"
        " and msg_id = %s",
        (msg_id,),
    ).fetchone()
    assert key is not None
    return msg_id, str(key[0])


def _outputs(conn: Conn, case_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return list(
        conn.execute(
            "select backend, model, version, latency_ms, brief, requested_by"
            " from public.case_copilot_outputs where enforcement_case_id = %s order by created_at",
            (case_id,),
        ).fetchall()
    )


def test_rules_backend_brief_is_stored_once(
    fresh_db_url: str, conn: Conn, case_id: uuid.UUID
) -> None:
    with worker_process("case_copilot", fresh_db_url):
        _msg_id, key = _request(conn, case_id)
        wait_for(lambda: completed(conn, "case_copilot", key), what="the brief")
        [(backend, model, version, latency, brief, requested_by)] = _outputs(conn, case_id)
        assert (backend, model, version) == ("rules", None, RULES_VERSION)
        assert latency >= 0
        assert requested_by == "ops@example.test"
        parsed = Brief.model_validate(brief)
        assert parsed.recommended_actions[0].action == "bank_levy"
        assert "bank" in parsed.summary

        # the same job delivered again (a crash after commit, a replayed message)
        resend(
            conn,
            "case_copilot",
            {"kind": "case_copilot", "idempotency_key": key, "payload": {"case_id": str(case_id)}},
        )
        wait_for(lambda: queue_empty(conn, "case_copilot"), what="the redelivery")
    assert len(_outputs(conn, case_id)) == 1

    conn.execute("set role service_role")
    latest = conn.execute(
        "select backend, summary from public.v_case_copilot_latest where case_id = %s", (case_id,)
    ).fetchone()
    conn.execute("reset role")
    assert latest is not None
    assert latest[0] == "rules"


def test_llm_backend_against_a_loopback_server(
    fresh_db_url: str, conn: Conn, case_id: uuid.UUID
) -> None:
    # one 503 first: the adapter retries it inside the same attempt
    with (
        FakeLLM([(503, {"error": "warming up"})]) as fake,
        worker_process(
            "case_copilot",
            fresh_db_url,
            {
                "DRAGONFLY_COPILOT_LLM_BASE_URL": fake.base_url,
                "DRAGONFLY_COPILOT_LLM_MODEL": "fake-model-1",
                "DRAGONFLY_COPILOT_LLM_API_KEY": "sk-loopback",
                "DRAGONFLY_COPILOT_LLM_TIMEOUT": "5",
            },
        ),
    ):
        _msg_id, key = _request(conn, case_id)
        wait_for(lambda: completed(conn, "case_copilot", key), what="the LLM brief")
    [(backend, model, version, _latency, brief, _by)] = _outputs(conn, case_id)
    assert (backend, model, version) == ("openai_compatible", "fake-model-1", PROMPT_VERSION)
    assert brief["summary"] == GOOD_BRIEF["summary"]
    assert brief["inputs_used"][:3] == ["case", "judgment", "plaintiff"]
    assert len(fake.requests) == 2
    assert fake.requests[-1]["authorization"] == "Bearer sk-loopback"


def test_a_refused_llm_call_is_dead_lettered(
    fresh_db_url: str, conn: Conn, case_id: uuid.UUID
) -> None:
    with (
        FakeLLM() as fake,
        worker_process(
            "case_copilot",
            fresh_db_url,
            {"DRAGONFLY_COPILOT_LLM_BASE_URL": fake.base_url, "DRAGONFLY_COPILOT_LLM_TIMEOUT": "5"},
        ),
    ):
        fake.default = (401, {"error": {"message": "invalid api key"}})
        msg_id, _key = _request(conn, case_id)
        reason, error = wait_for(
            lambda: dead_letter(conn, "case_copilot", msg_id), what="the dead letter"
        )
    assert reason == "permanent"
    assert "HTTP 401" in error
    assert _outputs(conn, case_id) == []


def test_an_llm_echoing_the_api_key_leaks_it_nowhere(
    fresh_db_url: str, conn: Conn, case_id: uuid.UUID
) -> None:
    api_key = f"sk-MARKER-{uuid.uuid4().hex}"
    log: list[str] = []
    with (
        FakeLLM() as fake,
        worker_process(
            "case_copilot",
            fresh_db_url,
            {
                "DRAGONFLY_COPILOT_LLM_BASE_URL": fake.base_url,
                "DRAGONFLY_COPILOT_LLM_API_KEY": api_key,
                "DRAGONFLY_COPILOT_LLM_TIMEOUT": "5",
            },
            stderr=log,
        ),
    ):
        fake.default = (
            401,
            lambda request: {"error": {"message": f"bad key in {request['authorization']}"}},
        )
        msg_id, _key = _request(conn, case_id)
        wait_for(lambda: dead_letter(conn, "case_copilot", msg_id), what="the dead letter")
    assert fake.requests[0]["authorization"] == f"Bearer {api_key}"
    row = conn.execute(
        "select d::text from dragonfly.dead_letters d where msg_id = %s and queue = 'case_copilot'",
        (msg_id,),
    ).fetchone()
    assert row is not None
    assert "HTTP 401" in row[0]
    assert api_key not in row[0]
    assert "job_dead_lettered" in log[0]
    assert api_key not in log[0]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [({"case_id": "nope"}, "case_id"), ({"case_number": "CV-1"}, "case_id")],
    ids=["bad-uuid", "missing"],
)
def test_a_bad_payload_is_dead_lettered(
    fresh_db_url: str, conn: Conn, payload: dict[str, Any], expected: str
) -> None:
    with worker_process("case_copilot", fresh_db_url):
        msg_id = send_unchecked(conn, "case_copilot", f"bad-{uuid.uuid4()}", payload)
        reason, error = wait_for(
            lambda: dead_letter(conn, "case_copilot", msg_id), what="the dead letter"
        )
    assert reason == "malformed"
    assert expected in error


def test_a_slow_llm_does_not_hold_up_an_operator_on_the_same_case(
    fresh_db_url: str, conn: Conn, case_id: uuid.UUID
) -> None:
    with (
        FakeLLM() as fake,
        worker_process(
            "case_copilot",
            fresh_db_url,
            {
                "DRAGONFLY_COPILOT_LLM_BASE_URL": fake.base_url,
                "DRAGONFLY_COPILOT_LLM_TIMEOUT": "40",
                "DRAGONFLY_COPILOT_LLM_MAX_ATTEMPTS": "1",
            },
        ),
    ):
        fake.delay = 20.0
        _msg_id, key = _request(conn, case_id)
        assert fake.entered.wait(20), "the LLM was never asked"
        # While the model thinks, the worker holds no transaction (so no snapshot, no lock)...
        busy = conn.execute(
            "select count(*) from pg_stat_activity"
            " where application_name = 'dragonfly-worker:case_copilot' and xact_start is not null"
            " and datname = current_database()"
        ).fetchone()
        assert busy == (0,)
        # ...and an operator moves the same case at once: lock_timeout 1 s would refuse it
        # (55P03) if the case row were locked behind the call.
        with psycopg.connect(fresh_db_url) as operator, operator.transaction():
            operator.execute("set local lock_timeout = '1s'")
            act_as(operator, "enforcement_operator")
            call_rpc(
                operator,
                "set_enforcement_stage",
                {"case_id": str(case_id), "stage": "wage_garnishment", "note": "while briefing"},
            )
        assert not completed(conn, "case_copilot", key)  # the brief was still being written
        wait_for(lambda: completed(conn, "case_copilot", key), timeout=60, what="the LLM brief")
    stage = conn.execute(
        "select current_stage from public.enforcement_cases where id = %s", (case_id,)
    ).fetchone()
    assert stage == ("wage_garnishment",)
    [(backend, *_rest)] = _outputs(conn, case_id)
    assert backend == "openai_compatible"
