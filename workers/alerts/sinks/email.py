"""Email over SMTP (smtplib): STARTTLS and AUTH when configured."""

from __future__ import annotations

import smtplib
import ssl
from typing import Any

import psycopg

from workers.alerts.models import Delivery, SinkName
from workers.alerts.render import email_message
from workers.alerts.sinks.base import DeliveryError


def split_addresses(value: str | None) -> list[str]:
    """``"a@x, b@y"`` -> ``["a@x", "b@y"]``."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class EmailSink:
    """One SMTP session per delivery: alerts are rare enough, and a session cannot go stale."""

    name: SinkName = "email"
    uses_connection = False

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        recipients: list[str],
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._recipients = recipients
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout

    def deliver(self, delivery: Delivery, conn: psycopg.Connection[Any]) -> None:
        recipients = list(delivery.target.get("email_to") or self._recipients)
        if not recipients:
            raise DeliveryError(
                "email: no recipients (set DRAGONFLY_ALERT_EMAIL_TO or the rule's email_to)",
                permanent=True,
            )
        message = email_message(delivery, sender=self._sender, recipients=recipients)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                # Recipients refused while others accepted are not retried: a retry would
                # repeat the email for those who got it.
                smtp.send_message(message, from_addr=self._sender, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(
                f"email: every recipient refused: {exc.recipients}", permanent=True
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"email: authentication failed: {exc}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            raise DeliveryError(
                f"email: SMTP {exc.smtp_code} {exc.smtp_error!r}", permanent=permanent
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        return None
