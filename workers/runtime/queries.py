"""Every statement the consumer sends, in one place.

The work is done by the runtime functions of migration
``20261127004100_worker_runtime_functions.sql`` (and ``public.pgmq_read`` of the
queue RPCs); this module only names the calls. Queue names reach SQL as
parameters, never formatted into statements (the LISTEN channel, an identifier,
is quoted by psycopg and checked to be a job kind's name first).
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from workers.job_kinds import check_kind_name
from workers.redact import scrub
from workers.runtime.envelope import Delivery

Conn = psycopg.Connection[Any]

# Only what the loop needs: headers and enqueue time stay in the row (dead_letter_job
# copies them from there).
READ = "select msg_id, read_ct, message from public.pgmq_read(%(queue)s, %(vt)s, %(qty)s)"
# Integer arrays go in binary (%b): dumping them is then about twice as cheap.
CLAIM = "select msg_id, state from dragonfly.claim_jobs(%s, %b, %b)"
HOLD = "select dragonfly.hold_jobs(%s, %b, %b, %s)"
COMPLETE = "select dragonfly.complete_jobs(%s, %s, %b, %b, %b)"
ACK = "select dragonfly.ack_jobs(%s, %b, %b)"
RETRY = "select dragonfly.retry_job(%s, %s, %s, %s)"
RELEASE = "select dragonfly.release_jobs(%s, %b, %b)"
DEAD_LETTER = "select dragonfly.dead_letter_job(%s, %s, %s, %s, %s, %s)"

# One savepoint per job, taken when its handler first asks for the connection, with the
# job's tenant set for exactly that job: dragonfly.acting_tenant, which narrows
# tenancy.caller_tenants() (and so every RPC and reader the handler calls) to that tenant.
# SET LOCAL inside the savepoint, and cleared in the same round trip that releases or rolls
# back the savepoint: a released savepoint's SET LOCAL would last to the end of the batch's
# transaction, into the next job.
SAVEPOINT_SQL = "savepoint dragonfly_job; set local dragonfly.acting_tenant = '{tenant}'"
RELEASE_SAVEPOINT = "release savepoint dragonfly_job; set local dragonfly.acting_tenant = ''"
ROLLBACK_TO_SAVEPOINT = (
    "rollback to savepoint dragonfly_job; release savepoint dragonfly_job;"
    " set local dragonfly.acting_tenant = ''"
)
# The outside phase runs in autocommit: the tenant is set for the session around each job's
# fetch, and cleared after the phase.
SET_ACTING_TENANT = "select set_config('dragonfly.acting_tenant', %s, false)"

# The kind's policy rows and the field names of its payload shape (null: no shape); the
# worker login may read both tables (20261202170000_job_kind_policy.sql).
POLICY = (
    "select k.payload_fields is not null, array(select jsonb_object_keys(k.payload_fields)),"
    " p.level, p.fields"
    " from dragonfly.job_kinds as k"
    " left join dragonfly.job_kind_policies as p on p.kind = k.kind"
    " where k.kind = %s order by p.level"
)

PING = "select 1"
TERMINATE_BACKEND = "select pg_terminate_backend(%s, %s)"
RUNTIME_INSTALLED = (
    "select to_regprocedure('public.pgmq_read(text, integer, integer)') is not null"
    " and to_regprocedure('dragonfly.claim_jobs(text, bigint[], integer[])')"
    " is not null and to_regclass('dragonfly.job_kind_policies') is not null"
)
SET_IDLE_IN_TRANSACTION_TIMEOUT = (
    "select set_config('idle_in_transaction_session_timeout', %s, false)"
)
SET_CLIENT_CHECK_INTERVAL = "select set_config('client_connection_check_interval', %s, false)"


def tenant_setting(tenant: UUID | None) -> str:
    """The value of ``dragonfly.acting_tenant`` for a job acting in ``tenant`` ('' for none)."""
    if tenant is None:
        return ""
    if not isinstance(tenant, UUID):  # the statement below formats it: only a real UUID
        raise TypeError(f"tenant must be a UUID, not {type(tenant).__name__}")
    return str(tenant)


def savepoint(tenant: UUID | None) -> str:
    """The statements that open a job's savepoint acting in ``tenant`` (one round trip:
    no parameters, so psycopg sends them as one simple query)."""
    return SAVEPOINT_SQL.format(tenant=tenant_setting(tenant))


def set_acting_tenant(conn: Conn, tenant: UUID | None) -> None:
    """Act in ``tenant`` (None: no narrowing) for the session, outside any transaction."""
    conn.execute(SET_ACTING_TENANT, (tenant_setting(tenant),))


def read(conn: Conn, queue: str, vt: int, qty: int) -> list[Delivery]:
    """Read up to ``qty`` messages, hidden for ``vt`` seconds (commits the read)."""
    rows = conn.execute(READ, {"queue": queue, "vt": vt, "qty": qty}).fetchall()
    return [Delivery(r[0], r[1], r[2]) for r in rows]


def claim(conn: Conn, queue: str, deliveries: list[Delivery]) -> dict[int, str]:
    """Lock the deliveries still ours; the others, msg_id -> 'lost' | 'done' (key done)."""
    return claimed(send_claim(conn, queue, deliveries))


def send_claim(conn: Conn, queue: str, deliveries: list[Delivery]) -> psycopg.Cursor[Any]:
    """:func:`claim`, sent: in pipeline mode its answer comes with the pipeline's sync."""
    return conn.execute(
        CLAIM, (queue, [d.msg_id for d in deliveries], [d.read_ct for d in deliveries])
    )


