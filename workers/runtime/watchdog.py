"""Stopping handlers that overrun: the per-kind job timeout, and shutdown's grace.

A handler runs in its slot's thread. When its deadline passes, the watchdog
(one thread per process) first cancels the statement the connection is running
(``cancel_safe``: a handler waiting on the database gets ``QueryCanceled``), and
if the handler is still running a moment later, raises :class:`JobTimeout` (or
:class:`JobInterrupted` at shutdown) inside the slot's thread, which stops a
handler busy in Python. Either way the attempt counts as a timeout failure and
the job's savepoint is rolled back. A handler blocked in a C call without its
own timeout cannot be interrupted; ``idle_in_transaction_session_timeout`` on
the job connections then ends its transaction on the server side, so its
message is not held forever (docs/worker-runtime.md).

No heartbeat is needed to keep a slow job's message from a second worker: the
job transaction holds the message's row lock (``claim_jobs``), and PGMQ's read
skips locked rows, however long ago the visibility timeout ran out.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from typing import Any, Literal

import psycopg

from workers.runtime.envelope import Delivery
from workers.runtime.errors import JobInterrupted, JobTimeout

Interruption = Literal["timeout", "shutdown"]

# How long after cancelling the statement the exception is raised in the thread.
_RAISE_AFTER = 0.2


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Schedule ``exc`` in another thread (``None`` withdraws a pending one)."""
    target = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


class Slot:
    """One unit of concurrency: a thread running one job at a time."""

    def __init__(self, index: int) -> None:
        self.index = index
        # The batch in hand and its connection's server process: what shutdown
        # releases if this slot does not finish in time.
        self.batch: list[Delivery] = []
        self.backend_pid: int | None = None
        self._lock = threading.Lock()
        self.thread_id: int | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._deadline = 0.0
        self._running = False
        self._interruption: Interruption | None = None
        self._raise_at = 0.0
        self._raised = False

    def arm(self, conn: psycopg.Connection[Any], timeout: float) -> None:
        """A handler starts now on this slot's thread."""
        with self._lock:
            self.thread_id = threading.get_ident()
            self._conn = conn
            self._deadline = time.monotonic() + timeout
            self._running = True
            self._interruption = None
            self._raised = False

    def disarm(self) -> Interruption | None:
        """The handler returned or raised; why it was interrupted, if it was.

        Safe to call twice for the same job (the answer stays the same).
        """
        with self._lock:
            if self._running:
                self._running = False
                self._conn = None
                if self._raised and self.thread_id is not None:
                    # Withdraw the exception if it has not been delivered yet.
                    _raise_in_thread(self.thread_id, None)
            return self._interruption

    def interrupt(self, why: Interruption) -> None:
        """Cancel the running handler's statement and schedule the exception."""
        with self._lock:
            if not self._running or self._interruption is not None:
                return
            self._interruption = why
            self._raise_at = time.monotonic() + _RAISE_AFTER
            conn = self._conn
            # Cancel while holding the lock: the slot's own statements after the
            # handler wait for it, so the cancel can only hit the handler's.
            if conn is not None:
                # Nothing to cancel, or the connection is already gone: both fine.
                with contextlib.suppress(psycopg.Error, OSError):
                    conn.cancel_safe(timeout=2.0)

    def tick(self, now: float) -> None:
        """Called by the watchdog: time out, or raise in a handler that ignored the cancel."""
        if self._running and self._interruption is None and now >= self._deadline:
            self.interrupt("timeout")
        with self._lock:
            if (
                self._running
                and self._interruption is not None
                and not self._raised
                and now >= self._raise_at
                and self.thread_id is not None
            ):
                exc = JobTimeout if self._interruption == "timeout" else JobInterrupted
                _raise_in_thread(self.thread_id, exc)
                self._raised = True

    @property
    def busy(self) -> bool:
        return self._running


class Watchdog(threading.Thread):
    """Checks every slot's deadline a few times per second."""

    def __init__(self, slots: list[Slot], *, interval: float = 0.05) -> None:
        super().__init__(name="dragonfly-watchdog", daemon=True)
        self._slots = slots
        self._interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            now = time.monotonic()
            for slot in self._slots:
                slot.tick(now)

    def interrupt_all(self) -> None:
        """Shutdown's grace ran out: interrupt every handler still running."""
        for slot in self._slots:
            slot.interrupt("shutdown")

    def stop(self) -> None:
        self._stopped.set()
