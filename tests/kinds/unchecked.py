"""Jobs put on their queue past queue_job()'s checks at the door.

queue_job() refuses a malformed job, so a test of what a *worker* does with one (a message
replayed from before a payload change, one sent by the fleet's own tooling, a case deleted
after its job was enqueued) sends the envelope itself, with the fleet's (internal)
provenance so that only the worker's own validation decides.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.runtime.support import INTERNAL


def send_unchecked(
    conn: psycopg.Connection[Any], kind: str, key: str, payload: dict[str, Any]
) -> int:
    """pgmq.send() a job envelope of ``kind`` as queue_job() would build it; its msg_id."""
    envelope = {
        "kind": kind,
        "idempotency_key": key,
        "payload": payload,
        "requested_by": None,
        "provenance": INTERNAL,
    }
    row = conn.execute("select pgmq.send(%s, %s)", (kind, Jsonb(envelope))).fetchone()
    assert row is not None
    return int(row[0])
