"""The SMTP adapter: hand one message to the configured mail server.

``SmtpMailer.send`` returns once the server has accepted the message (its reply
to DATA); a failure to say QUIT afterwards is ignored, since the message is
already the server's. Errors are classified the way SMTP itself does: 4xx
replies, timeouts and dropped connections are transient; 5xx replies (refused
sender or recipient, failed authentication, rejected content) are permanent.
Outreach messages have exactly one recipient, so a refused recipient means the
whole message was refused.

Each error says whether the message may have reached the server anyway
(``maybe_sent``): a reply code or a failed connection means it did not; a
conversation that broke off (timeout, dropped connection) after the message was
being handed over may have. Outreach records the email's intent before sending
and, unless ``maybe_sent``, withdraws it on failure (docs/outreach.md).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from workers.runtime import PermanentError, TransientError


class MailTemporarilyFailed(TransientError):
    """The server could not take the message now (4xx, timeout, connection lost)."""

    def __init__(self, message: str, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


class MailRejected(PermanentError):
    """The server refused the message for good (5xx)."""

    maybe_sent = False


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver to the server; raise MailTemporarilyFailed or MailRejected."""
        ...


class SmtpMailer:
    """smtplib over a fresh connection per message (outreach volumes are small)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls: bool,
        username: str | None,
        password: str | None,
        timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout = timeout

    def send(self, message: EmailMessage) -> None:
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailTemporarilyFailed(
                f"cannot connect to SMTP {self.host}:{self.port}: {exc}"
            ) from exc
        handing_over = False
        try:
            try:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password or "")
                handing_over = True
                smtp.send_message(message)
            except smtplib.SMTPResponseException as exc:
                raise _classify(exc.smtp_code, exc.smtp_error) from exc
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                raise _classify(min(codes, default=550), str(exc.recipients)) from exc
            except (OSError, smtplib.SMTPException) as exc:
                # No reply to go by: once the message was being handed over, the server
                # may have taken it before the conversation broke off.
                raise MailTemporarilyFailed(
                    f"SMTP conversation failed: {exc}", maybe_sent=handing_over
                ) from exc
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()


def _classify(code: int, text: bytes | str) -> TransientError | PermanentError:
    reply = text.decode(errors="replace") if isinstance(text, bytes) else text
    message = f"SMTP {code}: {reply}"
    if 400 <= code < 500:
        return MailTemporarilyFailed(message)
    return MailRejected(message)
