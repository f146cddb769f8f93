"""Dead letters are bounded in size: a message over the limit is kept as a stand-in, which
replay refuses; a message within it is kept whole and replays as before.

The jobs fail for real in a batch runner logged in as the fleet's role, so the dead letters
are written by the runtime's own path (dead_letter_job).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.harness import worker_url
from tests.runtime.support import make_runner, queue_length, scalar
from workers.runtime import queries
from workers.runtime.watchdog import Slot

Conn = psycopg.Connection[Any]
LIMIT = 1048576  # the documented default, 1 MiB of JSON text

PROVENANCE = {"level": "operator", "role": "authenticated", "sub": "u-1", "email": "op@example.com"}


@pytest.fixture
def fleet(runtime_db: str) -> Iterator[Conn]:
    """A connection logged in as the fleet's role, as workers run."""
    with psycopg.connect(worker_url(runtime_db), autocommit=True) as c:
        yield c


def envelope(key: str, pad: int) -> dict[str, Any]:
    """A job as queue_job() sends it, failing permanently, with ``pad`` bytes of ballast."""
    return {
        "kind": "enrich",
        "idempotency_key": key,
        "payload": {"fail": "permanent", "pad": "x" * pad},
        "requested_by": "alice@example.com",
        "provenance": PROVENANCE,
        "enqueued_at": "2026-12-02T10:00:00.000000Z",
    }


def dead_letter_of(conn: Conn, fleet: Conn, message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message`` with a header, run it to its permanent failure, return its dead letter."""
    msg_id = scalar(
        conn,
        "select pgmq.send('enrich', %s, %s)",
        (Jsonb(message), Jsonb({"trace": "t-1"})),
    )
    report = make_runner().run_deliveries(fleet, Slot(0), queries.read(fleet, "enrich", 30, 10))
    assert report is not None
    row = conn.execute(
        "select id, kind, idempotency_key, message, headers, reason, last_error,"
        " truncated_from_bytes, status from dragonfly.dead_letters where msg_id = %s",
        (msg_id,),
    ).fetchone()
    assert row is not None, "the job was not dead-lettered"
    names = ("id", "kind", "key", "message", "headers", "reason", "error", "truncated", "status")
    return dict(zip(names, row, strict=True))


def test_a_message_over_the_limit_is_kept_as_a_stand_in_and_replay_is_refused(
    conn: Conn, fleet: Conn
) -> None:
    big = envelope("big-1", 5 * 1024 * 1024)
    size = len(json.dumps(big, separators=(", ", ": ")).encode()) + len('{"trace": "t-1"}')
    dead = dead_letter_of(conn, fleet, big)

    assert (dead["kind"], dead["key"], dead["reason"]) == ("enrich", "big-1", "permanent")
    assert "the vendor rejected the request" in dead["error"]
    assert dead["headers"] is None
    assert dead["truncated"] == size
    stand_in = dead["message"]
    cut = stand_in.pop("truncated")
    assert stand_in == {
        "kind": "enrich",
        "idempotency_key": "big-1",
        "requested_by": "alice@example.com",
        "provenance": PROVENANCE,
        "enqueued_at": "2026-12-02T10:00:00.000000Z",
    }
    assert cut["original_bytes"] == size
    assert cut["limit_bytes"] == LIMIT
    assert cut["headers_bytes"] == len('{"trace": "t-1"}')
    assert len(cut["prefix"]) == 4096
    assert cut["prefix"].startswith("{")
    stored = scalar(
        conn,
        "select octet_length(message::text) from dragonfly.dead_letters where id = %s",
        (dead["id"],),
    )
    assert stored < 8192

    with pytest.raises(psycopg.Error) as refused:
        fleet.execute("select dragonfly.replay_dead_letter(%s, 'alice')", (dead["id"],))
    assert refused.value.sqlstate == "55000"
    assert refused.value.diag.message_primary == (
        f"dead letter {dead['id']} cannot be replayed: its message ({size} bytes) was over the"
        " dead-letter size limit and only a truncated stand-in was kept"
    )
    assert "new idempotency key" in (refused.value.diag.message_hint or "")
    assert queue_length(conn) == 0
    status = scalar(conn, "select status from dragonfly.dead_letters where id = %s", (dead["id"],))
    assert status == "dead"


def test_a_message_within_the_limit_is_kept_whole_and_replays_unchanged(
    conn: Conn, fleet: Conn
) -> None:
    small = envelope("small-1", 200_000)  # under 1 MiB with its envelope and header
    dead = dead_letter_of(conn, fleet, small)
    assert dead["truncated"] is None
    assert dead["message"] == small
    assert dead["headers"] == {"trace": "t-1"}

    new_msg = scalar(conn, "select dragonfly.replay_dead_letter(%s, 'alice')", (dead["id"],))
    sent = conn.execute(
        "select message, headers, read_ct from pgmq.q_enrich where msg_id = %s", (new_msg,)
    ).fetchone()
    assert sent == (small, {"trace": "t-1"}, 0)
