"""The enforce kind's database functions: planner input, SLA due list, next_action_at."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.kinds.enrich_outreach_support import make_case, open_enforcement_case
from workers.enforce.planner import LADDER

Conn = psycopg.Connection[Any]


def _plan_input(db: Conn, case_id: uuid.UUID) -> dict[str, Any]:
    row = db.execute("select dragonfly.enforce_plan_input(%s, true)", (case_id,)).fetchone()
    assert row is not None
    return dict(row[0])


def _new_case(db: Conn) -> tuple[dict[str, uuid.UUID], uuid.UUID]:
    ids = make_case(db)
    return ids, open_enforcement_case(db, ids)


def test_ladder_copy_matches_the_stage_lookup(db: Conn) -> None:
    rows = db.execute(
        "select stage, ordinal, sla_days from public.enforcement_stage_lookup"
    ).fetchall()
    assert {s: (o, sla) for s, o, sla in rows} == LADDER


def test_plan_input_of_a_new_case(db: Conn) -> None:
    _ids, case_id = _new_case(db)
    got = _plan_input(db, case_id)
    assert got["stage"] == "pre_enforcement"
    assert got["closed"] is False
    assert got["hints"] == []
    assert got["open_actions"] == []
    assert got["tried_actions"] == []
    assert got["review_pending"] is False
    assert got["debtor_name"].startswith("Debtor ")
    assert got["institutions"] == {}


def test_plan_input_hints_merge_flags_and_enrichment_assets(db: Conn) -> None:
    ids, case_id = _new_case(db)
    db.execute(
        "update public.enforcement_cases set asset_flags = %s where id = %s",
        (json.dumps({"bank": False, "vehicle": True, "employer": None}), case_id),
    )
    db.execute(
        "insert into enrichment.assets"
        " (case_id, asset_type, asset_key, institution, confidence, source)"
        " values (%s, 'employer', 'globex', 'Globex Corp', 0.9, 'test'),"
        "        (%s, 'employer', 'initech', 'Initech', 0.4, 'test'),"
        "        (%s, 'other', 'x', null, null, 'test')",
        (ids["case_id"], ids["case_id"], ids["case_id"]),
    )
    got = _plan_input(db, case_id)
    assert got["hints"] == ["employer", "vehicle"]
    assert got["institutions"] == {"employer": "Globex Corp"}


def test_plan_input_effective_tier_honours_a_live_override(db: Conn) -> None:
    _ids, case_id = _new_case(db)
    db.execute(
        "update public.enforcement_cases set tier = 'tier3', tier_override = 'tier0',"
        " override_expires_at = now() + interval '1 day' where id = %s",
        (case_id,),
    )
    assert _plan_input(db, case_id)["tier"] == "tier0"
    db.execute(
        "update public.enforcement_cases set override_expires_at = now() - interval '1 day'"
        " where id = %s",
        (case_id,),
    )
    assert _plan_input(db, case_id)["tier"] == "tier3"


def test_plan_input_open_and_tried_actions(db: Conn) -> None:
    _ids, case_id = _new_case(db)
    for action, status in (
        ("bank_levy", "queued"),
        ("bank_levy", "completed"),
        ("garnishment", "queued"),
        ("garnishment", "cancelled"),
        ("marshal", "queued"),
    ):
        db.execute(
            "select public.queue_enforcement_action(%s::jsonb)",
            (
                json.dumps(
                    {
                        "case_id": str(case_id),
                        "action_type": action,
                        "status": status,
                        "actor": "test",
                    }
                ),
            ),
        )
    got = _plan_input(db, case_id)
    assert got["open_actions"] == ["marshal"]
    assert got["tried_actions"] == ["bank_levy", "garnishment"]


def test_plan_input_missing_case_is_p0002(db: Conn) -> None:
    with pytest.raises(psycopg.errors.NoDataFound, match="not found"), db.transaction():
        _plan_input(db, uuid.uuid4())


def test_sla_due_lists_open_overdue_cases_oldest_first(db: Conn) -> None:
    now = datetime.now(UTC)
    _ids, late = _new_case(db)
    _ids, later = _new_case(db)
    _ids, future = _new_case(db)
    for case_id, at in (
        (late, now - timedelta(days=3)),
        (later, now - timedelta(days=1)),
        (future, now + timedelta(days=1)),
    ):
        db.execute(
            "update public.enforcement_cases set next_action_at = %s where id = %s", (at, case_id)
        )
    rows = db.execute(
        "select case_id from dragonfly.enforcement_sla_due(%s, 1000)", (now,)
    ).fetchall()
    ids = [r[0] for r in rows]
    assert ids.index(late) < ids.index(later)
    assert future not in ids
    assert (
        len(db.execute("select * from dragonfly.enforcement_sla_due(%s, 1)", (now,)).fetchall())
        == 1
    )


def test_schedule_next_action_moves_only_next_action_at(db: Conn) -> None:
    _ids, case_id = _new_case(db)
    before = db.execute(
        "select current_stage, stage_entered_at from public.enforcement_cases where id = %s",
        (case_id,),
    ).fetchone()
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    db.execute("select dragonfly.schedule_next_action(%s, %s, 'test', 'why')", (case_id, at))
    db.execute("select dragonfly.schedule_next_action(%s, %s, 'test', 'why')", (case_id, at))
    after = db.execute(
        "select current_stage, stage_entered_at, next_action_at from public.enforcement_cases"
        " where id = %s",
        (case_id,),
    ).fetchone()
    assert after is not None
    assert before is not None
    assert after[:2] == before
    assert after[2] == at
    history = db.execute(
        "select count(*) from public.enforcement_history where enforcement_case_id = %s"
        " and action = 'next_action_scheduled'",
        (case_id,),
    ).fetchone()
    assert history == (1,)  # the second, unchanged call writes nothing


def test_fleet_role_may_use_the_functions_but_not_read_the_tables(db: Conn) -> None:
    _ids, case_id = _new_case(db)
    db.execute("set local role dragonfly_worker")
    assert _plan_input(db, case_id)["stage"] == "pre_enforcement"
    db.execute("select * from dragonfly.enforcement_sla_due(now(), 10)")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
        db.execute("select * from public.enforcement_cases")


@pytest.mark.parametrize("role", ["anon", "authenticated", "enforcement_operator"])
def test_api_roles_cannot_call_the_fleet_functions(db: Conn, role: str) -> None:
    _ids, case_id = _new_case(db)
    db.execute(f"set local role {role}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
        _plan_input(db, case_id)
