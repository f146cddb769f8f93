"""The outreach email: a plain-text message with a Message-ID derived from the outreach.

The Message-ID is a hash of the outreach key, so a message sent again after a crash
(docs/outreach.md, "Exactly one email") carries the same id as the first, and mail
systems that deduplicate on Message-ID show it once.

No header carries caller text as it came: ``X-Dragonfly-Campaign`` is the campaign as a
token (:func:`campaign_token`), and the subject is chosen from a fixed list.
"""

from __future__ import annotations

import hashlib
import re
from email.message import EmailMessage
from email.utils import formataddr

CAMPAIGN_TOKEN_MAX = 56
"""Longest ``X-Dragonfly-Campaign`` value: with the header's name, one line of 78
characters, which mail software never folds."""

# The shape of a public.outreach_campaigns name (its check constraint, here bounded by
# CAMPAIGN_TOKEN_MAX): such a name is its own token.
_CAMPAIGN_NAME = re.compile(rf"[a-z0-9][a-z0-9._-]{{0,{CAMPAIGN_TOKEN_MAX - 1}}}")
_NOT_TOKEN = re.compile(r"[^a-z0-9._-]+")

_SUBJECTS = {
    "new_judgment": "Your judgment: how Dragonfly can help you collect",
    "follow_up": "Following up on your judgment",
    "payment_received": "A payment was received on your judgment",
}


def message_id(outreach_key: str, from_address: str) -> str:
    domain = from_address.rpartition("@")[2] or "dragonfly.invalid"
    digest = hashlib.sha256(outreach_key.encode()).hexdigest()[:32]
    return f"<outreach.{digest}@{domain}>"


def campaign_token(campaign: str | None) -> str | None:
    """The ``X-Dragonfly-Campaign`` value of a campaign: printable ASCII from
    ``[a-z0-9._-]``, at most 56 characters, so no caller text can shape a header.

    A name shaped like a public.outreach_campaigns name, of at most 56 characters, is
    kept as it is. Anything else (a campaign of the fleet's or an operator's that is not
    in the table, a longer name) is lowercased, every run of other characters becomes
    ``-``, and a hash of the original is appended, so that two different campaigns do not
    share a token. None without a campaign.
    """
    if not campaign:
        return None
    if _CAMPAIGN_NAME.fullmatch(campaign):
        return campaign
    digest = hashlib.sha256(campaign.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    stem = _NOT_TOKEN.sub("-", campaign.lower()).strip("-._")
    stem = stem[: CAMPAIGN_TOKEN_MAX - len(digest) - 1].rstrip("-._")
    return f"{stem}-{digest}" if stem else f"campaign-{digest}"


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
    token = campaign_token(campaign)
    if token:
        msg["X-Dragonfly-Campaign"] = token
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
