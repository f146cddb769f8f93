"""The enforcement RPCs: each one's happy path and each of its refusals.

Every refusal goes through ``refused()``, which also checks that the failed call left every
enforcement table exactly as it was.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.sql.enforcement_seed import (
    Seeded,
    new_id,
    one,
    refused,
    rpc,
    seed,
    seed_court_case,
    seed_judgment,
    seed_plaintiff,
)

Conn = psycopg.Connection[Any]


def case_row(db: Conn, case_id: str) -> dict[str, Any]:
    cur = db.execute("select * from public.enforcement_cases where id = %s", (case_id,))
    row = cur.fetchone()
    assert row is not None
    assert cur.description is not None
    return dict(zip([c.name for c in cur.description], row, strict=True))


def events(db: Conn, case_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (kind, payload)
        for kind, payload in db.execute(
            """
            select event_kind::text, payload from public.enforcement_events
            where enforcement_case_id = %s order by created_at
            """,
            (case_id,),
        ).fetchall()
    ]


def kinds(db: Conn, case_id: str) -> list[str]:
    return [kind for kind, _ in events(db, case_id)]


# --------------------------------------------------------------------------------------
# open_enforcement_case


def test_open_creates_a_pre_enforcement_case_with_history_and_event(
    db: Conn, enf_judgment: Seeded
) -> None:
    case_id = rpc(
        db,
        "open_enforcement_case",
        {
            "judgment_id": enf_judgment.judgment_id,
            "plaintiff_id": enf_judgment.plaintiff_id,
            "created_by": "ops@example.com",
            "notes": "  first pass  ",
        },
    )
    assert isinstance(case_id, uuid.UUID)
    case = case_row(db, str(case_id))
    assert case["current_stage"] == "pre_enforcement"
    assert case["judgment_id"] == uuid.UUID(enf_judgment.judgment_id)
    assert case["plaintiff_id"] == uuid.UUID(enf_judgment.plaintiff_id)
    assert case["current_balance"] == Decimal("1000.00")
    assert case["tier"] == "tier0"
    assert case["tier_reason"] == "score>=75"
    assert case["collectability_score"] == Decimal("80.00")
    assert case["created_by"] == "ops@example.com"
    assert case["notes"] == "first pass"
    assert case["closed_at"] is None
    assert case["next_action_at"] - case["stage_entered_at"] == timedelta(days=14)

    history = db.execute(
        "select actor, actor_type, action, delta from public.enforcement_history "
        "where enforcement_case_id = %s",
        (case_id,),
    ).fetchall()
    assert history == [
        (
            "ops@example.com",
            "rpc",
            "case_opened",
            {
                "stage": {"from": None, "to": "pre_enforcement"},
                "tier": {"from": None, "to": "tier0"},
                "current_balance": {"from": None, "to": 1000.00},
            },
        )
    ]
    assert kinds(db, str(case_id)) == ["case_opened"]


def test_open_takes_the_given_tier_and_score(db: Conn, enf_judgment: Seeded) -> None:
    case_id = rpc(
        db,
        "open_enforcement_case",
        {"judgment_id": enf_judgment.judgment_id, "tier": "tier2", "collectability_score": "30.5"},
    )
    case = case_row(db, str(case_id))
    assert (case["tier"], case["tier_reason"]) == ("tier2", "given at opening")
    assert case["collectability_score"] == Decimal("30.50")


def test_open_without_any_score_leaves_the_tier_empty(db: Conn) -> None:
    jid = seed_judgment(db)
    case_id = rpc(db, "open_enforcement_case", {"judgment_id": jid})
    case = case_row(db, str(case_id))
    assert case["tier"] is None
    assert case["tier_as_of"] is None
    # created_by defaults to the caller (no JWT here: the session user).
    assert case["created_by"] == one(db, "select session_user")


def test_a_judgment_can_be_reopened_after_its_case_closed(db: Conn, enf_case: Seeded) -> None:
    rpc(db, "close_enforcement_case", {"case_id": enf_case.case_id, "status": "withdrawn"})
    again = rpc(db, "open_enforcement_case", {"judgment_id": enf_case.judgment_id})
    assert str(again) != enf_case.case_id


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (None, "payload must be a JSON object"),
        ([], "payload must be a JSON object"),
        ("x", "payload must be a JSON object"),
        ({}, "judgment_id is required"),
        ({"judgment_id": None}, "judgment_id is required"),
        ({"judgment_id": "not-a-uuid"}, "judgment_id must be a uuid"),
        ({"judgment_id": 12}, "judgment_id must be a uuid"),
        ({"judgment_id": "{JID}", "surprise": 1}, "unknown field(s) surprise"),
        ({"judgment_id": "{JID}", "tier": "tier9"}, "tier must be one of"),
        ({"judgment_id": "{JID}", "tier": 0}, "tier must be a string"),
        ({"judgment_id": "{JID}", "collectability_score": 100.5}, "collectability_score"),
        ({"judgment_id": "{JID}", "collectability_score": -1}, "collectability_score"),
        ({"judgment_id": "{JID}", "collectability_score": 1.234}, "collectability_score"),
        ({"judgment_id": "{JID}", "collectability_score": "lots"}, "collectability_score"),
        ({"judgment_id": "{JID}", "collectability_score": True}, "collectability_score"),
        ({"judgment_id": "{JID}", "created_by": "   "}, "created_by must not be blank"),
        ({"judgment_id": "{JID}", "notes": "x" * 4001}, "notes must be at most 4000"),
        ({"judgment_id": "{JID}", "plaintiff_id": "{OTHER_PLAINTIFF}"}, "is not the plaintiff"),
    ],
)
def test_open_refuses_invalid_payloads_with_22023(
    db: Conn, enf_judgment: Seeded, payload: Any, fragment: str
) -> None:
    other = seed_plaintiff(db)
    if isinstance(payload, dict):
        payload = {
            k: (
                v.replace("{JID}", enf_judgment.judgment_id).replace("{OTHER_PLAINTIFF}", other)
                if isinstance(v, str)
                else v
            )
            for k, v in payload.items()
        }
    error = refused(db, "22023", "open_enforcement_case", payload)
    assert fragment in str(error)
    assert "open_enforcement_case:" in str(error)


def test_open_refuses_unknown_judgment_and_plaintiff_with_p0002(
    db: Conn, enf_judgment: Seeded
) -> None:
    assert "judgment" in str(
        refused(db, "P0002", "open_enforcement_case", {"judgment_id": new_id()})
    )
    error = refused(
        db,
        "P0002",
        "open_enforcement_case",
        {"judgment_id": enf_judgment.judgment_id, "plaintiff_id": new_id()},
    )
    assert "plaintiff" in str(error)


@pytest.mark.parametrize("status", ["satisfied", "vacated", "expired"])
def test_open_refuses_a_judgment_that_is_not_active(db: Conn, status: str) -> None:
    jid = seed_judgment(db, status=status)
    assert status in str(refused(db, "DF005", "open_enforcement_case", {"judgment_id": jid}))


def test_open_refuses_a_second_open_case_for_the_judgment(db: Conn, enf_case: Seeded) -> None:
    error = refused(db, "23505", "open_enforcement_case", {"judgment_id": enf_case.judgment_id})
    assert "already has an open enforcement case" in str(error)
    assert enf_case.case_id is not None
    assert enf_case.case_id in str(error)


# --------------------------------------------------------------------------------------
# close_enforcement_case


def test_close_ends_the_case_its_actions_and_its_tasks(db: Conn, enf_case: Seeded) -> None:
    cid = enf_case.case_id
    levy = rpc(db, "queue_enforcement_action", {"case_id": cid, "action_type": "bank_levy"})
    subpoena = rpc(
        db, "issue_subpoena", {"case_id": cid, "recipient": "Bank", "document_path": "s/1.pdf"}
    )
    result = rpc(
        db,
        "close_enforcement_case",
        {"case_id": cid, "status": "satisfied", "note": "paid in full", "closed_by": "ops"},
    )
    assert result["closure_reason"] == "satisfied"
    assert result["actions_closed"] == 2
    assert result["tasks_cancelled"] == 1

    case = case_row(db, cid)
    assert case["closed_at"] is not None
    assert case["closure_reason"] == "satisfied"
    assert case["current_stage"] == "satisfied"
    assert case["closed_by"] == "ops"
    assert case["next_action_at"] is None

    actions = db.execute(
        "select id, status, closed_at is not null from public.enforcement_actions "
        "where enforcement_case_id = %s order by id",
        (cid,),
    ).fetchall()
    assert sorted(a[0] for a in actions) == sorted([levy, uuid.UUID(subpoena["action_id"])])
    assert all(status == "cancelled" and closed for _, status, closed in actions)
    assert (
        one(
            db,
            "select status from public.plaintiff_tasks where id = %s",
            (subpoena["task_id"],),
        )
        == "cancelled"
    )

    stage_events = [p for k, p in events(db, cid) if k == "case_stage_changed"]
    assert stage_events[-1]["to"] == "satisfied"
    assert stage_events[-1]["from"] == "pre_enforcement"
    assert kinds(db, cid)[-2:] == ["case_stage_changed", "case_closed"]
    assert kinds(db, cid).count("action_closed") == 2
    assert one(
        db,
        "select delta -> 'stage' from public.enforcement_history "
        "where enforcement_case_id = %s and action = 'case_closed'",
        (cid,),
    ) == {"from": "pre_enforcement", "to": "satisfied"}


def test_closing_a_closed_case_is_a_clear_error(db: Conn, enf_case: Seeded) -> None:
    rpc(db, "close_enforcement_case", {"case_id": enf_case.case_id, "status": "uncollectible"})
    error = refused(
        db, "DF001", "close_enforcement_case", {"case_id": enf_case.case_id, "status": "withdrawn"}
    )
    assert "already closed (uncollectible" in str(error)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"status": "satisfied"}, "22023"),
        ({"case_id": "{CID}"}, "22023"),
        ({"case_id": "{CID}", "status": "paid"}, "22023"),
        ({"case_id": "{CID}", "status": "satisfied", "closed_by": 5}, "22023"),
        ({"case_id": "{NEW}", "status": "satisfied"}, "P0002"),
    ],
)
def test_close_refusals(db: Conn, enf_case: Seeded, payload: dict[str, Any], code: str) -> None:
    assert enf_case.case_id is not None
    payload = {
        k: v.replace("{CID}", enf_case.case_id).replace("{NEW}", new_id())
        if isinstance(v, str)
        else v
        for k, v in payload.items()
    }
    refused(db, code, "close_enforcement_case", payload)


# --------------------------------------------------------------------------------------
# set_enforcement_stage


def test_stage_moves_forward_with_sla_history_and_event(db: Conn, enf_case: Seeded) -> None:
    cid = enf_case.case_id
    assert cid is not None
    before = case_row(db, cid)
    result = rpc(
        db,
        "set_enforcement_stage",
        {
            "case_id": cid,
            "stage": "bank_levy",
            "actor": "worker-1",
            "note": "account found",
            "metadata": {"bank": "Chase"},
        },
    )
    after = case_row(db, cid)
    assert result["previous_stage"] == "pre_enforcement"
    assert result["stage"] == "bank_levy"
    assert after["current_stage"] == "bank_levy"
    assert after["next_action_at"] - after["stage_entered_at"] == timedelta(days=30)
    assert after["stage_entered_at"] >= before["stage_entered_at"]

    delta, actor, note = db.execute(
        "select delta, actor, note from public.enforcement_history "
        "where enforcement_case_id = %s and action = 'stage_changed'",
        (cid,),
    ).fetchone() or (None, None, None)
    assert delta["stage"] == {"from": "pre_enforcement", "to": "bank_levy"}
    assert delta["tier"] == {"from": "tier0", "to": "tier0"}
    assert delta["override"] is False
    assert (actor, note) == ("worker-1", "account found")

    kind, payload = events(db, cid)[-1]
    assert kind == "case_stage_changed"
    assert payload["from"] == "pre_enforcement"
    assert payload["to"] == "bank_levy"
    assert payload["metadata"] == {"bank": "Chase"}
    assert str(result["event_id"]) == one(
        db,
        "select id::text from public.enforcement_events where enforcement_case_id = %s "
        "order by created_at desc limit 1",
        (cid,),
    )


def test_stage_takes_an_explicit_next_action_and_allows_the_same_stage(
    db: Conn, enf_case: Seeded
) -> None:
    rpc(
        db,
        "set_enforcement_stage",
        {
            "case_id": enf_case.case_id,
            "stage": "pre_enforcement",
            "next_action_at": "2030-01-02T03:04:05Z",
        },
    )
    assert case_row(db, str(enf_case.case_id))["next_action_at"].year == 2030


def test_stage_refuses_to_go_back_without_override(db: Conn, enf_case: Seeded) -> None:
    cid = enf_case.case_id
    rpc(db, "set_enforcement_stage", {"case_id": cid, "stage": "wage_garnishment"})
    error = refused(db, "DF002", "set_enforcement_stage", {"case_id": cid, "stage": "asset_search"})
    assert "override" in str(error)
    refused(
        db,
        "DF002",
        "set_enforcement_stage",
        {"case_id": cid, "stage": "asset_search", "override": False},
    )
    rpc(db, "set_enforcement_stage", {"case_id": cid, "stage": "asset_search", "override": True})
    assert case_row(db, str(cid))["current_stage"] == "asset_search"
    assert (
        one(
            db,
            # The move back to asset_search (rows of one transaction share created_at).
            "select delta -> 'override' from public.enforcement_history"
            " where enforcement_case_id = %s and delta #>> '{stage,from}' = 'wage_garnishment'"
            " and delta #>> '{stage,to}' = 'asset_search'",
            (cid,),
        )
        is True
    )


@pytest.mark.parametrize(
    ("payload", "code", "fragment"),
    [
        ({"case_id": "{CID}", "stage": "levitation"}, "22023", "is not a stage"),
        ({"case_id": "{CID}", "stage": "satisfied"}, "22023", "close_enforcement_case"),
        ({"case_id": "{CID}"}, "22023", "stage is required"),
        ({"case_id": "{CID}", "stage": "bank_levy", "override": "yes"}, "22023", "override"),
        ({"case_id": "{CID}", "stage": "bank_levy", "metadata": [1]}, "22023", "metadata"),
        ({"case_id": "{CID}", "stage": "bank_levy", "next_action_at": "soon"}, "22023", "next_"),
        (
            {"case_id": "{CID}", "stage": "bank_levy", "next_action_at": "infinity"},
            "22023",
            "ISO 8601",
        ),
        ({"case_id": "{NEW}", "stage": "bank_levy"}, "P0002", "not found"),
    ],
)
def test_stage_refusals(
    db: Conn, enf_case: Seeded, payload: dict[str, Any], code: str, fragment: str
) -> None:
    assert enf_case.case_id is not None
    payload = {
        k: v.replace("{CID}", enf_case.case_id).replace("{NEW}", new_id())
        if isinstance(v, str)
        else v
        for k, v in payload.items()
    }
    assert fragment in str(refused(db, code, "set_enforcement_stage", payload))


def test_a_closed_case_refuses_every_writing_rpc(db: Conn, enf_case: Seeded) -> None:
    cid = enf_case.case_id
    rpc(db, "close_enforcement_case", {"case_id": cid, "status": "withdrawn"})
    for name, payload in [
        ("set_enforcement_stage", {"case_id": cid, "stage": "bank_levy"}),
        ("log_enforcement_event", {"case_id": cid, "event_kind": "note_added"}),
        ("queue_enforcement_action", {"case_id": cid, "action_type": "marshal"}),
        ("record_enforcement_payment", {"case_id": cid, "amount": 1}),
        ("issue_subpoena", {"case_id": cid, "recipient": "B", "document_path": "a/b"}),
        ("record_subpoena_response", {"case_id": cid, "outcome": "partial"}),
    ]:
        assert "is closed" in str(refused(db, "DF001", name, payload)), name


# --------------------------------------------------------------------------------------
# log_enforcement_event


def test_log_event_inserts_and_returns_the_event(db: Conn, enf_case: Seeded) -> None:
    task = db.execute(
        "insert into public.plaintiff_tasks (plaintiff_id, enforcement_case_id, kind) "
        "values (%s, %s, 'follow_up') returning id",
        (enf_case.plaintiff_id, enf_case.case_id),
    ).fetchone()
    assert task is not None
    event_id = rpc(
        db,
        "log_enforcement_event",
        {
            "case_id": enf_case.case_id,
            "event_kind": "note_added",
            "payload": {"text": "debtor called"},
            "related_task_id": str(task[0]),
            "actor": "ops",
            "occurred_at": "2026-01-05T10:00:00Z",
        },
    )
    row = db.execute(
        "select event_kind::text, payload, related_task_id, actor, occurred_at "
        "from public.enforcement_events where id = %s",
        (event_id,),
    ).fetchone()
    assert row is not None
    assert row[:4] == ("note_added", {"text": "debtor called"}, task[0], "ops")
    assert row[4].year == 2026
    assert row[4].month == 1


def derived(db: Conn, case_id: str) -> tuple[Any, ...]:
    row = db.execute(
        "select levy_status, garnishment_status, marshal_status, asset_flags "
        "from public.enforcement_cases where id = %s",
        (case_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_every_mapped_kind_sets_its_derived_column(db: Conn, enf_case: Seeded) -> None:
    rules = db.execute(
        """
        select event_kind::text, requires_document, levy_status, garnishment_status, marshal_status
        from public.enforcement_event_kind_lookup
        where loggable and num_nonnulls(levy_status, garnishment_status, marshal_status) = 1
        order by event_kind
        """
    ).fetchall()
    assert len(rules) == 9
    cid = str(enf_case.case_id)
    for kind, needs_doc, levy, garnishment, marshal in rules:
        payload: dict[str, Any] = {"case_id": cid, "event_kind": kind}
        if needs_doc:
            payload["document_path"] = f"cases/{cid}/{kind}.pdf"
        with db.transaction(force_rollback=True):
            rpc(db, "log_enforcement_event", payload)
            assert derived(db, cid)[:3] == (levy, garnishment, marshal), kind


def test_the_latest_occurring_event_decides_the_status(db: Conn, enf_case: Seeded) -> None:
    cid = str(enf_case.case_id)
    for kind, when in [
        ("bank_levy_served", "2026-03-01T00:00:00Z"),
        ("bank_levy_filed", "2026-02-01T00:00:00Z"),  # recorded late, happened earlier
    ]:
        rpc(
            db,
            "log_enforcement_event",
            {"case_id": cid, "event_kind": kind, "document_path": "x/y.pdf", "occurred_at": when},
        )
    assert derived(db, cid)[0] == "served"
    rpc(
        db,
        "log_enforcement_event",
        {"case_id": cid, "event_kind": "bank_levy_released", "document_path": "x/z.pdf"},
    )
    assert derived(db, cid)[0] == "released"


def test_asset_search_results_merge_into_asset_flags(db: Conn, enf_case: Seeded) -> None:
    cid = str(enf_case.case_id)
    for flags in ({"bank": True, "employer": False}, {"employer": True, "vehicle": False}):
        rpc(
            db,
            "log_enforcement_event",
            {
                "case_id": cid,
                "event_kind": "asset_search_completed",
                "payload": {"asset_flags": flags},
            },
        )
    assert derived(db, cid)[3] == {"bank": True, "employer": True, "vehicle": False}


def test_events_with_a_document_are_listed_in_enforcement_documents(
    db: Conn, enf_case: Seeded
) -> None:
    event_id = rpc(
        db,
        "log_enforcement_event",
        {
            "case_id": enf_case.case_id,
            "event_kind": "garnishment_order_signed",
            "document_path": "orders/2026/order-17.pdf",
            "actor": "clerk",
        },
    )
    row = db.execute(
        "select enforcement_case_id::text, doc_kind, storage_path, uploaded_by "
        "from public.enforcement_documents where event_id = %s",
        (event_id,),
    ).fetchone()
    assert row == (
        enf_case.case_id,
        "garnishment_order_signed",
        "orders/2026/order-17.pdf",
        "clerk",
    )


def document_kinds(db: Conn) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "select event_kind::text from public.enforcement_event_kind_lookup "
            "where loggable and requires_document order by 1"
        ).fetchall()
    ]


def test_action_stage_kinds_require_a_document(db: Conn, enf_case: Seeded) -> None:
    needing = document_kinds(db)
    assert needing == [
        "bank_levy_filed",
        "bank_levy_released",
        "bank_levy_served",
        "garnishment_order_signed",
        "garnishment_served",
        "marshal_assigned",
        "marshal_result",
    ]
    for kind in needing:
        error = refused(
            db, "22023", "log_enforcement_event", {"case_id": enf_case.case_id, "event_kind": kind}
        )
        assert "document_path is required" in str(error)


def test_lifecycle_kinds_are_refused_with_a_pointer_to_their_rpc(
    db: Conn, enf_case: Seeded
) -> None:
    rows = db.execute(
        "select event_kind::text, written_by from public.enforcement_event_kind_lookup "
        "where not loggable"
    ).fetchall()
    assert {k for k, _ in rows} >= {"payment_received", "case_stage_changed", "subpoena_issued"}
    for kind, written_by in rows:
        error = refused(
            db,
            "22023",
            "log_enforcement_event",
            {"case_id": enf_case.case_id, "event_kind": kind, "document_path": "a/b.pdf"},
        )
        assert written_by in str(error)


@pytest.mark.parametrize(
    ("extra", "code", "fragment"),
    [
        ({"event_kind": "alien_abduction"}, "22023", "is not an enforcement event kind"),
        ({"event_kind": "note_added", "payload": "text"}, "22023", "payload must be a JSON"),
        ({"event_kind": "note_added", "occurred_at": "2150-01-01T00:00:00Z"}, "22023", "future"),
        ({"event_kind": "note_added", "related_task_id": "{NEW}"}, "P0002", "task"),
        ({"event_kind": "bank_levy_filed", "document_path": "../etc/passwd"}, "22023", "storage"),
        ({"event_kind": "bank_levy_filed", "document_path": "/abs.pdf"}, "22023", "storage"),
        ({"event_kind": "bank_levy_filed", "document_path": "a//b.pdf"}, "22023", "storage"),
        (
            {"event_kind": "asset_search_completed", "payload": {"asset_flags": {"bank": "yes"}}},
            "22023",
            "asset_flags",
        ),
        (
            {"event_kind": "asset_search_completed", "payload": {"asset_flags": ["bank"]}},
            "22023",
            "asset_flags",
        ),
    ],
)
def test_log_event_refusals(
    db: Conn, enf_case: Seeded, extra: dict[str, Any], code: str, fragment: str
) -> None:
    payload = {"case_id": enf_case.case_id} | {
        k: v.replace("{NEW}", new_id()) if isinstance(v, str) else v for k, v in extra.items()
    }
    assert fragment in str(refused(db, code, "log_enforcement_event", payload))


def test_log_event_refuses_a_task_of_another_plaintiff(db: Conn, enf_case: Seeded) -> None:
    other = seed_plaintiff(db)
    task = one(
        db,
        "insert into public.plaintiff_tasks (plaintiff_id, kind) values (%s, 'call') returning id",
        (other,),
    )
    error = refused(
        db,
        "22023",
        "log_enforcement_event",
        {"case_id": enf_case.case_id, "event_kind": "note_added", "related_task_id": str(task)},
    )
    assert "related_task_id" in str(error)


def test_log_event_refuses_an_unknown_case(db: Conn) -> None:
    refused(db, "P0002", "log_enforcement_event", {"case_id": new_id(), "event_kind": "note_added"})


# --------------------------------------------------------------------------------------
# queue_enforcement_action


def action(db: Conn, action_id: Any) -> tuple[Any, ...]:
    row = db.execute(
        "select status, status_reason, metadata, closed_at is not null, updated_by "
        "from public.enforcement_actions where id = %s",
        (action_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_queue_action_creates_then_upserts_the_active_action(db: Conn, enf_case: Seeded) -> None:
    cid = enf_case.case_id
    first = rpc(
        db,
        "queue_enforcement_action",
        {"case_id": cid, "action_type": "bank_levy", "metadata": {"bank": "Chase"}, "actor": "w1"},
    )
    assert action(db, first) == ("queued", None, {"bank": "Chase"}, False, "w1")
    assert kinds(db, str(cid))[-1] == "action_opened"
    n_events = len(kinds(db, str(cid)))

    # Same status again: same row, metadata merged, no new event (a retried call is harmless).
    again = rpc(
        db,
        "queue_enforcement_action",
        {"case_id": cid, "action_type": "bank_levy", "metadata": {"account": "x1"}},
    )
    assert again == first
    assert action(db, first)[2] == {"bank": "Chase", "account": "x1"}
    assert len(kinds(db, str(cid))) == n_events

    # Other types are independent actions.
    marshal = rpc(db, "queue_enforcement_action", {"case_id": cid, "action_type": "marshal"})
    assert marshal != first


def test_queue_action_walks_the_state_machine_and_closes(db: Conn, enf_case: Seeded) -> None:
    cid = enf_case.case_id
    aid = rpc(db, "queue_enforcement_action", {"case_id": cid, "action_type": "garnishment"})
    for status in ("in_progress", "awaiting_response", "in_progress"):
        assert (
            rpc(
                db,
                "queue_enforcement_action",
                {"case_id": cid, "action_type": "garnishment", "status": status},
            )
            == aid
        )
        assert action(db, aid)[0] == status
    rpc(
        db,
        "queue_enforcement_action",
        {
            "case_id": cid,
            "action_type": "garnishment",
            "status": "completed",
            "status_reason": "employer remits",
        },
    )
    assert action(db, aid)[:2] == ("completed", "employer remits")
    assert action(db, aid)[3] is True
    closing = [p for k, p in events(db, str(cid)) if k == "action_closed"]
    assert closing[-1]["from"] == "in_progress"
    assert closing[-1]["to"] == "completed"
    assert [k for k in kinds(db, str(cid)) if k.startswith("action_")] == [
        "action_opened",
        "action_status_changed",
        "action_status_changed",
        "action_status_changed",
        "action_closed",
    ]
    # A closed action is history: the next request opens a new one.
    new = rpc(db, "queue_enforcement_action", {"case_id": cid, "action_type": "garnishment"})
    assert new != aid


def test_queue_action_can_cancel(db: Conn, enf_case: Seeded) -> None:
    cid = enf_case.case_id
    aid = rpc(db, "queue_enforcement_action", {"case_id": cid, "action_type": "marshal"})
    rpc(
        db,
        "queue_enforcement_action",
        {"case_id": cid, "action_type": "marshal", "status": "cancelled"},
    )
    assert action(db, aid)[0] == "cancelled"
    assert action(db, aid)[3] is True


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        ([], "completed"),
        ([], "cancelled"),
        (["in_progress"], "queued"),
        (["awaiting_response"], "queued"),
    ],
)
def test_queue_action_refuses_transitions_that_make_no_sense(
    db: Conn, enf_case: Seeded, setup: list[str], status: str
) -> None:
    cid = enf_case.case_id
    for step in setup:
        rpc(
            db,
            "queue_enforcement_action",
            {"case_id": cid, "action_type": "bank_levy", "status": step},
        )
    refused(
        db,
        "DF003",
        "queue_enforcement_action",
        {"case_id": cid, "action_type": "bank_levy", "status": status},
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"action_type": "repossession"},
        {"action_type": "bank_levy", "status": "done"},
        {"action_type": "bank_levy", "metadata": "x"},
        {"action_type": "bank_levy", "status_reason": ""},
        {},
    ],
)
def test_queue_action_refuses_invalid_fields(
    db: Conn, enf_case: Seeded, extra: dict[str, Any]
) -> None:
    refused(db, "22023", "queue_enforcement_action", {"case_id": enf_case.case_id} | extra)


def test_one_active_action_per_type_is_a_table_rule(db: Conn, enf_case: Seeded) -> None:
    rpc(db, "queue_enforcement_action", {"case_id": enf_case.case_id, "action_type": "bank_levy"})
    with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
        db.execute(
            "insert into public.enforcement_actions (enforcement_case_id, action_type, status, "
            "created_by) values (%s, 'bank_levy', 'in_progress', 'direct')",
            (enf_case.case_id,),
        )


# --------------------------------------------------------------------------------------
# record_enforcement_payment


def balances(db: Conn, seeded: Seeded) -> tuple[Decimal, Decimal]:
    row = db.execute(
        "select c.current_balance, j.balance_due from public.enforcement_cases c "
        "join public.judgments j on j.id = c.judgment_id where c.id = %s",
        (seeded.case_id,),
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_payment_reduces_both_balances_and_records_the_event(db: Conn, enf_case: Seeded) -> None:
    result = rpc(
        db,
        "record_enforcement_payment",
        {
            "case_id": enf_case.case_id,
            "judgment_id": enf_case.judgment_id,
            "amount": "250.25",
            "received_at": "2026-02-03T12:00:00Z",
            "source": "garnishment",
            "document_path": "receipts/r1.pdf",
        },
    )
    assert result["case_balance"] == 749.75
    assert result["judgment_balance"] == 749.75
    assert balances(db, enf_case) == (Decimal("749.75"), Decimal("749.75"))
    row = db.execute(
        "select event_kind::text, payload, occurred_at, document_path "
        "from public.enforcement_events where id = %s",
        (result["event_id"],),
    ).fetchone()
    assert row is not None
    assert row[0] == "payment_received"
    assert row[1]["amount"] == 250.25
    assert row[1]["source"] == "garnishment"
    assert row[2].month == 2
    assert row[3] == "receipts/r1.pdf"
    assert one(
        db,
        "select delta -> 'current_balance' from public.enforcement_history "
        "where enforcement_case_id = %s and action = 'payment_recorded'",
        (enf_case.case_id,),
    ) == {"from": 1000.00, "to": 749.75}


def test_paying_the_exact_balance_is_allowed_and_more_is_rejected(
    db: Conn, enf_case: Seeded
) -> None:
    error = refused(
        db, "DF004", "record_enforcement_payment", {"case_id": enf_case.case_id, "amount": 1000.01}
    )
    assert "exceeds the balance" in str(error)
    rpc(db, "record_enforcement_payment", {"case_id": enf_case.case_id, "amount": 1000})
    assert balances(db, enf_case) == (Decimal("0.00"), Decimal("0.00"))
    refused(
        db, "DF004", "record_enforcement_payment", {"case_id": enf_case.case_id, "amount": 0.01}
    )


@pytest.mark.parametrize(
    "amount", [0, -5, "0", 1.001, "12.345", "ten", True, None, [], {"v": 1}, 1e15]
)
def test_payment_refuses_invalid_amounts(db: Conn, enf_case: Seeded, amount: Any) -> None:
    error = refused(
        db, "22023", "record_enforcement_payment", {"case_id": enf_case.case_id, "amount": amount}
    )
    assert "amount" in str(error)


def test_payment_refuses_a_judgment_that_is_not_the_cases(db: Conn, enf_case: Seeded) -> None:
    other = seed_judgment(db)
    error = refused(
        db,
        "22023",
        "record_enforcement_payment",
        {"case_id": enf_case.case_id, "judgment_id": other, "amount": 1},
    )
    assert "is not the judgment of case" in str(error)
    refused(
        db,
        "P0002",
        "record_enforcement_payment",
        {"case_id": enf_case.case_id, "judgment_id": new_id(), "amount": 1},
    )


def test_payment_refuses_a_future_receipt(db: Conn, enf_case: Seeded) -> None:
    refused(
        db,
        "22023",
        "record_enforcement_payment",
        {"case_id": enf_case.case_id, "amount": 1, "received_at": "2150-01-01T00:00:00Z"},
    )


# --------------------------------------------------------------------------------------
# issue_subpoena / record_subpoena_response


def test_issue_subpoena_writes_action_event_document_and_task(db: Conn, enf_case: Seeded) -> None:
    cid = str(enf_case.case_id)
    result = rpc(
        db,
        "issue_subpoena",
        {
            "case_id": cid,
            "recipient": "First National Bank",
            "recipient_type": "bank",
            "document_path": "subpoenas/2026/fnb.pdf",
            "due_at": "2030-06-01T00:00:00Z",
            "metadata": {"index_number": "123/26"},
            "actor": "ops",
        },
    )
    status, _, metadata, closed, _ = action(db, result["action_id"])
    assert (status, closed) == ("awaiting_response", False)
    assert metadata["recipient"] == "First National Bank"
    assert metadata["index_number"] == "123/26"
    kind, payload = db.execute(
        "select event_kind::text, payload from public.enforcement_events where id = %s",
        (result["event_id"],),
    ).fetchone() or (None, None)
    assert kind == "subpoena_issued"
    assert payload["recipient_type"] == "bank"
    assert (
        one(
            db,
            "select storage_path from public.enforcement_documents where id = %s",
            (result["document_id"],),
        )
        == "subpoenas/2026/fnb.pdf"
    )
    task = db.execute(
        "select kind, status, metadata ->> 'action_id', enforcement_case_id::text "
        "from public.plaintiff_tasks where id = %s",
        (result["task_id"],),
    ).fetchone()
    assert task == ("follow_up", "open", str(result["action_id"]), cid)
    # The case resurfaces no later than its SLA (14 days), which is before the due date.
    assert case_row(db, cid)["next_action_at"].year < 2030


def test_issue_subpoena_defaults_the_due_date_from_the_stage_sla(
    db: Conn, enf_case: Seeded
) -> None:
    result = rpc(
        db,
        "issue_subpoena",
        {"case_id": enf_case.case_id, "recipient": "Employer Inc", "document_path": "s/e.pdf"},
    )
    due = one(db, "select %s::timestamptz - now()", (result["due_at"],))
    assert due == timedelta(days=30)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"document_path": "s/a.pdf"}, "recipient is required"),
        ({"recipient": "Bank"}, "document_path is required"),
        ({"recipient": "Bank", "document_path": "s/a.pdf", "due_at": "2001-01-01"}, "future"),
        ({"recipient": "Bank", "document_path": "s/a.pdf", "recipient_type": "cat"}, "recipient"),
    ],
)
def test_issue_subpoena_refusals(
    db: Conn, enf_case: Seeded, extra: dict[str, Any], fragment: str
) -> None:
    error = refused(db, "22023", "issue_subpoena", {"case_id": enf_case.case_id} | extra)
    assert fragment in str(error)


def test_a_second_active_subpoena_is_a_duplicate(db: Conn, enf_case: Seeded) -> None:
    payload = {"case_id": enf_case.case_id, "recipient": "Bank", "document_path": "s/a.pdf"}
    rpc(db, "issue_subpoena", payload)
    assert "already has an active subpoena" in str(refused(db, "23505", "issue_subpoena", payload))


def test_response_closes_the_action_and_tasks_and_schedules_a_review(
    db: Conn, enf_case: Seeded
) -> None:
    cid = str(enf_case.case_id)
    issued = rpc(
        db,
        "issue_subpoena",
        {"case_id": cid, "recipient": "Bank", "document_path": "s/a.pdf", "due_at": "2031-01-01"},
    )
    result = rpc(
        db,
        "record_subpoena_response",
        {
            "action_id": str(issued["action_id"]),
            "outcome": "complied",
            "document_path": "s/answer.pdf",
            "response": {"accounts": ["checking"]},
            "review_due_at": "2030-01-01T00:00:00Z",
            "actor": "ops",
        },
    )
    status, reason, metadata, closed, _ = action(db, issued["action_id"])
    assert (status, reason, closed) == ("completed", "complied", True)
    assert metadata["response"]["outcome"] == "complied"
    assert metadata["response"]["details"] == {"accounts": ["checking"]}
    assert result["tasks_closed"] == 1
    assert (
        one(db, "select status from public.plaintiff_tasks where id = %s", (issued["task_id"],))
        == "done"
    )
    review = db.execute(
        "select kind, status, due_at from public.plaintiff_tasks where id = %s",
        (result["review_task_id"],),
    ).fetchone()
    assert review is not None
    assert review[:2] == ("review", "open")
    tail = kinds(db, cid)[-3:]
    assert tail == ["subpoena_complied", "action_closed", "review_scheduled"]
    # next_action_at only moves earlier: the SLA (14 days) is sooner than the 2030 review.
    assert case_row(db, cid)["next_action_at"].year < 2030


def test_response_by_case_pulls_next_action_to_the_review(db: Conn, enf_case: Seeded) -> None:
    cid = str(enf_case.case_id)
    rpc(db, "issue_subpoena", {"case_id": cid, "recipient": "Bank", "document_path": "s/a.pdf"})
    result = rpc(db, "record_subpoena_response", {"case_id": cid, "outcome": "no_response"})
    assert one(db, "select %s::timestamptz - now()", (result["next_action_at"],)) == timedelta(
        days=3
    )
    assert case_row(db, cid)["next_action_at"] == one(
        db, "select %s::timestamptz", (result["next_action_at"],)
    )
    assert "subpoena_response_recorded" in kinds(db, cid)


def test_response_refusals(db: Conn, enf_case: Seeded) -> None:
    cid = str(enf_case.case_id)
    refused(db, "22023", "record_subpoena_response", {"outcome": "partial"})
    refused(db, "P0002", "record_subpoena_response", {"case_id": cid, "outcome": "partial"})
    refused(db, "P0002", "record_subpoena_response", {"action_id": new_id(), "outcome": "partial"})
    levy = rpc(db, "queue_enforcement_action", {"case_id": cid, "action_type": "bank_levy"})
    assert "not a subpoena" in str(
        refused(
            db, "22023", "record_subpoena_response", {"action_id": str(levy), "outcome": "partial"}
        )
    )
    issued = rpc(
        db, "issue_subpoena", {"case_id": cid, "recipient": "Bank", "document_path": "s/a.pdf"}
    )
    aid = str(issued["action_id"])
    assert "document_path is required" in str(
        refused(db, "22023", "record_subpoena_response", {"action_id": aid, "outcome": "complied"})
    )
    refused(db, "22023", "record_subpoena_response", {"action_id": aid, "outcome": "maybe"})
    other = seed(db)
    assert "does not belong" in str(
        refused(
            db,
            "22023",
            "record_subpoena_response",
            {"action_id": aid, "case_id": other.case_id, "outcome": "partial"},
        )
    )
    rpc(db, "record_subpoena_response", {"action_id": aid, "outcome": "objected"})
    assert "already closed" in str(
        refused(db, "DF003", "record_subpoena_response", {"action_id": aid, "outcome": "partial"})
    )


def test_court_case_helpers_are_consistent(db: Conn) -> None:
    """Sanity check of the seed: a court case's tier is mirrored onto its judgment."""
    jid = seed_judgment(db)
    seed_court_case(db, jid, score="10", tier="tier3")
    assert one(db, "select collectability_tier from public.judgments where id = %s", (jid,)) == (
        "tier3"
    )
