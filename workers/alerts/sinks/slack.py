"""Slack incoming webhook: one HTTP POST of a JSON message per delivery."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from workers.alerts.models import Delivery, SinkName
from workers.alerts.render import slack_message
from workers.alerts.sinks.base import DeliveryError

# Statuses worth retrying; every other 4xx means the webhook or the message is wrong
# (no_service, invalid_payload, channel_is_archived...) and will not get better.
_TRANSIENT_4XX = frozenset({408, 425, 429})


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class SlackSink:
    """Posts to one incoming-webhook URL through a kept-alive httpx client."""

    name: SinkName = "slack"
    uses_connection = False

    def __init__(self, webhook_url: str, *, timeout: float = 10.0) -> None:
        self._url = webhook_url
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)

    def deliver(self, delivery: Delivery, conn: psycopg.Connection[Any]) -> None:
        try:
            response = self._client.post(self._url, json=slack_message(delivery))
        except httpx.HTTPError as exc:
            raise DeliveryError(f"slack: {type(exc).__name__}: {exc}") from exc
        if response.is_success:
            return
        body = response.text[:200].strip()
        message = f"slack: HTTP {response.status_code} {body}".rstrip()
        if response.status_code >= 500 or response.status_code in _TRANSIENT_4XX:
            raise DeliveryError(message, retry_after=_retry_after(response))
        raise DeliveryError(message, permanent=True)

    def close(self) -> None:
        self._client.close()
