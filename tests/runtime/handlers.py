"""Job definitions the runtime tests (and the benchmark) run in real worker processes.

Started as ``dragonfly worker enrich --handler tests.runtime.handlers:JOB``. Every
attempt that reaches the database inserts a row into ``runtime_test.effects`` inside
the job's transaction, so the table holds exactly the effects that committed: one
row per key means "done exactly once".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from workers.runtime import (
    BatchContext,
    BatchItem,
    FetchContext,
    JobContext,
    JobKind,
    PermanentError,
    TransientError,
)

SCHEMA_SQL = """
create schema runtime_test;
create table runtime_test.effects (
    idempotency_key text not null,
    msg_id bigint not null,
    attempt integer not null,
    pid integer not null default pg_backend_pid(),
    at timestamptz not null default clock_timestamp(),
    via text not null default 'single'
);
create table runtime_test.switch (broken boolean not null);
insert into runtime_test.switch values (false);
-- The worker processes log in as a member of dragonfly_worker: the test handler's own
-- tables are theirs to use, as a kind's tables are granted to the fleet's role.
grant usage on schema runtime_test to dragonfly_worker;
grant select, insert, update on all tables in schema runtime_test to dragonfly_worker;
-- The test job runs on the enrich queue with payloads of its own (ProbePayload), and the
-- phased job enqueues outreach jobs of its own, so those kinds' payload shapes are lifted in
-- this database: queue_job then takes any object from the fleet and operators, as for a
-- kind registered without a shape. The shipped shapes are kept for the tests of the policy.
create table runtime_test.shipped_shapes as
    select kind, payload_fields from dragonfly.job_kinds where kind in ('enrich', 'outreach');
update dragonfly.job_kinds set payload_fields = null where kind in ('enrich', 'outreach');
"""


class ProbePayload(BaseModel):
    """What the test job does: effects first, then the requested trouble."""

    model_config = ConfigDict(extra="forbid")

    sleep: float = 0.0
    """Seconds spent in pg_sleep inside the job's transaction (a slow database call)."""
    hold: float = 0.0
    """Seconds spent waiting in Python, the transaction open (a slow outside call)."""
    slow_attempts: int = 1000
    """Sleep/hold/spin only on attempts up to this one (a job slow the first time only)."""
    spin: float = 0.0
    """Seconds spent busy in Python (a handler stuck in its own code)."""
    fail: Literal["transient", "permanent", "bug"] | None = None
    fail_while_broken: bool = False
    """Fail transiently while runtime_test.switch says broken (a bug awaiting its fix)."""
    explode_batch: bool = False
    """Make BATCH's handle_batch raise after writing (its writes must be undone)."""
    pad: str = ""
    """Ballast, unread: makes a message as large as a test needs."""


def handle(ctx: JobContext, payload: ProbePayload) -> None:
    conn = ctx.conn
    conn.execute(
        "insert into runtime_test.effects (idempotency_key, msg_id, attempt) values (%s, %s, %s)",
        (ctx.envelope.idempotency_key, ctx.msg_id, ctx.attempt),
    )
    slow = ctx.attempt <= payload.slow_attempts
    if payload.sleep and slow:
        conn.execute("select pg_sleep(%s)", (payload.sleep,))
    if payload.hold and slow:
        time.sleep(payload.hold)
    if payload.spin and slow:
        end = time.monotonic() + payload.spin
        while time.monotonic() < end:
            pass
    if payload.fail == "transient":
        raise TransientError("the vendor answered 503")
    if payload.fail == "permanent":
        raise PermanentError("the vendor rejected the request")
    if payload.fail == "bug":
        raise KeyError("missing")
    if payload.fail_while_broken:
        row = conn.execute("select broken from runtime_test.switch").fetchone()
        if row and row[0]:
            raise TransientError("the switch is broken")


JOB: JobKind[ProbePayload] = JobKind(kind="enrich", payload=ProbePayload, handle=handle)


class NoopPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")


def noop(_ctx: JobContext, _payload: NoopPayload) -> None:
    """Does nothing: the runtime's own cost (benchmark, pickup latency)."""