def claimed(cursor: psycopg.Cursor[Any]) -> dict[int, str]:
    """The answer of :func:`send_claim`."""
    return {int(r[0]): str(r[1]) for r in cursor.fetchall()}


def hold(conn: Conn, queue: str, deliveries: list[Delivery], seconds: float) -> int:
    """Hide the deliveries still ours for ``seconds`` from now (fenced); how many."""
    row = conn.execute(
        HOLD, (queue, [d.msg_id for d in deliveries], [d.read_ct for d in deliveries], seconds)
    ).fetchone()
    return int(row[0]) if row else 0


def complete(
    conn: Conn,
    queue: str,
    worker: str,
    deliveries: list[Delivery],
    durations_ms: list[int],
) -> None:
    """Delete the messages of the jobs done (fenced) and record the jobs as completed."""
    conn.execute(
        COMPLETE,
        (
            queue,
            worker,
            [d.msg_id for d in deliveries],
            [d.read_ct for d in deliveries],
            durations_ms,
        ),
    )


def ack(conn: Conn, queue: str, deliveries: list[Delivery]) -> None:
    """Delete messages whose jobs are already done (fenced)."""
    conn.execute(ACK, (queue, [d.msg_id for d in deliveries], [d.read_ct for d in deliveries]))


def retry(conn: Conn, queue: str, delivery: Delivery, delay: float) -> None:
    """Hide the message for ``delay`` seconds before its next attempt (fenced)."""
    conn.execute(RETRY, (queue, delivery.msg_id, delivery.read_ct, delay))


def release(conn: Conn, queue: str, deliveries: list[Delivery]) -> int:
    """Give unrun messages back at once, their read undone; returns how many."""
    row = send_release(conn, queue, deliveries).fetchone()
    return int(row[0]) if row else 0


def send_release(conn: Conn, queue: str, deliveries: list[Delivery]) -> psycopg.Cursor[Any]:
    """:func:`release`, sent (in pipeline mode, fetching its answer would sync)."""
    return conn.execute(
        RELEASE, (queue, [d.msg_id for d in deliveries], [d.read_ct for d in deliveries])
    )


def dead_letter(
    conn: Conn,
    queue: str,
    delivery: Delivery,
    reason: str,
    error: str,
    traceback: str | None,
) -> int:
    """Move the message to dragonfly.dead_letters (fenced); returns the dead letter's id.

    The error and traceback are scrubbed (:func:`workers.redact.scrub`) on the way in.
    """
    tb = scrub(traceback) if traceback is not None else None
    row = conn.execute(
        DEAD_LETTER, (queue, delivery.msg_id, delivery.read_ct, reason, scrub(error), tb)
    ).fetchone()
    assert row is not None
    return int(row[0])


PolicyRow = tuple[bool, list[str], str | None, list[str] | None]


def policy_rows(conn: Conn, kind: str) -> list[PolicyRow]:
    """``(has_shape, shape_fields, level, fields)`` per policy row of ``kind``.

    One row with level None when the kind has no policy row; no rows when it is not
    registered.
    """
    return [(bool(r[0]), list(r[1]), r[2], r[3]) for r in conn.execute(POLICY, (kind,))]


def runtime_installed(conn: Conn) -> bool:
    """Whether the migrations that define the runtime's functions (and the job-kind
    policy the worker re-checks) were applied."""
    row = conn.execute(RUNTIME_INSTALLED).fetchone()
    return bool(row and row[0])


def configure_job_session(conn: Conn, idle_in_transaction_s: float) -> None:
    """Server-side bounds for a job connection (autocommit, outside any transaction).

    - ``idle_in_transaction_session_timeout``: a transaction left idle that long
      (a handler stuck outside the database) is ended by the server;
    - ``client_connection_check_interval`` (5 s): a statement still running for a
      worker that died (kill -9) is cancelled, instead of holding its locks
      until it finishes. Not every platform supports it; then it stays off.
    """
    conn.execute(SET_IDLE_IN_TRANSACTION_TIMEOUT, (str(int(idle_in_transaction_s * 1000)),))
    with contextlib.suppress(psycopg.errors.InvalidParameterValue):
        conn.execute(SET_CLIENT_CHECK_INTERVAL, ("5000",))


def terminate_backend(conn: Conn, pid: int, wait_s: float) -> bool:
    """End another session (its transaction rolls back); wait up to ``wait_s`` for it."""
    row = conn.execute(TERMINATE_BACKEND, (pid, int(wait_s * 1000))).fetchone()
    return bool(row and row[0])


def insert_channel(queue: str) -> str:
    """The channel PGMQ notifies on an insert into ``queue`` (payload null)."""
    return f"pgmq.q_{check_kind_name(queue)}.INSERT"


def listen(conn: Conn, queue: str) -> None:
    conn.execute(sql.SQL("listen {}").format(sql.Identifier(insert_channel(queue))))
