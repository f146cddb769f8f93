"""Alert sinks: Slack webhook, SMTP email, queue_job. Built from settings in one place."""

from __future__ import annotations

from workers.alerts.models import SinkName
from workers.alerts.sinks.base import DeliveryError, Sink
from workers.alerts.sinks.email import EmailSink, split_addresses
from workers.alerts.sinks.queue import QueueSink
from workers.alerts.sinks.slack import SlackSink
from workers.settings import Settings

__all__ = ["DeliveryError", "EmailSink", "QueueSink", "Sink", "SlackSink", "build_sinks"]


def build_sinks(settings: Settings) -> dict[SinkName, Sink]:
    """The sinks this process can deliver to. An unconfigured sink is absent: its
    deliveries stay pending for a listener that has it."""
    sinks: dict[SinkName, Sink] = {"queue": QueueSink()}
    if settings.slack_webhook_url is not None:
        url = settings.slack_webhook_url.get_secret_value().strip()
        if url:
            sinks["slack"] = SlackSink(url, timeout=settings.alert_http_timeout)
    if settings.smtp_host:
        sinks["email"] = EmailSink(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.smtp_from,
            recipients=split_addresses(settings.alert_email_to),
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout,
        )
    return sinks
