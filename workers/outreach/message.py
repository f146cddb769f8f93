"""The outreach email: a plain-text message with a Message-ID derived from the outreach.

The Message-ID is a hash of the outreach key, so a message sent again after a crash
(docs/outreach.md, "Exactly one email") carries the same id as the first, and mail
systems that deduplicate on Message-ID show it once.
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import formataddr

_SUBJECTS = {
    "new_judgment": "Your judgment: how Dragonfly can help you collect",
    "follow_up": "Following up on your judgment",
    "payment_received": "A payment was received on your judgment",
}


def message_id(outreach_key: str, from_address: str) -> str:
    domain = from_address.rpartition("@")[2] or "dragonfly.invalid"
    digest = hashlib.sha256(outreach_key.encode()).hexdigest()[:32]
    return f"<outreach.{digest}@{domain}>"


def subject_for(reason: str | None, campaign: str | None) -> str:
    if reason and reason in _SUBJECTS:
        return _SUBJECTS[reason]
    return "About your judgment with Dragonfly"


def render_email(
    *,
    to_name: str,
    to_address: str,
    from_address: str,
    reason: str | None,
    campaign: str | None,
    outreach_key: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = formataddr(("Dragonfly", from_address))
    msg["To"] = formataddr((to_name, to_address))
    msg["Subject"] = subject_for(reason, campaign)
    msg["Message-ID"] = message_id(outreach_key, from_address)
    msg["X-Dragonfly-Outreach"] = hashlib.sha256(outreach_key.encode()).hexdigest()[:16]
    if campaign:
        msg["X-Dragonfly-Campaign"] = campaign
    lines = [
        f"Dear {to_name},",
        "",
        "We are writing about the money judgment you hold. Dragonfly enforces judgments on",
        "behalf of creditors: we locate the debtor's assets and income and pursue collection.",
        "",
        "Reply to this email or call us to talk about your case.",
        "",
        "If you would rather not hear from us, reply with STOP and we will not contact you again.",
        "",
        "-- Dragonfly",
    ]
    msg.set_content("\n".join(lines))
    return msg
