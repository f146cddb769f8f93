"""One batch: read, claim, run each job under its own savepoint, commit once.

The batch's jobs share one transaction (one commit, one fsync) and each job has
a savepoint, so a failing job rolls back only its own effects::

    policy             once per process: the kind's job-kind policy (workers.runtime.policy)
    read (autocommit: read_ct += 1 commits, so even a crash counts the attempt)
    parse              envelope, policy re-check, payload: a message that fails is
                       dead-lettered in the transaction below, unrun
    outside phase      kinds with a ``fetch``: hold_jobs (vt pushed past the phase),
                       then each job's fetch in its tenant, autocommit, no transaction
                       open
    begin
      claim_jobs         lock the deliveries still ours; which are done already
      handle_batch       kinds that have one: once per tenant of the batch, in its tenant
      per job            savepoint in the job's tenant (on first use of ctx.conn) ->
                         handler -> release, or rollback to it and retry_job /
                         dead_letter_job
      complete_jobs      fenced delete of the messages + completed_jobs rows
      ack_jobs           messages whose key was already done: deleted unrun
      release_jobs       jobs not started (shutdown): back to the queue at once
    commit               effects, records, deletions: all or nothing

The trade-off: a job's effects become visible when its whole batch commits,
and a connection lost mid-batch sends the whole batch back to the queue (its
effects were never committed, so exactly-once holds). Kinds with slow handlers
set a small ``batch_size``.

Tenants: every job acts in its envelope's tenant (``Envelope.acting_tenant``), set as
``dragonfly.acting_tenant`` for exactly that job's work -- for the session when its fetch
first uses the connection (cleared after the outside phase), ``SET LOCAL`` inside its
savepoint (cleared when the savepoint is released or rolled back) -- so no job of a batch
acts with another's tenant. ``handle_batch`` is offered the jobs of
one tenant at a time, tenants in id order (a job that crosses tenants first).
"""

from __future__ import annotations

import contextlib
import random
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Literal, TypeVar
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from pydantic import BaseModel

from workers.runtime import queries
from workers.runtime.context import BatchContext, FetchContext, JobContext
from workers.runtime.envelope import Delivery, Envelope, parse_envelope, parse_payload
from workers.runtime.errors import (
    Forbidden,
    JobInterrupted,
    JobTimeout,
    MalformedMessage,
    classify,
    describe,
)
from workers.runtime.handlers import BatchItem, JobKind
from workers.runtime.hooks import JobMetrics
from workers.runtime.policy import KindPolicy, load_policy
from workers.runtime.retry import DeadLetter, RetryPolicy, decide
from workers.runtime.watchdog import Interruption, Slot

T = TypeVar("T")

OutsideState = Literal["none", "fetched", "failed", "interrupted", "skipped"]
"""A job's outside phase: not run (no fetch, or not runnable), done, raised,
interrupted at shutdown, or not started (shutdown, batch window: released unrun)."""

# How long past the job timeout the messages of an outside phase stay hidden, on top of the
# visibility timeout: the runtime's own statements between the phase and the claim.
_HOLD_MARGIN = 5.0


class BatchBroken(Exception):
    """The connection is no longer usable mid-batch; the batch goes back to the queue."""


class KeyConflict(Exception):
    """A job's key was completed concurrently by another transaction."""


@dataclass(slots=True)
class Job:
    delivery: Delivery
    base_log: Any
    envelope: Envelope | None = None
    payload: BaseModel | None = None
    malformed: MalformedMessage | None = None
    """Why the message is refused unrun: a bad envelope or payload, or Forbidden."""
    kind: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    """The job's stable log keys: queue, msg_id, kind, idempotency_key, attempt, case_id."""
    outside: OutsideState = "none"
    """How its outside phase (``JobKind.fetch``) went, when the kind has one."""
    fetched: Any = None
    fetch_error: BaseException | None = None
    fetch_s: float = 0.0
    _bound: Any = None

    @property
    def key(self) -> str:
        assert self.envelope is not None
        return self.envelope.idempotency_key

    @property
    def log(self) -> Any:
        """A logger bound to the job's keys, bound on first use."""
        if self._bound is None:
            self._bound = self.base_log.bind(**self.context)
        return self._bound


