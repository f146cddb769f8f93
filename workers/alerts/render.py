"""What an alert says: one summary line, a Slack message, an email. Pure functions.

Every message carries the delivery's reference (alert id, event id, rule). A crash
between sending and recording can repeat an alert once (docs/alerts.md); the
reference lets a reader see that two messages are the same alert.
"""

from __future__ import annotations

from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from workers.alerts.models import AlertEvent, Delivery


def money(amount: Decimal) -> str:
    """``12500`` -> ``$12,500.00``."""
    return f"${amount:,.2f}"


def kind_title(kind: str) -> str:
    """``bank_levy_served`` -> ``Bank levy served``."""
    return kind.replace("_", " ").capitalize()


def case_label(event: AlertEvent) -> str:
    """The case number, or the case id when the judgment has no court case yet."""
    return event.case_number or f"case id {event.case_id}"


def facts(event: AlertEvent) -> list[tuple[str, str]]:
    """The (label, value) pairs every message shows, in order."""
    rows = [
        ("Case", case_label(event)),
        ("Tenant", event.tenant_label),
        ("Kind", event.event_kind),
        ("Amount", money(event.amount)),
    ]
    if event.event_amount is not None:
        rows.append(("Balance", money(event.balance)))
    rows += [
        ("Stage", event.stage + (" (closed)" if event.case_closed else "")),
        ("Tier", event.tier or "none"),
    ]
    if event.debtor_name:
        rows.append(("Debtor", event.debtor_name))
    rows.append(("Occurred", event.occurred_at.isoformat(timespec="seconds")))
    return rows


def summary(event: AlertEvent) -> str:
    """One line: ``Bank levy served · case 2024-CV-0042 · tenant acme · amount ...``."""
    parts = [
        kind_title(event.event_kind),
        f"case {case_label(event)}",
        f"tenant {event.tenant_slug or 'unknown'}",
        f"kind {event.event_kind}",
        f"amount {money(event.amount)}",
        f"stage {event.stage}",
        f"tier {event.tier or 'none'}",
    ]
    return " · ".join(parts)


def slack_message(delivery: Delivery) -> dict[str, Any]:
    """An incoming-webhook body: ``text`` (notifications, fallback) and Block Kit blocks."""
    event = delivery.context
    text = f":rotating_light: {summary(event)}"
    fields = [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in facts(event)]
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*{kind_title(event.event_kind)}* on case *{case_label(event)}*",
                },
            },
            # Slack allows at most 10 fields per section.
            {"type": "section", "fields": fields[:10]},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": delivery.reference}],
            },
        ],
    }


def email_message(delivery: Delivery, *, sender: str, recipients: list[str]) -> EmailMessage:
    """A plain-text email; its Message-ID comes from the delivery, so a repeat is one thread."""
    event = delivery.context
    message = EmailMessage()
    message["Subject"] = f"[Dragonfly] {summary(event)}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(event.occurred_at)
    domain = sender.rpartition("@")[2] or "dragonfly.invalid"
    message["Message-ID"] = f"<alert.{event.event_id}.{delivery.rule}@{domain}>"
    message["X-Dragonfly-Alert"] = delivery.reference
    width = max(len(label) for label, _ in facts(event))
    lines = [f"{kind_title(event.event_kind)} on case {case_label(event)}", ""]
    lines += [f"{label:<{width}}  {value}" for label, value in facts(event)]
    lines += ["", f"Reference: {delivery.reference}"]
    message.set_content("\n".join(lines) + "\n")
    return message
