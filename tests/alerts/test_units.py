"""Pure parts: routing rules, the retry decision, message text, notification parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from workers.alerts import render, store
from workers.alerts.models import AlertEvent, Delivery, Notification, Rule
from workers.alerts.retry import RetryPolicy, decide
from workers.alerts.rules import matches, route
from workers.alerts.sinks import DeliveryError

TENANT_A = uuid4()
TENANT_B = uuid4()


def event(**overrides: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "event_id": uuid4(),
        "case_id": uuid4(),
        "event_kind": "bank_levy_served",
        "occurred_at": datetime(2026, 11, 27, 15, 4, 5, tzinfo=UTC),
        "created_at": datetime(2026, 11, 27, 15, 4, 6, tzinfo=UTC),
        "payload": {},
        "case_number": "2026-CV-0042",
        "debtor_name": "John Debtor",
        "tier": "tier1",
        "stage": "bank_levy",
        "balance": Decimal("12500.00"),
        "tenant_id": TENANT_A,
        "tenant_slug": "acme",
    }
    fields.update(overrides)
    return AlertEvent(**fields)


def rule(**overrides: Any) -> Rule:
    fields: dict[str, Any] = {"name": "r", "sinks": ["slack"]}
    fields.update(overrides)
    return Rule(**fields)


# -- rules ---------------------------------------------------------------------


def test_a_rule_without_conditions_matches_everything() -> None:
    assert matches(rule(), event())
    assert matches(rule(), event(tier=None, event_kind="note_added"))


def test_disabled_rules_match_nothing() -> None:
    assert not matches(rule(enabled=False), event())


def test_a_rule_of_a_tenant_matches_that_tenants_events_only() -> None:
    assert matches(rule(tenant_id=TENANT_A), event())
    assert not matches(rule(tenant_id=TENANT_B), event())
    assert not matches(rule(tenant_id=TENANT_A), event(tenant_id=None, tenant_slug=None))
    assert matches(rule(tenant_id=None), event(tenant_id=TENANT_B, tenant_slug="beta"))
    planned = route([rule(name="b-only", tenant_id=TENANT_B), rule(name="all")], event())
    assert [p.rule for p in planned] == ["all"]


@pytest.mark.parametrize(
    ("kinds", "kind", "expected"),
    [
        (["bank_levy_served"], "bank_levy_served", True),
        (["bank_levy_served"], "bank_levy_filed", False),
        (["payment_received", "case_closed"], "case_closed", True),
    ],
)
def test_kind_condition(kinds: list[str], kind: str, expected: bool) -> None:
    assert matches(rule(event_kinds=kinds), event(event_kind=kind)) is expected


@pytest.mark.parametrize(
    ("tiers", "tier", "expected"),
    [(["tier0", "tier1"], "tier1", True), (["tier0"], "tier1", False), (["tier0"], None, False)],
)
def test_tier_condition(tiers: list[str], tier: str | None, expected: bool) -> None:
    assert matches(rule(tiers=tiers), event(tier=tier)) is expected


@pytest.mark.parametrize(
    ("payload", "balance", "expected_amount"),
    [
        ({"amount": 250}, "99999", Decimal(250)),
        ({"amount": "1234.50"}, "1", Decimal("1234.50")),
        ({"amount": "n/a"}, "700", Decimal(700)),
        ({"amount": True}, "700", Decimal(700)),
        ({"amount": None}, "700", Decimal(700)),
        ({"amount": {"value": 3}}, "700", Decimal(700)),
        ({"amount": "NaN"}, "700", Decimal(700)),
        ({}, "700", Decimal(700)),
    ],
)
def test_alert_amount_is_the_events_own_else_the_balance(
    payload: dict[str, Any], balance: str, expected_amount: Decimal
) -> None:
    assert event(payload=payload, balance=Decimal(balance)).amount == expected_amount


def test_amount_threshold_is_inclusive() -> None:
    threshold = rule(min_amount=Decimal(1000))
    assert matches(threshold, event(payload={"amount": 1000}))
    assert not matches(threshold, event(payload={"amount": "999.99"}))


def test_route_yields_one_delivery_per_sink_of_each_matching_rule() -> None:
    rules = [
        rule(name="b_mail", sinks=["email"], email_to=["ops@example.com"]),
        rule(name="a_both", sinks=["slack", "queue", "slack"], job_kind="enforce"),
        rule(name="c_never", event_kinds=["case_closed"]),
    ]
    planned = route(rules, event())
    assert [(p.rule, p.sink) for p in planned] == [
        ("a_both", "slack"),
        ("a_both", "queue"),
        ("b_mail", "email"),
    ]
    assert planned[1].target == {"job_kind": "enforce", "job_payload": {}}
    assert planned[2].target == {"email_to": ["ops@example.com"]}


# -- retry ---------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_seconds=5, max_seconds=60)
    delays = [decide(policy, n, DeliveryError("x")).delay_seconds for n in range(1, 7)]
    assert delays == [5, 10, 20, 40, 60, 60]


def test_last_attempt_and_permanent_errors_are_dead() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert not decide(policy, 2, DeliveryError("x")).dead
    assert decide(policy, 3, DeliveryError("x")).reason == "max_attempts"
    assert decide(policy, 1, DeliveryError("x", permanent=True)).reason == "permanent"


def test_retry_after_is_respected_within_the_cap() -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=1, max_seconds=100)
    assert decide(policy, 1, DeliveryError("x", retry_after=30)).delay_seconds == 30
    assert decide(policy, 1, DeliveryError("x", retry_after=9999)).delay_seconds == 100


# -- messages ------------------------------------------------------------------


def delivery(e: AlertEvent) -> Delivery:
    return Delivery(
        id=7,
        event_id=e.event_id,
        case_id=e.case_id,
        event_kind=e.event_kind,
        event_created_at=e.created_at,
        rule="levies",
        sink="slack",
        context=e,
        status="pending",
        attempts=0,
        created_at=e.created_at,
    )


def test_summary_names_case_kind_amount_stage_and_tier() -> None:
    e = event(payload={"amount": 4200})
    assert render.summary(e) == (
        "Bank levy served · case 2026-CV-0042 · tenant acme · kind bank_levy_served"
        " · amount $4,200.00 · stage bank_levy · tier tier1"
    )
    assert render.summary(event(case_number=None, tier=None)).endswith("tier none")
    # A delivery stored before alerts named tenants still renders.
    old = event(tenant_id=None, tenant_slug=None)
    assert " · tenant unknown · " in render.summary(old)
    assert ("Tenant", "unknown") in render.facts(old)


def test_slack_message_has_fields_and_the_reference() -> None:
    e = event()
    body = render.slack_message(delivery(e))
    assert body["text"].startswith(":rotating_light: Bank levy served · case 2026-CV-0042")
    labels = [f["text"].split("\n")[0] for f in body["blocks"][1]["fields"]]
    assert labels == [
        "*Case*",
        "*Tenant*",
        "*Kind*",
        "*Amount*",
        "*Stage*",
        "*Tier*",
        "*Debtor*",
        "*Occurred*",
    ]
    assert body["blocks"][1]["fields"][1]["text"] == f"*Tenant*\nacme ({TENANT_A})"
    assert body["blocks"][2]["elements"][0]["text"] == f"alert 7 · event {e.event_id} · rule levies"


def test_email_message_id_is_stable_per_event_and_rule() -> None:
    e = event()
    first = render.email_message(delivery(e), sender="a@ops.test", recipients=["b@ops.test"])
    again = render.email_message(delivery(e), sender="a@ops.test", recipients=["b@ops.test"])
    assert first["Message-ID"] == again["Message-ID"] == f"<alert.{e.event_id}.levies@ops.test>"
    assert first["To"] == "b@ops.test"


# -- boundaries ----------------------------------------------------------------


def test_notification_payload() -> None:
    event_id = uuid4()
    note = Notification.model_validate_json(
        f'{{"event_id": "{event_id}", "case_id": "{uuid4()}", "kind": "x", "extra": 1}}'
    )
    assert note.event_id == event_id
    with pytest.raises(ValidationError):
        Notification.model_validate_json('{"case_id": "nope"}')


def test_every_named_query_is_loaded() -> None:
    names = set(store.queries())
    assert {
        "load_rules",
        "event_contexts",
        "unrouted_events",
        "record_routing",
        "advance_cursor",
        "claim_due_delivery",
        "mark_delivered",
        "mark_failed",
        "retry_deliveries",
        "upsert_rule",
    } <= names
    assert all(q and not q.endswith(";") for q in store.queries().values())
