"""The enforcement views and refresh_enforcement_metrics()."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.sql.enforcement_seed import (
    Seeded,
    fingerprint,
    one,
    rpc,
    seed,
    seed_court_case,
    seed_judgment,
    seed_plaintiff,
)

Conn = psycopg.Connection[Any]

PRIORITY_ORDER = {"urgent": 0, "high": 1, "normal": 2, "low": 3, "on_hold": 4}


def columns(db: Conn, view: str) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'public' and table_name = %s order by ordinal_position",
            (view,),
        ).fetchall()
    ]


# --------------------------------------------------------------------------------------
# v_priority_pipeline


def test_pipeline_has_exactly_the_spec_columns_then_the_tenant(db: Conn) -> None:
    assert columns(db, "v_priority_pipeline") == [
        "plaintiff_name",
        "judgment_id",
        "collectability_tier",
        "priority_level",
        "judgment_amount",
        "county",
        "state",
        "stage",
        "plaintiff_status",
        "tier_rank",
        "tenant_id",  # after the spec's columns (migration 20261203110200)
    ]


def test_pipeline_ranks_by_tier_then_priority_then_amount(db: Conn) -> None:
    pid = seed_plaintiff(db, name="Rank Test LLC", status="signed")
    made: dict[str, tuple[str | None, str, Decimal]] = {}
    specs = [
        ("tier1", "low", "5000.00"),
        ("tier0", "on_hold", "90000.00"),
        ("tier0", "urgent", "100.00"),
        ("tier0", "high", "700.00"),
        ("tier0", "high", "900.00"),
        ("tier1", "urgent", "10.00"),
        (None, "urgent", "99999.00"),
        ("tier3", "normal", "1.00"),
        ("tier0", "normal", "50000.00"),
    ]
    for tier, priority, amount in specs:
        jid = seed_judgment(db, pid, amount=amount, priority=priority)
        if tier is not None:
            seed_court_case(db, jid, tier=tier)
        made[jid] = (tier, priority, Decimal(amount))
    # Not active: never in the pipeline.
    seed_judgment(db, pid, amount="123.00", status="satisfied")

    rows = db.execute(
        "select judgment_id::text, collectability_tier, priority_level, judgment_amount, "
        "tier_rank, plaintiff_name, plaintiff_status from public.v_priority_pipeline"
    ).fetchall()
    assert {r[0] for r in rows} == set(made)

    def key(jid: str) -> tuple[Any, ...]:
        tier, priority, amount = made[jid]
        return (tier is None, tier or "", PRIORITY_ORDER[priority], -amount, jid)

    assert [r[0] for r in rows] == sorted(made, key=key)
    ranks: dict[str | None, int] = {}
    for _, tier, *_, rank, name, status in rows:
        ranks[tier] = ranks.get(tier, 0) + 1
        assert rank == ranks[tier]
        assert (name, status) == ("Rank Test LLC", "signed")
    assert [r[1] for r in rows[:5]] == ["tier0"] * 5
    assert [r[2] for r in rows[:5]] == ["urgent", "high", "high", "normal", "on_hold"]
    assert rows[1][3] == Decimal("900.00")


def test_pipeline_shows_the_open_case_stage_and_follows_the_court_case_tier(db: Conn) -> None:
    seeded = seed(db, tier="tier1", score="60")
    rpc(db, "set_enforcement_stage", {"case_id": seeded.case_id, "stage": "bank_levy"})

    def row() -> tuple[Any, ...]:
        r = db.execute(
            "select stage, collectability_tier from public.v_priority_pipeline "
            "where judgment_id = %s",
            (seeded.judgment_id,),
        ).fetchone()
        assert r is not None
        return tuple(r)

    assert row() == ("bank_levy", "tier1")
    db.execute(
        "update judgments.cases set collectability_tier = 'tier0' where id = %s",
        (seeded.court_case_id,),
    )
    assert row() == ("bank_levy", "tier0")
    rpc(db, "close_enforcement_case", {"case_id": seeded.case_id, "status": "withdrawn"})
    assert row() == (None, "tier0")
    db.execute("delete from judgments.cases where id = %s", (seeded.court_case_id,))
    assert row() == (None, None)
    # The pipeline's tier is the snapshot's.
    assert (
        one(
            db,
            "select count(*) from public.v_priority_pipeline p "
            "join public.v_collectability_snapshot s using (judgment_id) "
            "where p.collectability_tier is distinct from s.collectability_tier",
        )
        == 0
    )


# --------------------------------------------------------------------------------------
# v_collectability_snapshot


def test_snapshot_has_one_row_per_judgment_with_scores_and_open_case(db: Conn) -> None:
    seeded = seed(db, score="55.5", tier="tier1")
    db.execute(
        "update judgments.cases set identity_score = 70, asset_score = 40 where id = %s",
        (seeded.court_case_id,),
    )
    bare = seed_judgment(db)
    rows = dict(
        (r[0], r[1:])
        for r in db.execute(
            """
            select judgment_id::text, collectability_score, collectability_tier, identity_score,
                   asset_score, enforcement_case_id::text, enforcement_stage, enforcement_tier,
                   tier_overridden
            from public.v_collectability_snapshot where judgment_id = any(%s::uuid[])
            """,
            ([seeded.judgment_id, bare],),
        ).fetchall()
    )
    assert rows[seeded.judgment_id] == (
        Decimal("55.50"),
        "tier1",
        Decimal("70.00"),
        Decimal("40.00"),
        seeded.case_id,
        "pre_enforcement",
        "tier1",
        False,
    )
    assert rows[bare] == (None, None, None, None, None, None, None, False)


# --------------------------------------------------------------------------------------
# v_enforcement_overview / v_enforcement_recent


def test_overview_counts_balances_and_sla_breaches_per_tier_and_stage(db: Conn) -> None:
    a = seed(db, tier="tier0", score="90", amount="100.00")
    b = seed(db, tier="tier0", score="80", amount="200.00")
    c = seed(db, tier="tier2", score="30", amount="50.00")
    d = seed(db, tier="tier2", score="30", amount="70.00")
    closed = seed(db, tier="tier0", score="90", amount="999.00")
    rpc(db, "close_enforcement_case", {"case_id": closed.case_id, "status": "uncollectible"})
    rpc(db, "set_enforcement_stage", {"case_id": b.case_id, "stage": "bank_levy"})
    # a breached its 14-day pre_enforcement SLA; c is merely due (next_action_at passed).
    db.execute(
        "update public.enforcement_cases set stage_entered_at = now() - interval '20 days' "
        "where id = %s",
        (a.case_id,),
    )
    db.execute(
        "update public.enforcement_cases set next_action_at = now() - interval '1 hour' "
        "where id = %s",
        (c.case_id,),
    )
    # d is overridden into tier1 until next week.
    db.execute(
        "update public.enforcement_cases set tier_override = 'tier1', "
        "override_expires_at = now() + interval '7 days' where id = %s",
        (d.case_id,),
    )
    assert "tier" in columns(db, "v_enforcement_overview")
    rows = db.execute(
        "select tier, current_stage, case_count, stage_balance, sla_breach_count, due_count, "
        "max_days_in_stage, tier_case_count, tier_balance, tier_sla_breach_count "
        "from public.v_enforcement_overview"
    ).fetchall()
    assert rows == [
        ("tier0", "pre_enforcement", 1, Decimal("100.00"), 1, 0, 20, 2, Decimal("300.00"), 1),
        ("tier0", "bank_levy", 1, Decimal("200.00"), 0, 0, 0, 2, Decimal("300.00"), 1),
        ("tier1", "pre_enforcement", 1, Decimal("70.00"), 0, 0, 0, 1, Decimal("70.00"), 0),
        ("tier2", "pre_enforcement", 1, Decimal("50.00"), 0, 1, 0, 1, Decimal("50.00"), 0),
    ]


def test_recent_lists_cases_with_days_in_stage_and_latest_event(db: Conn) -> None:
    older = seed(db)
    newer = seed(db, tier="tier3", score="10")
    # Past updated_at needs the touch trigger out of the way (it stamps now()).
    db.execute("set local session_replication_role = replica")
    db.execute(
        "update public.enforcement_cases set stage_entered_at = now() - interval '3 days 2 hours', "
        "updated_at = now() - interval '1 day' where id = %s",
        (older.case_id,),
    )
    db.execute("set local session_replication_role = origin")
    rpc(db, "log_enforcement_event", {"case_id": newer.case_id, "event_kind": "note_added"})
    cols = columns(db, "v_enforcement_recent")
    assert {"tier", "current_stage", "next_action_at", "days_in_stage"} <= set(cols)
    rows = db.execute(
        "select case_id::text, tier, current_stage, days_in_stage, sla_breached, last_event_kind "
        "from public.v_enforcement_recent"
    ).fetchall()
    assert [r[0] for r in rows] == [newer.case_id, older.case_id]
    assert rows[0][1:] == ("tier3", "pre_enforcement", 0, False, "note_added")
    assert rows[1][1:] == ("tier0", "pre_enforcement", 3, False, "case_opened")


# --------------------------------------------------------------------------------------
# v_enforcement_timeline


def test_timeline_unions_history_events_tasks_and_actions_in_order(
    db: Conn, enf_case: Seeded
) -> None:
    cid = enf_case.case_id
    db.execute(
        "update public.enforcement_history set created_at = now() - interval '2 days' "
        "where enforcement_case_id = %s",
        (cid,),
    )
    db.execute(
        "update public.enforcement_events set occurred_at = now() - interval '2 days' "
        "where enforcement_case_id = %s",
        (cid,),
    )
    rpc(
        db,
        "log_enforcement_event",
        {"case_id": cid, "event_kind": "note_added", "occurred_at": "2020-01-01T00:00:00Z"},
    )
    rpc(db, "issue_subpoena", {"case_id": cid, "recipient": "Bank", "document_path": "s/a.pdf"})
    rows = db.execute(
        "select entry_type, kind, occurred_at from public.v_enforcement_timeline "
        "where case_id = %s",
        (cid,),
    ).fetchall()
    assert {r[0] for r in rows} == {"history", "event", "task", "action"}
    assert rows[0][:2] == ("event", "note_added")  # backdated to 2020: first
    assert [r[2] for r in rows] == sorted(r[2] for r in rows)
    assert ("action", "subpoena") in {(r[0], r[1]) for r in rows}
    assert ("task", "follow_up") in {(r[0], r[1]) for r in rows}
    assert ("history", "case_opened") in {(r[0], r[1]) for r in rows}


def test_every_view_is_security_invoker_and_commented(db: Conn) -> None:
    rows = db.execute(
        """
        select c.relname, c.reloptions, obj_description(c.oid, 'pg_class')
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind = 'v' and c.relname = any(%s)
        """,
        (
            [
                "v_enforcement_overview",
                "v_enforcement_recent",
                "v_enforcement_timeline",
                "v_collectability_snapshot",
                "v_priority_pipeline",
            ],
        ),
    ).fetchall()
    assert len(rows) == 5
    for name, options, comment in rows:
        assert "security_invoker=true" in (options or []), name
        assert comment, name
        assert "Readable by" in comment, name


# --------------------------------------------------------------------------------------
# refresh_enforcement_metrics()


def refresh(db: Conn) -> dict[str, Any]:
    result = one(db, "select public.refresh_enforcement_metrics()")
    assert isinstance(result, dict)
    return result


def tier_state(db: Conn, case_id: str | None) -> tuple[Any, ...]:
    row = db.execute(
        "select tier, tier_reason, tier_override, override_expires_at, collectability_score "
        "from public.enforcement_cases where id = %s",
        (case_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_refresh_recalculates_tiers_from_scores_and_is_idempotent(db: Conn) -> None:
    s = seed(db, score="80", tier="tier0")
    refresh(db)  # settle whatever else the database holds
    db.execute(
        "update judgments.cases set collectability_score = 30, collectability_tier = 'tier2' "
        "where id = %s",
        (s.court_case_id,),
    )
    first = refresh(db)
    assert first["tiers_changed"] >= 1
    assert tier_state(db, s.case_id)[:2] == ("tier2", "score>=25")
    assert tier_state(db, s.case_id)[4] == Decimal("30.00")
    history = db.execute(
        "select actor_type, action, delta -> 'tier' from public.enforcement_history "
        "where enforcement_case_id = %s and actor_type = 'automation'",
        (s.case_id,),
    ).fetchall()
    assert history == [("automation", "tier_recalculated", {"from": "tier0", "to": "tier2"})]
    assert one(
        db,
        "select payload from public.enforcement_events "
        "where enforcement_case_id = %s and event_kind = 'tier_changed'",
        (s.case_id,),
    ) | {"reason": None} == {
        "from": "tier0",
        "to": "tier2",
        "reason": None,
        "override_expired": False,
    }

    before = fingerprint(db)
    second = refresh(db)
    assert fingerprint(db) == before
    assert {k: v for k, v in second.items() if k != "ran_at"} == {
        "cases_changed": 0,
        "tiers_changed": 0,
        "overrides_expired": 0,
        "next_actions_set": 0,
        "skipped_locked": 0,
        "history_rows": 0,
        "tier_events": 0,
        "resurfaced": 0,
        "pipeline_tiers_resynced": 0,
        "overview_totals_resynced": 0,
    }


def test_refresh_respects_unexpired_overrides_and_clears_expired_ones(db: Conn) -> None:
    live = seed(db, score="90", tier="tier0")
    stale = seed(db, score="90", tier="tier0")
    db.execute(
        "update public.enforcement_cases set tier_override = 'tier3', "
        "override_expires_at = now() + interval '1 day', override_note = 'debtor bankrupt' "
        "where id = %s",
        (live.case_id,),
    )
    db.execute(
        "update public.enforcement_cases set tier = 'tier2', tier_reason = 'override', "
        "tier_override = 'tier2', override_expires_at = now() - interval '1 minute', "
        "override_note = 'temporary' where id = %s",
        (stale.case_id,),
    )
    result = refresh(db)
    assert result["overrides_expired"] == 1
    assert tier_state(db, live.case_id)[:3] == ("tier3", "override", "tier3")
    assert tier_state(db, stale.case_id)[:4] == ("tier0", "score>=75", None, None)
    delta = one(
        db,
        "select delta from public.enforcement_history "
        "where enforcement_case_id = %s and action = 'override_expired'",
        (stale.case_id,),
    )
    assert delta["tier_override"] == {"from": "tier2", "to": None}
    assert delta["tier"] == {"from": "tier2", "to": "tier0"}
    assert delta["override_note"] == "temporary"
    # Unexpired overrides stay; nothing else to do.
    assert refresh(db)["cases_changed"] == 0
    assert tier_state(db, live.case_id)[2] == "tier3"


def test_refresh_fills_next_actions_and_resurfaces_overdue_cases_once(db: Conn) -> None:
    s = seed(db)
    overdue = seed(db)
    db.execute(
        "update public.enforcement_cases set next_action_at = null where id = %s", (s.case_id,)
    )
    db.execute(
        "update public.enforcement_cases set next_action_at = now() - interval '2 days' "
        "where id = %s",
        (overdue.case_id,),
    )
    result = refresh(db)
    assert result["next_actions_set"] == 1
    assert result["resurfaced"] == 1
    assert (
        one(
            db,
            "select next_action_at - stage_entered_at from public.enforcement_cases where id = %s",
            (s.case_id,),
        ).days
        == 14
    )
    assert refresh(db)["resurfaced"] == 0
    assert (
        one(
            db,
            "select count(*) from public.enforcement_events "
            "where enforcement_case_id = %s and event_kind = 'sla_resurfaced'",
            (overdue.case_id,),
        )
        == 1
    )


def test_refresh_leaves_closed_cases_alone(db: Conn) -> None:
    s = seed(db, score="90", tier="tier0")
    rpc(db, "close_enforcement_case", {"case_id": s.case_id, "status": "satisfied"})
    db.execute(
        "update judgments.cases set collectability_score = 5 where id = %s", (s.court_case_id,)
    )
    refresh(db)
    assert tier_state(db, s.case_id)[0] == "tier0"


def test_refresh_resyncs_a_drifted_pipeline_tier(db: Conn) -> None:
    s = seed(db, tier="tier1", score="60")
    db.execute("alter table judgments.cases disable trigger cases_mirror_collectability_tier")
    db.execute(
        "update judgments.cases set collectability_tier = 'tier3' where id = %s", (s.court_case_id,)
    )
    db.execute("alter table judgments.cases enable trigger cases_mirror_collectability_tier")
    assert refresh(db)["pipeline_tiers_resynced"] == 1
    assert (
        one(db, "select collectability_tier from public.judgments where id = %s", (s.judgment_id,))
        == "tier3"
    )


@pytest.mark.parametrize("name", ["refresh_enforcement_metrics"])
def test_refresh_keeps_the_name_and_zero_argument_signature(db: Conn, name: str) -> None:
    assert one(db, f"select to_regprocedure('public.{name}()') is not null") is True
    assert one(db, f"select pg_get_function_result('public.{name}()'::regprocedure)") == "jsonb"
    # pg_cron is not installed here, so the migration scheduled nothing and did not fail.
    assert one(db, "select count(*) from pg_extension where extname = 'pg_cron'") == 0