NOOP: JobKind[NoopPayload] = JobKind(kind="enrich", payload=NoopPayload, handle=noop)


def handle_many(ctx: BatchContext, items: Sequence[BatchItem[ProbePayload]]) -> list[int]:
    """Records the plain jobs (no trouble asked for) in one statement; leaves the rest."""
    plain = [i for i in items if i.payload == ProbePayload(explode_batch=i.payload.explode_batch)]
    ctx.conn.execute(
        "insert into runtime_test.effects (idempotency_key, msg_id, attempt, via)"
        " select k, m, 1, 'batch' from unnest(%s::text[], %s::bigint[]) as u (k, m)",
        ([i.envelope.idempotency_key for i in plain], [i.msg_id for i in plain]),
    )
    if any(i.payload.explode_batch for i in items):
        raise RuntimeError("the batch handler fell over")
    return [i.msg_id for i in plain]


BATCH: JobKind[ProbePayload] = JobKind(
    kind="enrich", payload=ProbePayload, handle=handle, handle_batch=handle_many
)


# -- a kind with an outside phase -------------------------------------------------------------

OUTSIDE_GATE = threading.Event()
"""In-process tests: set to let PHASED's fetch return (it waits at most 30 s)."""
OUTSIDE_ENTERED = threading.Event()
"""Set by PHASED's fetch when it starts waiting at the gate."""


class PhasedPayload(BaseModel):
    """What the phased test job does in its outside phase, then in its transaction."""

    model_config = ConfigDict(extra="forbid")

    fetch: Literal["value", "none", "transient", "permanent", "gate"] = "value"
    """``value``: return a value; ``none``: nothing to fetch; ``transient`` /
    ``permanent``: raise; ``gate``: wait for OUTSIDE_GATE, then return a value."""
    enqueue: bool = False
    """handle: queue_job an outreach job, then wait for OUTSIDE_GATE (the batch's
    transaction open with a fresh enqueue in it)."""


def _wait_at_the_gate() -> None:
    """Short waits, so that the watchdog's exception can land in between (as in a client
    library that polls its socket)."""
    deadline = time.monotonic() + 30
    while not OUTSIDE_GATE.wait(0.05):
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")


def phased_fetch(ctx: FetchContext, payload: PhasedPayload) -> str | None:
    if payload.fetch == "none":
        return None
    if payload.fetch == "transient":
        raise TransientError("the vendor timed out")
    if payload.fetch == "permanent":
        raise PermanentError("the vendor refused the case")
    if payload.fetch == "gate":
        OUTSIDE_ENTERED.set()
        _wait_at_the_gate()
    return f"fetched:{ctx.envelope.idempotency_key}"


def phased_handle(ctx: JobContext, payload: PhasedPayload) -> None:
    ctx.conn.execute(
        "insert into runtime_test.effects (idempotency_key, msg_id, attempt, via)"
        " values (%s, %s, %s, %s)",
        (ctx.envelope.idempotency_key, ctx.msg_id, ctx.attempt, ctx.fetched or "single"),
    )
    if payload.enqueue:
        ctx.conn.execute(
            "select public.queue_job(jsonb_build_object('kind', 'outreach',"
            " 'idempotency_key', %s::text, 'payload', '{}'::jsonb))",
            (f"from-{ctx.envelope.idempotency_key}",),
        )
        OUTSIDE_ENTERED.set()
        _wait_at_the_gate()


def phased_many(ctx: BatchContext, items: Sequence[BatchItem[PhasedPayload]]) -> list[int]:
    """Records every job offered in one statement (only jobs whose fetch returned None)."""
    ctx.conn.execute(
        "insert into runtime_test.effects (idempotency_key, msg_id, attempt, via)"
        " select k, m, 1, 'batch' from unnest(%s::text[], %s::bigint[]) as u (k, m)",
        ([i.envelope.idempotency_key for i in items], [i.msg_id for i in items]),
    )
    return [i.msg_id for i in items]


PHASED: JobKind[PhasedPayload] = JobKind(
    kind="enrich",
    payload=PhasedPayload,
    handle=phased_handle,
    fetch=phased_fetch,
    handle_batch=phased_many,
)
