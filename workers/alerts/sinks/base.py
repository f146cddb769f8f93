"""The sink interface and its one error type."""

from __future__ import annotations

from typing import Any, Protocol

import psycopg

from workers.alerts.models import Delivery, SinkName
from workers.redact import scrub


class DeliveryError(Exception):
    """A delivery attempt failed.

    ``permanent``: retrying cannot help (a 4xx from Slack, a refused recipient); the
    delivery goes dead at once. ``retry_after``: the earliest sensible retry, in seconds.
    The message is scrubbed (:func:`workers.redact.scrub`): it quotes what the service
    answered, which may echo the webhook URL or a credential.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(scrub(message))
        self.permanent = permanent
        self.retry_after = retry_after


class Sink(Protocol):
    """Sends one delivery. Raises DeliveryError on failure; returns on success."""

    name: SinkName
    uses_connection: bool
    """True when ``deliver`` writes through ``conn`` (it then runs in a savepoint)."""

    def deliver(self, delivery: Delivery, conn: psycopg.Connection[Any]) -> None: ...

    def close(self) -> None: ...