def by_tenant(jobs: list[Job]) -> list[tuple[UUID | None, list[Job]]]:
    """The jobs grouped by the tenant they act in, each group in message order; the groups
    by tenant id, a group that crosses tenants (None) first, so every batch takes the locks
    of its groups in one order."""
    groups: dict[UUID | None, list[Job]] = {}
    for job in jobs:
        assert job.envelope is not None
        groups.setdefault(job.envelope.acting_tenant, []).append(job)
    return sorted(groups.items(), key=lambda item: "" if item[0] is None else str(item[0]))


@dataclass(slots=True)
class Failed:
    job: Job
    error: str
    failure: str
    duration_s: float
    attempted: bool = True
    retry_in: float | None = None
    dead_letter_id: int | None = None
    reason: str | None = None


@dataclass
class BatchReport:
    """What happened to each message; logged and counted once the batch committed."""

    done: list[tuple[Job, float]] = field(default_factory=list)
    duplicates: list[Job] = field(default_factory=list)
    released: list[Job] = field(default_factory=list)
    lost: list[Job] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchConfig:
    queue: str
    worker: str
    batch_size: int
    batch_window: float
    visibility_timeout: int
    job_timeout: float
    retry: RetryPolicy


class BatchRunner:
    """Runs batches of one kind's jobs; shared by the slots of one consumer."""

    def __init__(
        self,
        job: JobKind[Any],
        config: BatchConfig,
        *,
        adapters: Mapping[str, Any],
        metrics: JobMetrics,
        log: Any,
        stopping: threading.Event,
    ) -> None:
        self._job = job
        self._cfg = config
        self._adapters = adapters
        self._metrics = metrics
        self._log = log
        self._stopping = stopping
        self._policy: KindPolicy | None = None
        self._policy_lock = threading.Lock()

    @property
    def policy(self) -> KindPolicy | None:
        """The kind's job-kind policy, once loaded (before the first read)."""
        return self._policy

    def load_policy(self, conn: psycopg.Connection[Any]) -> KindPolicy:
        """The kind's policy: read from the database on first use, then kept.

        Once per process, so a change of policy reaches the workers when they restart.
        Raises what the read raises (the consumer backs off and tries again).
        """
        if self._policy is not None:  # every batch asks: no lock once it is loaded
            return self._policy
        with self._policy_lock:
            if self._policy is None:
                policy = load_policy(conn, self._job.kind)
                self._log.info(
                    "job_policy_loaded",
                    queue=self._cfg.queue,
                    kind=policy.kind,
                    levels=policy.describe(),
                    shape=policy.shape is not None,
                )
                if not policy.levels:
                    self._log.warning(
                        "job_policy_empty",
                        queue=self._cfg.queue,
                        kind=policy.kind,
                        detail="no level may enqueue this kind: every job is dead-lettered"
                        " as forbidden",
                    )
                self._policy = policy
            return self._policy

    def run_once(self, conn: psycopg.Connection[Any], slot: Slot) -> int:
        """Read one batch and run it; returns how many messages were read."""
        cfg = self._cfg
        self.load_policy(conn)
        deliveries = queries.read(conn, cfg.queue, cfg.visibility_timeout, cfg.batch_size)
        if deliveries:
            self.run_deliveries(conn, slot, deliveries)
        return len(deliveries)

    def run_deliveries(
        self, conn: psycopg.Connection[Any], slot: Slot, deliveries: list[Delivery]
    ) -> BatchReport | None:
        """Run the jobs of messages already read; None when the batch was released."""
        cfg = self._cfg
        started = perf_counter()
        policy = self.load_policy(conn)
        slot.batch, slot.backend_pid = deliveries, conn.info.backend_pid
        try:
            if self._job.fetch is not None:
                jobs = [self._parse(d, policy) for d in deliveries]
                self._outside(conn, slot, jobs)
                report = self._run(conn, slot, deliveries, jobs, policy)
            else:
                # Parsed while the server runs the claim (see _run).
                report = self._run(conn, slot, deliveries, None, policy)
        except KeyConflict as exc:
            released = queries.release(conn, cfg.queue, deliveries)
            self._log.warning(
                "batch_conflict",
                queue=cfg.queue,
                msg_ids=[d.msg_id for d in deliveries],
                released=released,
                error=str(exc),
            )
            return None
        except Exception as exc:
            self._log.warning(
                "batch_failed",
                queue=cfg.queue,
                msg_ids=[d.msg_id for d in deliveries],
                error=describe(exc),
            )
            raise
        finally:
            slot.batch, slot.backend_pid = [], None
        self._report(report, perf_counter() - started)
        return report

    # -- parsing -----------------------------------------------------------------

    def _parse(self, delivery: Delivery, policy: KindPolicy) -> Job:
        job = Job(delivery, self._log)
        try:
            job.envelope = parse_envelope(delivery.message, self._cfg.queue)
            # Who sent it, before anything looks at what it asks for.
            policy.check(job.envelope)
            job.payload = parse_payload(self._job.payload, job.envelope)
        except MalformedMessage as exc:
            job.malformed = exc.with_traceback(None)
        env = job.envelope
        key: str | None
        if env is not None:
            job.kind, key = env.kind, env.idempotency_key
            case_id = env.payload.get("case_id")
        else:
            # Malformed: whatever the message claims, for the logs and the metrics.
            message = delivery.message if isinstance(delivery.message, dict) else {}
            claimed_kind, claimed_key = message.get("kind"), message.get("idempotency_key")
            job.kind = claimed_kind if isinstance(claimed_kind, str) else None
            key = claimed_key if isinstance(claimed_key, str) else None
            case_id = None
        job.context = {
            "queue": self._cfg.queue,
            "msg_id": delivery.msg_id,
            "kind": job.kind,
            "idempotency_key": key,
            "attempt": delivery.attempt,
        }
        if isinstance(case_id, str):
            job.context["case_id"] = case_id
        if env is not None and env.tenant is not None:
            job.context["tenant"] = str(env.tenant)
        return job

    # -- the outside phase ------------------------------------------------------------

    def _outside(self, conn: psycopg.Connection[Any], slot: Slot, jobs: list[Job]) -> None:
        """Run the kind's ``fetch`` of each runnable job before the batch's transaction.

        The connection is in autocommit: no transaction is open and nothing stays locked
        while a job talks to the outside world. Until the claim locks them, only their
        visibility timeout keeps the messages from another worker, so they are first held
        for as long as this phase may take: the batch window (no fetch starts after it)
        plus one job timeout (the watchdog's bound on the last one), plus the usual
        visibility timeout and a margin. Outcomes are recorded in the transaction: a
        fetch that raised fails its job there (retry or dead letter, fenced); jobs not
        started (shutdown, window) are released unrun.
        """
        fetch = self._job.fetch
        assert fetch is not None
        cfg = self._cfg
        todo = self._fetchable(jobs)
        if not todo:
            return
        queries.hold(
            conn,
            cfg.queue,
            [j.delivery for j in jobs],
            cfg.batch_window + cfg.job_timeout + cfg.visibility_timeout + _HOLD_MARGIN,
        )
        window_end = perf_counter() + cfg.batch_window
        narrowed = False
        try:
            for job in todo:
                if self._stopping.is_set() or perf_counter() > window_end:
                    job.outside = "skipped"
                else:
                    # Each fetch acts in its job's tenant (set when it first uses the
                    # connection, which every fetch that does sets anew).
                    narrowed = self._fetch_one(conn, slot, job, fetch) or narrowed
        finally:
            if narrowed and conn.pgconn.transaction_status == TransactionStatus.IDLE:
                queries.set_acting_tenant(conn, None)

    def _fetch_one(
        self,
        conn: psycopg.Connection[Any],
        slot: Slot,
        job: Job,
        fetch: Callable[[FetchContext, Any], Any],
    ) -> bool:
        """Run one job's fetch; whether it used the connection (and so set its tenant)."""
        assert job.envelope is not None
        payload = job.payload
        ctx = FetchContext(
            conn,
            envelope=job.envelope,
            queue=self._cfg.queue,
            msg_id=job.delivery.msg_id,
            attempt=job.delivery.attempt,
            log=lambda: job.log,
            adapters=self._adapters,
            stop=self._stopping,
        )
        self._log.debug("job_fetch_started", **job.context)
        result, error, interruption, job.fetch_s = self._guarded(
            conn, slot, lambda: fetch(ctx, payload)
        )
        status = conn.pgconn.transaction_status
        if status != TransactionStatus.IDLE:
            if isinstance(error, psycopg.OperationalError):
                raise error  # the connection was lost: the batch comes back when held ends
            raise BatchBroken(
                f"connection left {TransactionStatus(status).name} by the outside phase"
            )
        if interruption == "shutdown":
            job.log.warning("job_interrupted", duration_ms=round(job.fetch_s * 1000))
            job.outside = "interrupted"
        elif interruption == "timeout":
            job.outside = "failed"
            job.fetch_error = self._timed_out(job.envelope.kind, "fetch", error)
        elif error is not None:
            job.outside, job.fetch_error = "failed", error
        else:
            job.outside, job.fetched = "fetched", result
        return ctx.narrowed

    def _fetchable(self, jobs: list[Job]) -> list[Job]:
        """The jobs the transaction may run (as far as is known before the claim)."""
        seen: set[str] = set()
        todo = []
        for job in jobs:
            if job.malformed is not None or job.delivery.attempt > self._cfg.retry.max_attempts:
                continue
            if job.key not in seen:
                seen.add(job.key)
                todo.append(job)
        return todo

    # -- the transaction ---------------------------------------------------------------

    def _run(
        self,
        conn: psycopg.Connection[Any],
        slot: Slot,
        deliveries: list[Delivery],
        parsed: list[Job] | None,
        policy: KindPolicy,
    ) -> BatchReport:
        """The batch's transaction; ``parsed`` None: the messages are parsed here."""
        cfg = self._cfg
        report = BatchReport()
        with contextlib.ExitStack() as transaction:
            # BEGIN and the claim go out together: one round trip between the read and the
            # first handler (the pipeline's sync raises what the claim raised). They are
            # sent at once; the messages are parsed while the server runs them.
            with conn.pipeline():
                # psycopg.Transaction itself: conn.transaction() would keep the pipeline on.
                transaction.enter_context(psycopg.Transaction(conn))
                claiming = queries.send_claim(conn, cfg.queue, deliveries)
                jobs = (
                    parsed if parsed is not None else [self._parse(d, policy) for d in deliveries]
                )
            states = queries.claimed(claiming)
            window_end = perf_counter() + cfg.batch_window
            keys_seen: set[str] = set()
            runnable: list[Job] = []
            for job in jobs:
                state = states.get(job.delivery.msg_id, "owned")
                if state == "lost":
                    report.lost.append(job)
                elif job.malformed is not None:
                    reason = "forbidden" if isinstance(job.malformed, Forbidden) else "malformed"
                    self._dead_letter(conn, job, job.malformed, None, report, reason=reason)
                elif state == "done":
                    report.duplicates.append(job)
                elif job.delivery.attempt > cfg.retry.max_attempts:
                    # Read more often than allowed, with no outcome recorded: the
                    # earlier attempts crashed or were killed mid-job.
                    self._give_up(conn, job, report)
                elif job.key in keys_seen:
                    # Same key twice in one batch: run it once; the other copy
                    # comes back and is then acknowledged as done.
                    report.released.append(job)
                else:
                    keys_seen.add(job.key)
                    if job.outside in ("interrupted", "skipped"):
                        report.released.append(job)
                    elif job.fetch_error is not None:
                        self._failed(conn, job, job.fetch_error, job.fetch_s, report)
                    else:
                        runnable.append(job)
            # A job whose fetch brought something back runs through handle, which gets it.
            offered = [j for j in runnable if j.fetched is None]
            if (
                self._job.handle_batch is not None
                and len(offered) >= 2
                and not self._stopping.is_set()
            ):
                # One call per tenant, in its tenant: a set-based handler never acts for
                # one tenant's job in another's.
                left: set[int] = set()
                for tenant, group in by_tenant(offered):
                    if len(group) < 2 or self._stopping.is_set():
                        left.update(id(j) for j in group)
                    else:
                        remaining = self._attempt_batch(conn, slot, group, report, tenant)
                        left.update(id(j) for j in remaining)
                runnable = [j for j in runnable if j.fetched is not None or id(j) in left]
            for job in runnable:
                if job.fetched is None and (self._stopping.is_set() or perf_counter() > window_end):
                    # Shutting down, or the batch ran long: hand the rest back now
                    # rather than holding them (and the finished jobs) any longer. A job
                    # whose outside phase brought something back is recorded whatever:
                    # its call happened.
                    report.released.append(job)
                else:
                    self._attempt(conn, slot, job, report)
            self._finish(conn, report, transaction)
        return report

    def _finish(
        self,
        conn: psycopg.Connection[Any],
        report: BatchReport,
        transaction: contextlib.ExitStack,
    ) -> None:
        """complete_jobs, ack_jobs and release_jobs as needed, and COMMIT: one round trip.

        In a pipeline the server skips what follows a failed statement up to the sync, so
        nothing commits when any of them fails; the transaction is then rolled back here.
        """
        cfg = self._cfg
        try:
            with conn.pipeline():
                if report.done:
                    queries.complete(
                        conn,
                        cfg.queue,
                        cfg.worker,
                        [j.delivery for j, _ in report.done],
                        [round(s * 1000) for _, s in report.done],
                    )
                if report.duplicates:
                    queries.ack(conn, cfg.queue, [j.delivery for j in report.duplicates])
                if report.released:
                    queries.send_release(conn, cfg.queue, [j.delivery for j in report.released])
                transaction.close()  # COMMIT, sent with them
        except BaseException as exc:
            if conn.pgconn.transaction_status in (
                TransactionStatus.INTRANS,
                TransactionStatus.INERROR,
            ):
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
            if isinstance(exc, pg_errors.UniqueViolation):
                raise KeyConflict(describe(exc)) from exc
            raise

    # -- many jobs at once ---------------------------------------------------------------

    def _attempt_batch(
        self,
        conn: psycopg.Connection[Any],
        slot: Slot,
        jobs: list[Job],
        report: BatchReport,
        tenant: UUID | None,
    ) -> list[Job]:
        """Offer runnable jobs of one tenant to the kind's ``handle_batch``, acting in that
        tenant; the jobs left to run singly."""
        handle_batch = self._job.handle_batch
        assert handle_batch is not None
        items = []
        for job in jobs:
            assert job.envelope is not None
            assert job.payload is not None
            items.append(BatchItem(job.delivery.msg_id, job.envelope, job.payload))
        ctx = BatchContext(
            conn,
            queue=self._cfg.queue,
            log=self._log,
            adapters=self._adapters,
            stop=self._stopping,
            tenant=tenant,
        )
        conn.execute(queries.savepoint(tenant))
        handled, error, interruption, duration = self._guarded(
            conn, slot, lambda: set(handle_batch(ctx, items))
        )
        if interruption is not None and error is None:
            error = JobInterrupted(f"batch handler interrupted ({interruption})")
        self._settle_savepoint(conn, True, error)
        if error is not None:
            self._log.warning(
                "batch_handler_failed",
                queue=self._cfg.queue,
                jobs=len(jobs),
                error=describe(error),
                duration_ms=round(duration * 1000),
            )
            if interruption == "shutdown":
                report.released.extend(jobs)
                return []
            return jobs
        assert handled is not None  # it returned
        done = [j for j in jobs if j.delivery.msg_id in handled]
        share = duration / len(done) if done else 0.0
        report.done.extend((j, share) for j in done)
        return [j for j in jobs if j.delivery.msg_id not in handled]

    # -- a handler under the watchdog -----------------------------------------------------

    def _guarded(
        self, conn: psycopg.Connection[Any], slot: Slot, call: Callable[[], T]
    ) -> tuple[T | None, BaseException | None, Interruption | None, float]:
        """Run a handler under the watchdog (the kind's timeout, shutdown's grace).

        Returns its result, what it raised, why the watchdog interrupted it, and seconds."""
        result: T | None = None
        error: BaseException | None = None
        started = perf_counter()
        slot.arm(conn, self._cfg.job_timeout)
        try:
            try:
                result = call()
            finally:
                interruption = slot.disarm()
        except (Exception, JobTimeout, JobInterrupted) as exc:  # noqa: BLE001 - the caller decides
            # Again: the watchdog's exception may have landed inside the finally above.
            interruption = slot.disarm()
            error = exc
        return result, error, interruption, perf_counter() - started

    # -- one job -------------------------------------------------------------------------

    def _attempt(
        self, conn: psycopg.Connection[Any], slot: Slot, job: Job, report: BatchReport
    ) -> None:
        assert job.envelope is not None
        assert job.payload is not None
        d = job.delivery
        ctx = JobContext(
            conn,
            fetched=job.fetched,
            envelope=job.envelope,
            queue=self._cfg.queue,
            msg_id=d.msg_id,
            attempt=d.attempt,
            log=lambda: job.log,
            adapters=self._adapters,
            stop=self._stopping,
        )
        self._log.debug("job_started", **job.context)
        payload = job.payload
        _, error, interruption, duration = self._guarded(
            conn, slot, lambda: self._job.handle(ctx, payload)
        )
        duration += job.fetch_s
        if interruption == "timeout":
            error = self._timed_out(job.envelope.kind, "handler", error)
        self._settle_savepoint(conn, ctx.used_database, error)
        if interruption == "shutdown":
            job.log.warning("job_interrupted", duration_ms=round(duration * 1000))
            report.released.append(job)
        elif error is None:
            report.done.append((job, duration))
        else:
            self._failed(conn, job, error, duration, report)

    def _timed_out(self, kind: str, what: str, cause: BaseException | None) -> JobTimeout:
        error = JobTimeout(f"{kind} {what} ran longer than its {self._cfg.job_timeout:g}s timeout")
        error.__cause__ = cause
        return error

    def _settle_savepoint(
        self, conn: psycopg.Connection[Any], used_database: bool, error: BaseException | None
    ) -> None:
        status = conn.pgconn.transaction_status
        if status == TransactionStatus.UNKNOWN and isinstance(error, psycopg.OperationalError):
            raise error  # the connection was lost during the job: the batch goes back
        if status not in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            # A statement still running or a broken connection: the batch cannot go on.
            raise BatchBroken(f"connection left {TransactionStatus(status).name} by the handler")
        if used_database:
            # Either way the job's tenant is cleared with its savepoint.
            if error is None:
                conn.execute(queries.RELEASE_SAVEPOINT)
            else:
                conn.execute(queries.ROLLBACK_TO_SAVEPOINT)
        elif status == TransactionStatus.INERROR:
            raise BatchBroken("the handler broke the transaction without using ctx.conn")

    def _failed(
        self,
        conn: psycopg.Connection[Any],
        job: Job,
        error: BaseException,
        duration: float,
        report: BatchReport,
    ) -> None:
        decision = decide(error, job.delivery.attempt, self._cfg.retry, jitter=random.random())
        if isinstance(decision, DeadLetter):
            self._dead_letter(conn, job, error, duration, report, reason=decision.reason)
            return
        queries.retry(conn, self._cfg.queue, job.delivery, decision.delay)
        report.failed.append(
            Failed(job, describe(error), classify(error), duration, retry_in=decision.delay)
        )

    def _give_up(self, conn: psycopg.Connection[Any], job: Job, report: BatchReport) -> None:
        attempts = job.delivery.attempt - 1
        error = RuntimeError(
            f"read {attempts} times without an outcome (the worker crashed, was killed"
            " or lost its connection mid-job); max_attempts reached"
        )
        self._dead_letter(conn, job, error, None, report, reason="max_attempts")

    def _dead_letter(
        self,
        conn: psycopg.Connection[Any],
        job: Job,
        error: BaseException,
        duration: float | None,
        report: BatchReport,
        *,
        reason: str = "malformed",
    ) -> None:
        """Dead-letter a job; ``duration`` None when its handler never ran."""
        text = str(error) if reason in ("malformed", "forbidden") else describe(error)
        tb = None
        if error.__traceback__ is not None or error.__cause__ is not None:
            tb = "".join(traceback.format_exception(error))
        dead_id = queries.dead_letter(conn, self._cfg.queue, job.delivery, reason, text, tb)
        report.failed.append(
            Failed(
                job,
                text,
                classify(error),
                duration or 0.0,
                attempted=duration is not None,
                dead_letter_id=dead_id,
                reason=reason,
            )
        )

    # -- after commit --------------------------------------------------------------------

    def _report(self, report: BatchReport, duration: float) -> None:
        queue, metrics = self._cfg.queue, self._metrics
        # One line per batch at INFO; per-job success lines are DEBUG (at thousands of
        # jobs a second they would cost the worker a quarter of its CPU).
        self._log.info(
            "batch_committed",
            queue=queue,
            done=len(report.done),
            failed=len(report.failed),
            duplicates=len(report.duplicates),
            released=len(report.released),
            lost=len(report.lost),
            duration_ms=round(duration * 1000),
        )
        for job, duration_s in report.done:
            assert job.envelope is not None
            self._log.debug("job_succeeded", **job.context, duration_ms=round(duration_s * 1000))
            metrics.job_done(queue=queue, kind=job.envelope.kind, duration_s=duration_s)
        for f in report.failed:
            kind = f.job.kind
            if f.attempted:
                f.job.log.warning(
                    "job_failed",
                    error=f.error,
                    error_class=f.failure,
                    duration_ms=round(f.duration_s * 1000),
                    retrying=f.retry_in is not None,
                )
                metrics.job_failed(
                    queue=queue,
                    kind=kind or queue,
                    duration_s=f.duration_s,
                    retrying=f.retry_in is not None,
                )
            if f.retry_in is not None:
                f.job.log.info("job_retry_scheduled", delay_s=round(f.retry_in, 3))
            else:
                f.job.log.error(
                    "job_dead_lettered",
                    reason=f.reason,
                    error=f.error,
                    dead_letter_id=f.dead_letter_id,
                )
                metrics.job_dead_lettered(queue=queue, kind=kind, reason=f.reason or "")
        for job in report.duplicates:
            job.log.info("job_already_done")
        for job in report.released:
            job.log.info("job_released")
        for job in report.lost:
            job.log.warning("job_lost")
