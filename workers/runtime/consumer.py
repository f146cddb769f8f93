"""The consumer: one per worker process, for one kind's queue.

Threads (sync psycopg 3 throughout; handlers are plain functions):

- ``concurrency`` slots, each with a pooled connection for the duration of a
  batch: read a batch, run it (:mod:`workers.runtime.batch`), and when the
  queue looked empty wait for the listener's wake-up or the poll interval;
- the listener (:mod:`workers.runtime.listener`): LISTEN for inserts;
- the watchdog (:mod:`workers.runtime.watchdog`): job timeouts, shutdown grace.

A database outage is just a failed batch: the slot waits (capped, jittered
backoff) and tries again, readiness goes false, nothing crashes; the pool checks
a connection before handing it out when it sat idle for more than a few seconds
(``ConnectionPool.check_connection``; a fresher one is found dead by the read).
Uncommitted work is never acknowledged, so the messages of a batch lost with
its connection come back after their visibility timeout.

Shutdown (:meth:`Consumer.run` after :meth:`Consumer.stop`): no new batch is
read; each slot finishes the job it is running and releases the rest of its
batch; after ``shutdown_grace`` seconds the handlers still running are
interrupted and their jobs released too.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from workers.runtime import queries
from workers.runtime.batch import BatchConfig, BatchRunner
from workers.runtime.errors import describe
from workers.runtime.handlers import JobKind
from workers.runtime.hooks import JobMetrics, NoMetrics, ReadinessCallback, ignore_readiness
from workers.runtime.listener import InsertListener, Waker
from workers.runtime.retry import Backoff, RetryPolicy
from workers.runtime.watchdog import Slot, Watchdog
from workers.settings import Settings

# After the grace period, how long interrupted handlers get to roll back and release.
_RELEASE_BUDGET = 5.0

# A connection taken from the pool is checked (one round trip) only when it sat there
# longer than this. Idle slots read at least every poll interval, so in practice the read
# itself finds a dead connection: that batch fails like any outage (a 0.05-0.1 s backoff,
# then a fresh connection) instead of every pickup paying for a check.
_CHECK_AFTER_IDLE = 5.0


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """Everything the consumer needs to know, resolved from settings and the kind."""

    queue: str
    concurrency: int
    batch_size: int
    batch_window: float
    visibility_timeout: int
    poll_interval: float
    job_timeout: float
    shutdown_grace: float
    reconnect_max_delay: float
    connect_timeout: int
    retry: RetryPolicy
    worker: str

    @classmethod
    def from_settings(
        cls, settings: Settings, job: JobKind[Any], *, concurrency: int | None = None
    ) -> ConsumerConfig:
        """Settings, with the kind's own defaults and per-kind overrides applied.

        Job timeout: ``DRAGONFLY_JOB_TIMEOUTS[kind]``, else the kind's ``timeout``,
        else ``DRAGONFLY_JOB_TIMEOUT``. Batch size: the kind's ``batch_size``, else
        ``DRAGONFLY_BATCH_SIZE``.
        """
        timeout = settings.job_timeouts.get(job.kind, job.timeout or settings.job_timeout)
        return cls(
            queue=job.kind,
            concurrency=concurrency or settings.worker_concurrency,
            batch_size=job.batch_size or settings.batch_size,
            batch_window=settings.batch_window,
            visibility_timeout=settings.visibility_timeout,
            poll_interval=settings.poll_interval,
            job_timeout=timeout,
            shutdown_grace=settings.shutdown_grace,
            reconnect_max_delay=settings.reconnect_max_delay,
            connect_timeout=settings.connect_timeout,
            retry=RetryPolicy(
                max_attempts=settings.max_attempts,
                base_delay=settings.retry_base_delay,
                max_delay=settings.retry_max_delay,
            ),
            worker=f"{socket.gethostname()}:{os.getpid()}",
        )

    def connect_kwargs(self) -> dict[str, Any]:
        """Connection options: timeouts and keepalives so a dead peer is noticed."""
        return {
            "connect_timeout": self.connect_timeout,
            "application_name": f"dragonfly-worker:{self.queue}",
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }


class Consumer:
    """Consumes one queue with bounded concurrency until stopped."""

    def __init__(
        self,
        url: str,
        job: JobKind[Any],
        config: ConsumerConfig,
        *,
        adapters: Mapping[str, Any] | None = None,
        metrics: JobMetrics | None = None,
        on_ready: ReadinessCallback = ignore_readiness,
        log: Any,
    ) -> None:
        self.config = config
        self._url = url
        self._log = log.bind(queue=config.queue)
        self._on_ready = on_ready
        self._stopping = threading.Event()
        self._waker = Waker()
        self._ready_lock = threading.Lock()
        self._ready = False
        self._down_since: float | None = None
        self.last_poll: float | None = None
        self.slots = [Slot(i) for i in range(config.concurrency)]
        self._runner = BatchRunner(
            job,
            BatchConfig(
                queue=config.queue,
                worker=config.worker,
                batch_size=config.batch_size,
                batch_window=config.batch_window,
                visibility_timeout=config.visibility_timeout,
                job_timeout=config.job_timeout,
                retry=config.retry,
            ),
            adapters=adapters or {},
            metrics=metrics or NoMetrics(),
            log=log,
            stopping=self._stopping,
        )
        # The pool's own lines (one per checkout at INFO, one per failed reconnection at
        # WARNING) repeat our database_* events, unstructured; they also go to stderr
        # through a second stream lock, which can split our JSON lines.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self._pool = ConnectionPool(
            url,
            min_size=config.concurrency,
            max_size=config.concurrency,
            open=False,
            name=f"dragonfly-{config.queue}",
            kwargs={"autocommit": True, **config.connect_kwargs()},
            configure=self._configure,
            check=self._check,
            timeout=max(float(config.connect_timeout), 1.0),
            # The pool's own reconnection backs off without limit until this
            # timeout, then starts over on the next request: this caps its wait.
            reconnect_timeout=max(config.reconnect_max_delay, 1.0),
        )
        self._listener = InsertListener(
            url,
            config.queue,
            self._waker,
            self._stopping,
            connect_kwargs=config.connect_kwargs(),
            reconnect_max_delay=config.reconnect_max_delay,
            log=log,
        )
        self._watchdog = Watchdog(self.slots)
        self._threads: list[threading.Thread] = []
        # id(connection) -> when a slot last gave it back after a successful batch.
        self._returned: dict[int, float] = {}

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        returned = self._returned.pop(id(conn), None)
        if returned is None or time.monotonic() - returned > _CHECK_AFTER_IDLE or conn.broken:
            ConnectionPool.check_connection(conn)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        # Backstop for a handler stuck where the watchdog cannot reach (a C call
        # without a timeout): the server ends its transaction, releasing its
        # messages, a minute after the job timeout.
        queries.configure_job_session(conn, self.config.job_timeout + 60.0)

    # -- readiness -----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while the queue is being read (the last read succeeded)."""
        return self._ready

    def _set_ready(self, ready: bool, reason: str = "") -> None:
        with self._ready_lock:
            if ready == self._ready:
                return
            self._ready = ready
        self._on_ready(ready, reason)

    def _database_ok(self) -> None:
        self.last_poll = time.monotonic()
        if self._down_since is not None:
            self._log.info(
                "database_reconnected", down_s=round(time.monotonic() - self._down_since, 2)
            )
            self._down_since = None
        self._set_ready(True)

    def _database_down(self, exc: BaseException, retry_in: float) -> None:
        error = describe(exc)
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._log.warning("database_unavailable", error=error, retry_in_s=round(retry_in, 2))
        else:
            self._log.debug(
                "database_still_unavailable", error=error, retry_in_s=round(retry_in, 2)
            )
        self._set_ready(False, f"database unavailable: {error}")

    # -- running -------------------------------------------------------------------

    def start(self) -> None:
        """Open the pool and start the threads (returns at once)."""
        self._pool.open(wait=False)
        self._listener.start()
        self._watchdog.start()
        for slot in self.slots:
            thread = threading.Thread(
                target=self._slot_loop, args=(slot,), name=f"dragonfly-slot-{slot.index}"
            )
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        self._log.info(
            "worker_started",
            concurrency=self.config.concurrency,
            batch_size=self.config.batch_size,
            visibility_timeout_s=self.config.visibility_timeout,
            job_timeout_s=self.config.job_timeout,
            worker=self.config.worker,
        )

    def stop(self) -> None:
        """Stop reading; in-flight jobs finish (see :meth:`drain`)."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._waker.wake(everyone=True)
            self._set_ready(False, "stopping")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def drain(self) -> bool:
        """After :meth:`stop`: wait for the slots; True when all finished cleanly."""
        grace_end = time.monotonic() + self.config.shutdown_grace
        self._join(grace_end)
        clean = not self._alive()
        if not clean:
            self._log.warning(
                "shutdown_grace_expired",
                busy_slots=sum(1 for s in self.slots if s.busy),
                grace_s=self.config.shutdown_grace,
            )
            self._watchdog.interrupt_all()
            self._join(time.monotonic() + _RELEASE_BUDGET)
            self._abandon([s for s in self.slots if s.busy and s.batch])
        self._watchdog.stop()
        self._pool.close(timeout=1.0)
        self._log.info("worker_stopped", clean=clean and not self._alive())
        return clean

    def _abandon(self, slots: list[Slot]) -> None:
        """Handlers that ignored every interruption (blocked in a C call): end their
        sessions from a connection of our own, then release their batches."""
        if not slots:
            return
        try:
            with psycopg.connect(
                self._url, autocommit=True, **self.config.connect_kwargs()
            ) as conn:
                for slot in slots:
                    batch, pid = list(slot.batch), slot.backend_pid
                    if pid is not None:
                        queries.terminate_backend(conn, pid, wait_s=5.0)
                    released = queries.release(conn, self.config.queue, batch)
                    self._log.warning(
                        "batch_abandoned",
                        slot=slot.index,
                        msg_ids=[d.msg_id for d in batch],
                        released=released,
                    )
        except psycopg.Error as exc:
            # Their messages still come back when their visibility timeout ends.
            self._log.warning("batch_abandon_failed", error=describe(exc))

    def _join(self, until: float) -> None:
        for thread in self._threads:
            thread.join(max(0.0, until - time.monotonic()))

    def _alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _slot_loop(self, slot: Slot) -> None:
        backoff = Backoff(self.config.reconnect_max_delay)
        while not self._stopping.is_set():
            seen = self._waker.generation
            try:
                with self._pool.connection() as conn:
                    read = self._runner.run_once(conn, slot)
                    self._returned[id(conn)] = time.monotonic()
            except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
                delay = backoff.next_delay()
                self._database_down(exc, delay)
                self._stopping.wait(delay)
                continue
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one batch
                # A bug or an unexpected database answer: log it, back off, go on.
                delay = backoff.next_delay()
                self._log.exception("consumer_error", error=describe(exc), retry_in_s=delay)
                self._stopping.wait(delay)
                continue
            backoff.reset()
            self._database_ok()
            if read < self.config.batch_size:
                self._waker.wait(seen, self.config.poll_interval)
            else:
                self._waker.wake()  # more is waiting than one slot took: bring in another
