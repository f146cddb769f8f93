"""Case Copilot: the context read, the rules backend, the LLM backend on a loopback
OpenAI-compatible server, and who may read v_case_copilot_latest."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.kinds.enforce_copilot_support import (
    GOOD_BRIEF,
    FakeLLM,
    add_asset,
    call_rpc,
    completion,
)
from tests.kinds.enrich_outreach_support import make_case, open_enforcement_case
from workers.case_copilot.backends import (
    PROMPT_VERSION,
    CopilotBackendError,
    OpenAICompatibleBackend,
    RulesBackend,
    backend_from_settings,
)
from workers.case_copilot.models import Brief, CaseContext
from workers.case_copilot.rules import VERSION as RULES_VERSION
from workers.case_copilot.rules import rules_brief
from workers.enforce.planner import PlanInput, plan
from workers.settings import Settings

Conn = psycopg.Connection[Any]


def _context(db: Conn, case_id: uuid.UUID) -> CaseContext:
    row = db.execute("select dragonfly.case_copilot_context(%s)", (case_id,)).fetchone()
    assert row is not None
    return CaseContext.model_validate(row[0])


@pytest.fixture
def case(db: Conn) -> dict[str, uuid.UUID]:
    ids = make_case(db, balance=8_000)
    ids["enforcement_case_id"] = open_enforcement_case(db, ids)
    return ids


def test_context_reads_everything_a_brief_needs(db: Conn, case: dict[str, uuid.UUID]) -> None:
    ec = case["enforcement_case_id"]
    add_asset(db, case["case_id"], "bank", "Chase")
    call_rpc(
        db,
        "queue_enforcement_action",
        {"case_id": str(ec), "action_type": "bank_levy", "actor": "test"},
    )
    call_rpc(
        db,
        "record_enforcement_payment",
        {"case_id": str(ec), "amount": "250.00", "source": "debtor", "actor": "test"},
    )
    ctx = _context(db, ec)
    assert ctx.case.id == ec
    assert ctx.case.stage == "pre_enforcement"
    assert ctx.case.current_balance == Decimal("7750.00")
    assert ctx.judgment.case_number
    assert ctx.judgment.debtor_name.startswith("Debtor")
    assert ctx.plaintiff.has_email
    assert ctx.plaintiff.has_phone
    assert ctx.scores is not None
    assert [a.action_type for a in ctx.open_actions] == ["bank_levy"]
    assert [p.amount for p in ctx.payments] == [Decimal("250.00")]
    assert {e.kind for e in ctx.timeline} >= {"event:payment_received", "action:bank_levy"}
    assert ctx.plan_input.hints == frozenset({"bank"})
    assert ctx.plan_input.open_actions == frozenset({"bank_levy"})


def test_context_carries_no_contact_details(db: Conn, case: dict[str, uuid.UUID]) -> None:
    row = db.execute(
        "select dragonfly.case_copilot_context(%s)::text", (case["enforcement_case_id"],)
    ).fetchone()
    assert row is not None
    assert "creditor@example.test" not in row[0]
    assert "5550100" not in row[0]


def test_context_of_a_missing_case_is_p0002(db: Conn) -> None:
    with pytest.raises(psycopg.errors.NoDataFound), db.transaction():
        _context(db, uuid.uuid4())


# --- the rules backend ---------------------------------------------------------------------


def test_rules_brief_follows_the_planner(db: Conn, case: dict[str, uuid.UUID]) -> None:
    add_asset(db, case["case_id"], "employer", "Globex")
    ctx = _context(db, case["enforcement_case_id"])
    brief = rules_brief(ctx)
    assert brief == rules_brief(ctx)  # deterministic
    first = brief.recommended_actions[0]
    assert first.action == "wage_garnishment"
    assert first.priority == 1
    assert plan(ctx.plan_input).rule in first.reason
    assert brief.inputs_used == ctx.inputs_used()
    assert "Globex" not in brief.summary  # the brief names asset kinds, not institutions
    assert "employer" in brief.summary


def test_rules_risk_flags(db: Conn, case: dict[str, uuid.UUID]) -> None:
    ec = case["enforcement_case_id"]
    db.execute(
        "update public.plaintiffs set status = 'do_not_call' where id = %s", (case["plaintiff_id"],)
    )
    db.execute(
        "update public.enforcement_cases set next_action_at = now() - interval '2 days',"
        " stage_entered_at = now() - interval '40 days', tier = 'tier3' where id = %s",
        (ec,),
    )
    codes = {f.code: f.severity for f in rules_brief(_context(db, ec)).risk_flags}
    assert codes["plaintiff_unreachable"] == "high"
    assert codes["stage_over_sla"] == "medium"
    assert codes["next_action_overdue"] == "medium"
    assert codes["no_assets_known"] == "medium"
    assert codes["low_collectability"] == "medium"
    assert "small_balance" not in codes


def test_rules_backend_result_is_labelled(db: Conn, case: dict[str, uuid.UUID]) -> None:
    result = RulesBackend().brief(_context(db, case["enforcement_case_id"]))
    assert (result.backend, result.model, result.version) == ("rules", None, RULES_VERSION)
    assert result.latency_ms >= 0


# --- the LLM backend on a loopback server ---------------------------------------------------


def _llm(fake: FakeLLM, **kw: Any) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(
        base_url=fake.base_url,
        model="fake-model-1",
        api_key="sk-test",
        timeout=kw.pop("timeout", 5.0),
        retry_wait_max=0.05,
        **kw,
    )


def test_llm_backend_returns_the_validated_brief(db: Conn, case: dict[str, uuid.UUID]) -> None:
    ctx = _context(db, case["enforcement_case_id"])
    with FakeLLM() as fake:
        result = _llm(fake).brief(ctx)
    assert result.backend == "openai_compatible"
    assert (result.model, result.version) == ("fake-model-1", PROMPT_VERSION)
    assert result.brief.summary == GOOD_BRIEF["summary"]
    assert result.brief.recommended_actions[0].action == "bank_levy"
    assert result.brief.inputs_used == ctx.inputs_used()  # from what we sent, not the model
    [request] = fake.requests
    assert request["authorization"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "fake-model-1"
    assert body["response_format"] == {"type": "json_object"}
    assert body["messages"][0]["role"] == "system"
    sent = CaseContext.model_validate_json(body["messages"][1]["content"])
    assert sent.case.id == case["enforcement_case_id"]


def test_llm_backend_retries_503_then_succeeds(db: Conn, case: dict[str, uuid.UUID]) -> None:
    ctx = _context(db, case["enforcement_case_id"])
    with FakeLLM([(503, {"error": "busy"}), (429, {"error": "slow down"})]) as fake:
        result = _llm(fake).brief(ctx)
    assert len(fake.requests) == 3
    assert result.brief.summary == GOOD_BRIEF["summary"]


def test_llm_backend_gives_up_after_max_attempts(db: Conn, case: dict[str, uuid.UUID]) -> None:
    ctx = _context(db, case["enforcement_case_id"])
    with (
        FakeLLM([(500, {})] * 5) as fake,
        pytest.raises(CopilotBackendError, match="HTTP 500") as info,
    ):
        _llm(fake, max_attempts=2).brief(ctx)
    assert info.value.transient
    assert len(fake.requests) == 2


def test_llm_backend_refused_request_is_permanent(db: Conn, case: dict[str, uuid.UUID]) -> None:
    ctx = _context(db, case["enforcement_case_id"])
    with (
        FakeLLM([(401, {"error": {"message": "bad key"}})]) as fake,
        pytest.raises(CopilotBackendError, match="HTTP 401") as info,
    ):
        _llm(fake).brief(ctx)
    assert not info.value.transient
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "content",
    [
        "not json at all",
        {"summary": "no actions"},
        {**GOOD_BRIEF, "risk_flags": [{"code": "x", "severity": "apocalyptic", "detail": "d"}]},
    ],
    ids=["not-json", "missing-field", "bad-severity"],
)
def test_llm_output_that_is_not_a_brief_is_transient(
    db: Conn, case: dict[str, uuid.UUID], content: Any
) -> None:
    ctx = _context(db, case["enforcement_case_id"])
    with (
        FakeLLM([(200, completion(content))]) as fake,
        pytest.raises(CopilotBackendError, match="not a valid brief") as info,
    ):
        _llm(fake).brief(ctx)
    assert info.value.transient


def test_llm_output_in_a_code_fence_is_accepted(db: Conn, case: dict[str, uuid.UUID]) -> None:
    ctx = _context(db, case["enforcement_case_id"])
    fenced = "```json\n" + json.dumps(GOOD_BRIEF) + "\n```"
    with FakeLLM([(200, completion(fenced))]) as fake:
        assert _llm(fake).brief(ctx).brief.summary == GOOD_BRIEF["summary"]


def test_llm_timeout_is_transient(db: Conn, case: dict[str, uuid.UUID]) -> None:
    ctx = _context(db, case["enforcement_case_id"])

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    backend = OpenAICompatibleBackend(
        base_url="http://127.0.0.1:9/v1",
        model="m",
        transport=httpx.MockTransport(slow),
        max_attempts=2,
        retry_wait_max=0.01,
    )
    with pytest.raises(CopilotBackendError, match="timed out") as info:
        backend.brief(ctx)
    assert info.value.transient


def test_backend_from_settings() -> None:
    assert isinstance(backend_from_settings(Settings()), RulesBackend)
    llm = backend_from_settings(
        Settings(copilot_llm_base_url="http://127.0.0.1:1/v1/", copilot_llm_model="m2")
    )
    assert isinstance(llm, OpenAICompatibleBackend)
    assert (llm.base_url, llm.model) == ("http://127.0.0.1:1/v1", "m2")
    llm.close()


def test_llm_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        Settings(copilot_llm_base_url="ftp://example.test")


# --- the output table and v_case_copilot_latest -----------------------------------------------


def _store(db: Conn, case_id: uuid.UUID, summary: str, at: datetime, key: str) -> None:
    brief = Brief.model_validate(
        {**GOOD_BRIEF, "summary": summary, "inputs_used": ["case"]}
    ).model_dump(mode="json")
    db.execute(
        "insert into public.case_copilot_outputs (enforcement_case_id, backend, model, version,"
        " latency_ms, brief, idempotency_key, created_at)"
        " values (%s, 'rules', null, 'v', 1, %s, %s, %s)",
        (case_id, Jsonb(brief), key, at),
    )


def test_latest_view_returns_the_newest_brief_per_case(
    db: Conn, case: dict[str, uuid.UUID]
) -> None:
    ec = case["enforcement_case_id"]
    now = datetime.now(UTC)
    _store(db, ec, "old", now - timedelta(hours=1), "k1")
    _store(db, ec, "new", now, "k2")
    db.execute("set local role service_role")
    rows = db.execute(
        "select summary, case_number from public.v_case_copilot_latest where case_id = %s", (ec,)
    ).fetchall()
    assert len(rows) == 1
    assert rows[0][0] == "new"
    assert rows[0][1]


@pytest.mark.parametrize(
    "role", ["anon", "authenticated", "enforcement_operator", "dragonfly_worker"]
)
def test_only_service_role_reads_the_latest_view(db: Conn, role: str) -> None:
    db.execute(f"set local role {role}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
        db.execute("select * from public.v_case_copilot_latest").fetchall()


@pytest.mark.parametrize("role", ["anon", "authenticated", "enforcement_operator"])
def test_api_roles_cannot_touch_the_output_table(db: Conn, role: str) -> None:
    db.execute(f"set local role {role}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
        db.execute("select * from public.case_copilot_outputs").fetchall()


def test_the_fleet_may_insert_briefs(db: Conn, case: dict[str, uuid.UUID]) -> None:
    db.execute("set local role dragonfly_worker")
    _store(db, case["enforcement_case_id"], "from the fleet", datetime.now(UTC), "k-fleet")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
        db.execute("update public.case_copilot_outputs set latency_ms = 0")


def test_a_malformed_brief_is_refused(db: Conn, case: dict[str, uuid.UUID]) -> None:
    with pytest.raises(psycopg.errors.CheckViolation), db.transaction():
        db.execute(
            "insert into public.case_copilot_outputs (enforcement_case_id, backend, version,"
            " latency_ms, brief) values (%s, 'rules', 'v', 1, '{\"summary\": 1}')",
            (case["enforcement_case_id"],),
        )


def test_plan_input_model_accepts_the_context_plan_input(
    db: Conn, case: dict[str, uuid.UUID]
) -> None:
    assert isinstance(_context(db, case["enforcement_case_id"]).plan_input, PlanInput)
