"""Which channel an outreach uses, from the plaintiff's status and contact data.

A pure rule table, first match wins (docs/outreach.md repeats it):

1. status ``do_not_call`` or ``bad_number``      -> nobody is contacted (``suppressed``)
2. a channel was requested explicitly              -> that channel if usable, else ``no_channel``
3. status is warm (``reached_warm``, ``reached_hot``,
   ``callback_scheduled``) and a phone is on file  -> ``call`` (a person follows up)
4. an email is on file and SMTP is configured      -> ``email``
5. a phone is on file                              -> ``call``
6. otherwise                                       -> ``no_channel``

A call is a task in ``plaintiff_tasks`` that Ops works through ``log_call_outcome``;
an email goes out over SMTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Channel = Literal["email", "call"]
Requested = Literal["auto", "email", "call"]
Outcome = Literal["email", "call", "suppressed", "no_channel"]

SUPPRESSED_STATUSES: Final = frozenset({"do_not_call", "bad_number"})
WARM_STATUSES: Final = frozenset({"reached_warm", "reached_hot", "callback_scheduled"})


@dataclass(frozen=True)
class ChannelDecision:
    outcome: Outcome
    rule: str
    """Short reason, stored on the attempt row (``detail``)."""

    @property
    def channel(self) -> Channel | None:
        if self.outcome == "email":
            return "email"
        if self.outcome == "call":
            return "call"
        return None


def choose_channel(
    *,
    status: str,
    has_email: bool,
    has_phone: bool,
    email_enabled: bool,
    requested: Requested = "auto",
) -> ChannelDecision:
    if status in SUPPRESSED_STATUSES:
        return ChannelDecision("suppressed", f"status {status}")
    can_email = has_email and email_enabled
    if requested == "email":
        if can_email:
            return ChannelDecision("email", "email requested")
        why = "no email on file" if not has_email else "SMTP not configured"
        return ChannelDecision("no_channel", f"email requested but {why}")
    if requested == "call":
        if has_phone:
            return ChannelDecision("call", "call requested")
        return ChannelDecision("no_channel", "call requested but no phone on file")
    if status in WARM_STATUSES and has_phone:
        return ChannelDecision("call", f"warm plaintiff ({status}) with a phone")
    if can_email:
        return ChannelDecision("email", "email on file")
    if has_phone:
        return ChannelDecision("call", "phone on file")
    if has_email:
        return ChannelDecision("no_channel", "email on file but SMTP not configured; no phone")
    return ChannelDecision("no_channel", "no email or phone on file")
