"""Routing: which (rule, sink) pairs an event goes to. Pure functions, no I/O.

The rules themselves live in ``dragonfly.alert_rules`` (seeded by the migration
``20261127006020_alert_default_rules.sql``, managed with ``dragonfly alerts rules``).
An enabled rule matches an event when every condition it sets holds:

- ``event_kinds``: the event's kind is one of them (null: any kind);
- ``tiers``: the case's effective tier is one of them (null: any tier, also none);
- ``min_amount``: the alert amount (the event payload's ``amount``, else the case's
  current balance) is at least this (null: no threshold);
- ``tenant_id``: the event's case is in this tenant (null: any tenant).

A matching rule yields one delivery per sink. Two rules may send the same event to
the same sink; each is its own delivery (the record is per event, rule and sink).
"""

from __future__ import annotations

from collections.abc import Iterable

from workers.alerts.models import AlertEvent, PlannedDelivery, Rule


def matches(rule: Rule, event: AlertEvent) -> bool:
    """Whether ``rule`` routes ``event`` (a disabled rule never does)."""
    if not rule.enabled:
        return False
    if rule.tenant_id is not None and event.tenant_id != rule.tenant_id:
        return False
    if rule.event_kinds is not None and event.event_kind not in rule.event_kinds:
        return False
    if rule.tiers is not None and event.tier not in rule.tiers:
        return False
    return rule.min_amount is None or event.amount >= rule.min_amount


def route(rules: Iterable[Rule], event: AlertEvent) -> list[PlannedDelivery]:
    """The deliveries ``event`` needs: one per sink of every matching rule, by rule name."""
    planned: list[PlannedDelivery] = []
    for rule in sorted(rules, key=lambda r: r.name):
        if not matches(rule, event):
            continue
        for sink in dict.fromkeys(rule.sinks):
            planned.append(
                PlannedDelivery(event=event, rule=rule.name, sink=sink, target=rule.target(sink))
            )
    return planned
