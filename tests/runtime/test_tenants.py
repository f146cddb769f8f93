"""Each job acts in its envelope's tenant, and no job's tenant reaches another's work.

In-process batch runs of a test kind on a real database (the enrich queue, whose shape the
runtime tests lift): its handler, batch handler and outside phase record what
``dragonfly.acting_tenant`` and ``tenancy.caller_tenants('read')`` are while they run. The
messages are sent with pgmq.send, so each test says exactly what the envelope names
(docs/worker-runtime.md, "Tenants").
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict

from tests.runtime.support import INTERNAL, completed, make_runner, scalar
from workers.runtime import (
    BatchContext,
    BatchItem,
    FetchContext,
    JobContext,
    JobKind,
    PermanentError,
    queries,
)
from workers.runtime.batch import BatchReport
from workers.runtime.envelope import DEFAULT_TENANT
from workers.runtime.watchdog import Slot

Conn = psycopg.Connection[Any]

OPERATOR = {"level": "operator", "role": "enforcement_operator", "sub": None, "email": None}

SEEN = """
insert into runtime_test.tenant_seen (idempotency_key, via, acting, reach)
select %s, %s, nullif(current_setting('dragonfly.acting_tenant', true), ''),
       (select array_agg(t order by t) from unnest(tenancy.caller_tenants('read')) as t)::text
