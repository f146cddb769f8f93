"""What a handler gets besides its payload."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import psycopg

from workers.runtime import queries
from workers.runtime.envelope import Envelope


class _Attempt:
    """What both phases of one attempt of one job know (see JobContext, FetchContext)."""

    __slots__ = (
        "_bind_log",
        "_log",
        "adapters",
        "attempt",
        "envelope",
        "msg_id",
        "queue",
        "stop",
        "tenant",
    )

    def __init__(
        self,
        *,
        envelope: Envelope,
        queue: str,
        msg_id: int,
        attempt: int,
        log: Callable[[], Any],
        adapters: Mapping[str, Any],
        stop: threading.Event,
    ) -> None:
        self.envelope = envelope
        self.queue = queue
        self.msg_id = msg_id
        self.attempt = attempt
        self._bind_log = log
        self._log: Any = None
        self.adapters = adapters
        self.stop = stop
        self.tenant: UUID | None = envelope.acting_tenant

    @property
    def log(self) -> Any:
        """The job's bound logger (bound on first use: most jobs never log themselves)."""
        if self._log is None:
            self._log = self._bind_log()
        return self._log


class FetchContext(_Attempt):
    """The outside phase of one attempt (``JobKind.fetch``), before the job's transaction.

    - ``conn``: the worker's connection in autocommit: every statement is its own
      transaction, so nothing it reads stays locked during the outside call. Never
      leave a transaction open on it. It acts in the job's tenant for the phase;
    - ``envelope``, ``queue``, ``msg_id``, ``attempt``, ``log``, ``adapters``,
      ``stop``, ``tenant``: as for :class:`JobContext`.
    """

    __slots__ = ("_conn", "_narrowed")

    def __init__(self, conn: psycopg.Connection[Any], **attempt: Any) -> None:
        super().__init__(**attempt)
        self._conn = conn
        self._narrowed = False

    @property
    def conn(self) -> psycopg.Connection[Any]:
        # The job's tenant for the session, set on first use: a fetch with nothing to fetch
        # (enrich with its bundle in the payload) costs no round trip. The runtime clears it
        # after the phase.
        if not self._narrowed:
            queries.set_acting_tenant(self._conn, self.tenant)
            self._narrowed = True
        return self._conn

    @property
    def narrowed(self) -> bool:
        """Whether the fetch used the connection (so the session acts in its tenant)."""
        return self._narrowed


class JobContext(_Attempt):
    """One attempt of one job.

    - ``conn``: the connection, inside the job's transaction. The first access
      takes the job's savepoint, so a failing job rolls back only its own
      effects while the other jobs of its batch commit; a handler that never
      touches the database costs no round trip. Never commit or roll back it.
      It acts in the job's tenant (``dragonfly.acting_tenant``, for this job only):
      every RPC and reader finds the rows of that tenant alone;
    - ``envelope``: kind, idempotency_key, payload, requested_by, provenance, tenant,
      enqueued_at;
    - ``tenant``: the tenant the job acts in (``envelope.acting_tenant``; None: the
      job crosses tenants, a fleet job that names none);
    - ``queue``, ``msg_id``, ``attempt`` (1 on the first delivery);
    - ``log``: a structlog logger bound to queue, msg_id, kind, idempotency_key,
      attempt (and case_id when the payload has one);
    - ``adapters``: what the kind's ``adapters(settings)`` built for this process;
    - ``stop``: set when the worker is shutting down (long handlers may check it);
    - ``fetched``: what the kind's ``fetch`` returned for this attempt (None for
      kinds without an outside phase).
    """

    __slots__ = ("_conn", "_savepoint", "fetched")

    def __init__(
        self, conn: psycopg.Connection[Any], *, fetched: Any = None, **attempt: Any
    ) -> None:
        super().__init__(**attempt)
        self._conn = conn
        self._savepoint = False
        self.fetched = fetched

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if not self._savepoint:
            self._conn.execute(queries.savepoint(self.tenant))
            self._savepoint = True
        return self._conn

    @property
    def used_database(self) -> bool:
        """Whether the handler asked for the connection (and so has a savepoint)."""
        return self._savepoint


class BatchContext:
    """What a kind's ``handle_batch`` gets besides its items.

    - ``conn``: the connection, inside the batch's transaction and under a
      savepoint the runtime rolls back if ``handle_batch`` raises; it acts in
      ``tenant``, the tenant of every item (the runtime offers each tenant's jobs
      of a batch in a call of their own);
    - ``queue``, ``adapters``, ``stop`` as for :class:`JobContext`;
    - ``log``: a structlog logger bound to the worker.
    """

    __slots__ = ("adapters", "conn", "log", "queue", "stop", "tenant")

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        *,
        queue: str,
        log: Any,
        adapters: Mapping[str, Any],
        stop: threading.Event,
        tenant: UUID | None = None,
    ) -> None:
        self.conn = conn
        self.tenant = tenant
        self.queue = queue
        self.log = log
        self.adapters = adapters
        self.stop = stop
