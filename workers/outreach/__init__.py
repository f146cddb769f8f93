"""The outreach job kind: reach a plaintiff once, by the right channel, at a decent hour.

- :mod:`workers.outreach.payload` — the payload model;
- :mod:`workers.outreach.channel` — the channel rule table;
- :mod:`workers.outreach.quiet_hours` — quiet hours in the plaintiff's zone;
- :mod:`workers.outreach.message` — the email;
- :mod:`workers.outreach.mailer` — the SMTP adapter;
- :mod:`workers.outreach.handler` — the outside phase (the email) and the handler.

docs/outreach.md is the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.outreach.handler import OutreachConfig, fetch, handle
from workers.outreach.mailer import SmtpMailer
from workers.outreach.payload import OutreachPayload
from workers.outreach.quiet_hours import QuietHours
from workers.runtime import JobKind
from workers.settings import Settings


def make_adapters(settings: Settings) -> Mapping[str, Any]:
    """The SMTP mailer when ``DRAGONFLY_SMTP_HOST`` is set (else email is off) and the
    outreach configuration (quiet hours, From address, the weekly contact cap)."""
    mailer = None
    if settings.smtp_host:
        password = settings.smtp_password
        mailer = SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=password.get_secret_value() if password is not None else None,
            timeout=settings.smtp_timeout,
        )
    config = OutreachConfig(
        quiet_hours=QuietHours.from_settings(settings.quiet_hours_start, settings.quiet_hours_end),
        from_address=settings.outreach_from_email or settings.smtp_from,
        max_emails_per_week=settings.outreach_max_emails_per_week,
        max_calls_per_week=settings.outreach_max_calls_per_week,
    )
    return {"mailer": mailer, "outreach_config": config}


# The email goes out in the outside phase (fetch), after its intent committed; handle
# records the attempt in the job's transaction (docs/outreach.md, "At most one email").
# One job per batch: the record of a sent email should not wait behind other sends.
JOB = JobKind(
    kind="outreach",
    payload=OutreachPayload,
    handle=handle,
    fetch=fetch,
    adapters=make_adapters,
    batch_size=1,
)

__all__ = ["JOB", "OutreachPayload", "make_adapters"]