"""


class SeenPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fail: bool = False
    fetch: bool = False


FETCHED: list[tuple[str, str | None]] = []
"""(key, dragonfly.acting_tenant) as each fetch saw it (fetches run in this process)."""
BATCHES: list[tuple[list[str], str | None]] = []
"""(keys, acting tenant) of each handle_batch call."""


def _acting(conn: Conn) -> str | None:
    value = scalar(conn, "select nullif(current_setting('dragonfly.acting_tenant', true), '')")
    return None if value is None else str(value)


def handle(ctx: JobContext, payload: SeenPayload) -> None:
    ctx.conn.execute(SEEN, (ctx.envelope.idempotency_key, "single"))
    if payload.fail:
        raise PermanentError("asked to fail")


def handle_batch(ctx: BatchContext, items: Sequence[BatchItem[SeenPayload]]) -> Collection[int]:
    BATCHES.append(([i.envelope.idempotency_key for i in items], _acting(ctx.conn)))
    for item in items:
        ctx.conn.execute(SEEN, (item.envelope.idempotency_key, "batch"))
    return [i.msg_id for i in items]


def fetch(ctx: FetchContext, payload: SeenPayload) -> str | None:
    FETCHED.append((ctx.envelope.idempotency_key, _acting(ctx.conn)))
    return "fetched" if payload.fetch else None


SINGLE = JobKind(kind="enrich", payload=SeenPayload, handle=handle)
BATCHED = JobKind(kind="enrich", payload=SeenPayload, handle=handle, handle_batch=handle_batch)
FETCHING = JobKind(kind="enrich", payload=SeenPayload, handle=handle, fetch=fetch)


@pytest.fixture
def tenants(conn: Conn) -> tuple[str, str]:
    conn.execute(
        "create table runtime_test.tenant_seen ("
        " idempotency_key text, via text, acting text, reach text,"
        " at timestamptz default clock_timestamp())"
    )
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    conn.execute(
        "insert into public.tenants (id, slug, name)"
        " values (%s, 'tenant-a', 'A'), (%s, 'tenant-b', 'B')",
        (a, b),
    )
    FETCHED.clear()
    BATCHES.clear()
    return a, b


def send(
    conn: Conn, key: str, tenant: str | None = None, *, named: bool = True, **fields: Any
) -> int:
    provenance = fields.pop("provenance", INTERNAL)
    envelope: dict[str, Any] = {
        "kind": "enrich",
        "idempotency_key": key,
        "payload": fields,
        "provenance": provenance,
    }
    if named:
        envelope["tenant"] = tenant
    return int(scalar(conn, "select pgmq.send('enrich', %s)", (Jsonb(envelope),)))


def run_batch(conn: Conn, job: JobKind[Any]) -> BatchReport:
    runner = make_runner(job=job, batch_size=20)
    report = runner.run_deliveries(conn, Slot(0), queries.read(conn, "enrich", 30, 20))
    assert report is not None
    return report


def seen(conn: Conn) -> dict[str, tuple[str, str | None, str | None]]:
    rows = conn.execute(
        "select idempotency_key, via, acting, reach from runtime_test.tenant_seen order by at"
    ).fetchall()
    return {str(k): (str(v), a, r) for k, v, a, r in rows}


def all_tenants(conn: Conn) -> str:
    return str(scalar(conn, "select array_agg(id order by id)::text from public.tenants"))


def test_each_job_acts_in_its_own_tenant_and_no_further(
    conn: Conn, tenants: tuple[str, str]
) -> None:
    a, b = tenants
    send(conn, "in-a", a)
    send(conn, "fails-in-b", b, fail=True)
    send(conn, "in-a-again", a)
    send(conn, "fleet-crossing", None)  # the fleet's job that names none: every tenant
    send(conn, "operator-legacy", named=False, provenance=OPERATOR)  # older than tenants
    send(conn, "in-b", b)
    run_batch(conn, SINGLE)
    got = seen(conn)
    assert got["in-a"] == ("single", a, f"{{{a}}}")
    assert got["in-a-again"] == ("single", a, f"{{{a}}}")
    assert got["in-b"] == ("single", b, f"{{{b}}}")
    assert got["fleet-crossing"] == ("single", None, all_tenants(conn))
    default = str(DEFAULT_TENANT)
    assert got["operator-legacy"] == ("single", default, f"{{{default}}}")
    # The failed job's effects (and its row here) are rolled back; the next job is not in B.
    assert "fails-in-b" not in got
    assert completed(conn) == {
        "in-a": 1,
        "in-a-again": 1,
        "fleet-crossing": 1,
        "operator-legacy": 1,
        "in-b": 1,
    }
    # And nothing is left on the connection once the batch committed.
    assert _acting(conn) is None


def test_handle_batch_is_offered_one_tenant_at_a_time(conn: Conn, tenants: tuple[str, str]) -> None:
    a, b = sorted(tenants)
    for n in range(3):
        send(conn, f"b{n}", b)
        send(conn, f"a{n}", a)
    send(conn, "alone-crossing", None)
    run_batch(conn, BATCHED)
    # Tenants in id order; each call acts in its tenant; a lone job (the crossing one) runs
    # through handle.
    calls = list(BATCHES)
    assert calls == [(["a0", "a1", "a2"], a), (["b0", "b1", "b2"], b)]
    got = seen(conn)
    for n in range(3):
        assert got[f"a{n}"] == ("batch", a, f"{{{a}}}")
        assert got[f"b{n}"] == ("batch", b, f"{{{b}}}")
    assert got["alone-crossing"] == ("single", None, all_tenants(conn))
    assert _acting(conn) is None


def test_the_outside_phase_acts_in_each_jobs_tenant(conn: Conn, tenants: tuple[str, str]) -> None:
    a, b = tenants
    send(conn, "fa", a, fetch=True)
    send(conn, "fb", b, fetch=True)
    send(conn, "fx", None, fetch=True)
    run_batch(conn, FETCHING)
    fetched = list(FETCHED)
    assert fetched == [("fa", a), ("fb", b), ("fx", None)]
    got = seen(conn)
    assert got["fa"][1] == a
    assert got["fb"][1] == b
    assert got["fx"][1] is None
    # The session setting of the phase is cleared before the transaction and after it.
    assert _acting(conn) is None


def test_a_tenant_that_is_not_a_uuid_is_a_malformed_envelope(
    conn: Conn, tenants: tuple[str, str]
) -> None:
    msg_id = send(conn, "bad-tenant", "tenant-a")
    report = run_batch(conn, SINGLE)
    assert [f.reason for f in report.failed] == ["malformed"]
    row = conn.execute(
        "select reason, last_error from dragonfly.dead_letters where msg_id = %s", (msg_id,)
    ).fetchone()
    assert row is not None
    assert row[0] == "malformed"
    assert "tenant" in row[1]
    assert seen(conn) == {}
