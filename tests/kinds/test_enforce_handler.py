"""The enforce handler run directly in a rolled-back transaction: each step's RPC effects,
next_action_at, and that planning a case twice opens nothing twice."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.kinds.enforce_copilot_support import actions, add_asset, call_rpc, case_row
from tests.kinds.enrich_outreach_support import make_case, open_enforcement_case
from workers.enforce.handler import run
from workers.enforce.payload import EnforcePayload
from workers.enforce.planner import Step

Conn = psycopg.Connection[Any]


@pytest.fixture
def case(db: Conn) -> dict[str, uuid.UUID]:
    ids = make_case(db)
    ids["ec"] = open_enforcement_case(db, ids)
    return ids


def _plan(db: Conn, case_id: uuid.UUID, key: str = "k1", **kw: Any) -> Any:
    return run(db, EnforcePayload(case_id=case_id, **kw), idempotency_key=key)


def _set_tier(db: Conn, case_id: uuid.UUID, tier: str) -> None:
    db.execute("update public.enforcement_cases set tier = %s where id = %s", (tier, case_id))


def _events(db: Conn, case_id: uuid.UUID, kind: str) -> list[dict[str, Any]]:
    rows = db.execute(
        "select payload from public.enforcement_events"
        " where enforcement_case_id = %s and event_kind = %s order by created_at",
        (case_id, kind),
    ).fetchall()
    return [r[0] for r in rows]


def _now(db: Conn) -> Any:
    row = db.execute("select now()").fetchone()
    assert row is not None
    return row[0]


def test_bank_hint_opens_a_levy_moves_the_stage_and_sets_next_action(
    db: Conn, case: dict[str, uuid.UUID]
) -> None:
    add_asset(db, case["case_id"], "bank", "Chase")
    _set_tier(db, case["ec"], "tier0")
    outcome = _plan(db, case["ec"])
    assert (outcome.plan.rule, outcome.plan.step) == ("bank_hint", Step.BANK_LEVY)
    assert actions(db, case["ec"]) == [("bank_levy", "queued")]
    row = case_row(db, case["ec"])
    assert row["current_stage"] == "bank_levy"
    assert row["next_action_at"] == _now(db) + timedelta(days=7)  # tier0 cadence
    meta = db.execute(
        "select metadata from public.enforcement_actions where enforcement_case_id = %s",
        (case["ec"],),
    ).fetchone()
    assert meta is not None
    assert meta[0]["rule"] == "bank_hint"
    assert meta[0]["target"] == "Chase"
    assert meta[0]["job"] == "k1"
    changed = _events(db, case["ec"], "case_stage_changed")
    assert [(e["from"], e["to"]) for e in changed] == [("pre_enforcement", "bank_levy")]


def test_planning_twice_opens_no_second_action(db: Conn, case: dict[str, uuid.UUID]) -> None:
    add_asset(db, case["case_id"], "bank", "Chase")
    first = _plan(db, case["ec"], "k1")
    events_after_first = db.execute(
        "select count(*) from public.enforcement_events where enforcement_case_id = %s",
        (case["ec"],),
    ).fetchone()
    second = _plan(db, case["ec"], "k2")
    assert first.plan.step is Step.BANK_LEVY
    assert (second.plan.rule, second.plan.step) == ("action_in_flight", Step.WAIT)
    assert actions(db, case["ec"]) == [("bank_levy", "queued")]
    events_after_second = db.execute(
        "select count(*) from public.enforcement_events where enforcement_case_id = %s",
        (case["ec"],),
    ).fetchone()
    assert events_after_second == events_after_first  # a wait writes no timeline event
    assert case_row(db, case["ec"])["current_stage"] == "bank_levy"


def test_employer_hint_opens_a_garnishment(db: Conn, case: dict[str, uuid.UUID]) -> None:
    add_asset(db, case["case_id"], "employer", "Globex Corp")
    outcome = _plan(db, case["ec"])
    assert outcome.plan.step is Step.GARNISHMENT
    assert actions(db, case["ec"]) == [("garnishment", "queued")]
    assert case_row(db, case["ec"])["current_stage"] == "wage_garnishment"


def test_asset_flags_count_as_hints(db: Conn, case: dict[str, uuid.UUID]) -> None:
    db.execute(
        "update public.enforcement_cases set asset_flags = '{\"employer\": true}' where id = %s",
        (case["ec"],),
    )
    assert _plan(db, case["ec"]).plan.step is Step.GARNISHMENT


def test_nothing_known_asset_search_then_subpoena_then_wait(
    db: Conn, case: dict[str, uuid.UUID]
) -> None:
    _set_tier(db, case["ec"], "tier2")
    search = _plan(db, case["ec"], "k1")
    assert search.plan.step is Step.ASSET_SEARCH
    assert case_row(db, case["ec"])["current_stage"] == "asset_search"
    [requested] = _events(db, case["ec"], "asset_search_requested")
    assert requested["rule"] == "asset_search"
    assert actions(db, case["ec"]) == []

    subpoena = _plan(db, case["ec"], "k2")
    assert subpoena.plan.step is Step.SUBPOENA
    assert actions(db, case["ec"]) == [("subpoena", "awaiting_response")]
    assert case_row(db, case["ec"])["current_stage"] == "information_subpoena"
    [issued] = _events(db, case["ec"], "subpoena_issued")
    assert issued["recipient_type"] == "debtor"
    assert issued["recipient"].startswith("Debtor ")
    doc = db.execute(
        "select storage_path from public.enforcement_documents where enforcement_case_id = %s",
        (case["ec"],),
    ).fetchone()
    assert doc is not None
    assert doc[0].startswith(f"generated/information_subpoena/{case['ec']}/")

    waiting = _plan(db, case["ec"], "k3")
    assert (waiting.plan.rule, waiting.plan.step) == ("action_in_flight", Step.WAIT)
    assert len(actions(db, case["ec"])) == 1


def test_subpoena_goes_to_the_known_bank_once_the_levy_is_done(
    db: Conn, case: dict[str, uuid.UUID]
) -> None:
    add_asset(db, case["case_id"], "bank", "Chase")
    _plan(db, case["ec"], "k1")
    call_rpc(
        db,
        "queue_enforcement_action",
        {
            "case_id": str(case["ec"]),
            "action_type": "bank_levy",
            "status": "completed",
            "actor": "ops",
        },
    )
    outcome = _plan(db, case["ec"], "k2")
    assert outcome.plan.rule == "information_subpoena"
    [issued] = _events(db, case["ec"], "subpoena_issued")
    assert (issued["recipient"], issued["recipient_type"]) == ("Chase", "bank")
    assert case_row(db, case["ec"])["current_stage"] == "bank_levy"  # never backwards


def _exhaust(db: Conn, case: dict[str, uuid.UUID], tier: str) -> None:
    """Asset search found nothing, the subpoena went unanswered."""
    _set_tier(db, case["ec"], tier)
    _plan(db, case["ec"], "x1")
    _plan(db, case["ec"], "x2")
    call_rpc(
        db,
        "record_subpoena_response",
        {"case_id": str(case["ec"]), "outcome": "no_response", "actor": "ops"},
    )


def test_exhausted_low_tier_asks_for_an_uncollectible_review_once(
    db: Conn, case: dict[str, uuid.UUID]
) -> None:
    _exhaust(db, case, "tier3")
    review = _plan(db, case["ec"], "k1")
    assert review.plan.step is Step.UNCOLLECTIBLE_REVIEW
    [note] = _events(db, case["ec"], "note_added")
    assert note["review"] == "uncollectible"
    assert note["rule"] == "uncollectible_review"
    again = _plan(db, case["ec"], "k2")
    assert (again.plan.rule, again.plan.step) == ("review_pending", Step.WAIT)
    assert len(_events(db, case["ec"], "note_added")) == 1
    assert case_row(db, case["ec"])["closed_at"] is None  # Ops decides, not the planner


def test_exhausted_good_tier_goes_to_the_marshal(db: Conn, case: dict[str, uuid.UUID]) -> None:
    _exhaust(db, case, "tier0")
    outcome = _plan(db, case["ec"], "k1")
    assert outcome.plan.step is Step.MARSHAL
    assert ("marshal", "queued") in actions(db, case["ec"])
    assert case_row(db, case["ec"])["current_stage"] == "marshal_execution"


def test_a_wait_moves_only_next_action_at(db: Conn, case: dict[str, uuid.UUID]) -> None:
    add_asset(db, case["case_id"], "bank", "Chase")
    _set_tier(db, case["ec"], "tier1")
    _plan(db, case["ec"], "k1")
    db.execute(
        "update public.enforcement_cases set next_action_at = now() - interval '1 day'"
        " where id = %s",
        (case["ec"],),
    )
    before = case_row(db, case["ec"])
    outcome = _plan(db, case["ec"], "k2", trigger="sla_sweep")
    after = case_row(db, case["ec"])
    assert outcome.plan.step is Step.WAIT
    assert after["stage_entered_at"] == before["stage_entered_at"]
    assert after["next_action_at"] == _now(db) + timedelta(days=14)  # tier1 cadence
    history = db.execute(
        "select delta, note from public.enforcement_history where enforcement_case_id = %s"
        " and action = 'next_action_scheduled'",
        (case["ec"],),
    ).fetchall()
    assert len(history) == 1
    assert "monitoring" in history[0][1]


def test_a_requested_action_overrides_the_table(db: Conn, case: dict[str, uuid.UUID]) -> None:
    add_asset(db, case["case_id"], "bank", "Chase")
    outcome = _plan(db, case["ec"], requested_action="marshal", note="Ops: car spotted")
    assert (outcome.plan.rule, outcome.plan.step) == ("requested", Step.MARSHAL)
    assert actions(db, case["ec"]) == [("marshal", "queued")]
    meta = db.execute(
        "select metadata from public.enforcement_actions where enforcement_case_id = %s",
        (case["ec"],),
    ).fetchone()
    assert meta is not None
    assert meta[0]["note"] == "Ops: car spotted"


def test_a_closed_case_is_left_alone(db: Conn, case: dict[str, uuid.UUID]) -> None:
    add_asset(db, case["case_id"], "bank", "Chase")
    call_rpc(
        db,
        "close_enforcement_case",
        {"case_id": str(case["ec"]), "status": "withdrawn", "closed_by": "ops"},
    )
    before = case_row(db, case["ec"])
    outcome = _plan(db, case["ec"])
    assert outcome.plan.step is Step.NONE
    assert outcome.next_action_at is None
    assert case_row(db, case["ec"]) == before
    assert actions(db, case["ec"]) == []


def test_an_unknown_case_fails_with_p0002(db: Conn) -> None:
    with pytest.raises(psycopg.errors.NoDataFound, match="not found"), db.transaction():
        _plan(db, uuid.uuid4())
