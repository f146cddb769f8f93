"""queue_job fan-out: enqueue a job for the event's case, in the delivery's own transaction.

This sink is exactly-once: public.queue_job() writes in the same transaction that marks the
delivery delivered, and it deduplicates on the key ``alert:<event_id>:<rule>`` besides.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from workers.alerts.models import Delivery, SinkName
from workers.alerts.sinks.base import DeliveryError

QUEUE_JOB = "select public.queue_job(%(envelope)s::jsonb)"


class QueueSink:
    """Calls ``public.queue_job`` with the rule's job kind and payload plus ``case_id``, in
    the case's tenant."""

    name: SinkName = "queue"
    uses_connection = True

    def deliver(self, delivery: Delivery, conn: psycopg.Connection[Any]) -> None:
        kind = delivery.target.get("job_kind")
        if not isinstance(kind, str) or not kind:
            raise DeliveryError("queue: the rule names no job_kind", permanent=True)
        extra = delivery.target.get("job_payload") or {}
        payload = {**extra, "case_id": str(delivery.case_id)}
        envelope: dict[str, Any] = {
            "kind": kind,
            "idempotency_key": delivery.idempotency_key,
            "payload": payload,
            "requested_by": f"alert:{delivery.rule}",
        }
        # The job names its case's tenant (queue_job() checks it is the case's).
        if delivery.context.tenant_id is not None:
            envelope["tenant"] = str(delivery.context.tenant_id)
        try:
            conn.execute(QUEUE_JOB, {"envelope": json.dumps(envelope)})
        except psycopg.errors.InvalidParameterValue as exc:
            raise DeliveryError(f"queue: {exc}", permanent=True) from exc
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            raise DeliveryError(f"queue: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        return None
