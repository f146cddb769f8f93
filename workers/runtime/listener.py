"""Waking idle slots the moment a job is enqueued (LISTEN), with polling behind it.

PGMQ notifies ``pgmq.q_<queue>.INSERT`` when a message is inserted (enabled,
unthrottled, by the job-queues migration); the notification is delivered when
the enqueuing transaction commits. One thread per process holds a LISTEN
connection and bumps the :class:`Waker`; slots that found the queue empty wait
on it, or for the poll interval, whichever comes first -- so a lost notification
(a dropped LISTEN connection, a PGMQ without notify support) costs at most one
poll interval. After every (re)connection the listener wakes every slot for a
catch-up read: notifications sent while it was away are lost, messages are not.

A notification wakes one idle slot, not all of them: for a single new message, every
woken slot would check out a connection and read, and all but one would find nothing.
A slot that reads a full batch wakes one more (the queue holds more than it took), so a
burst -- whose notifications PostgreSQL may fold into one -- still fans out to every slot
within a few batches.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from workers.runtime import queries
from workers.runtime.retry import Backoff


class Waker:
    """A generation counter: a slot waits until it moves past what it last saw."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def wake(self, *, everyone: bool = False) -> None:
        """Wake one waiting slot (or all); a slot not waiting now sees it when it next waits."""
        with self._cond:
            self._generation += 1
            if everyone:
                self._cond.notify_all()
            else:
                self._cond.notify()

    def wait(self, seen: int, timeout: float) -> None:
        """Return when the generation is past ``seen``, or after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation != seen, timeout)


class InsertListener(threading.Thread):
    """LISTENs for inserts into one queue and wakes the slots; reconnects forever."""

    # How often an idle LISTEN connection is checked (a dead peer is noticed then,
    # or by TCP keepalives, whichever is first).
    PING_INTERVAL = 5.0

    def __init__(
        self,
        url: str,
        queue: str,
        waker: Waker,
        stopping: threading.Event,
        *,
        connect_kwargs: dict[str, Any],
        reconnect_max_delay: float,
        log: Any,
    ) -> None:
        super().__init__(name=f"dragonfly-listen-{queue}", daemon=True)
        self._url = url
        self._queue = queue
        self._waker = waker
        self._stopping = stopping
        self._connect_kwargs = connect_kwargs
        self._backoff = Backoff(reconnect_max_delay)
        self._log = log.bind(queue=queue, channel=queries.insert_channel(queue))
        self.connected = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                self.connected.clear()
                delay = self._backoff.next_delay()
                self._log.warning(
                    "listener_disconnected",
                    error=" ".join(str(exc).split()) or type(exc).__name__,
                    retry_in_s=round(delay, 2),
                )
                self._stopping.wait(delay)

    def _listen(self) -> None:
        with psycopg.connect(self._url, autocommit=True, **self._connect_kwargs) as conn:
            queries.listen(conn, self._queue)
            reconnected = self._backoff.failures > 0
            self._backoff.reset()
            self.connected.set()
            self._log.info("listener_connected", reconnected=reconnected)
            # Catch up: anything enqueued while nobody listened is read now.
            self._waker.wake(everyone=True)
            last_ping = time.monotonic()
            while not self._stopping.is_set():
                for _notify in conn.notifies(timeout=1.0):
                    self._waker.wake()
                    if self._stopping.is_set():
                        break
                if time.monotonic() - last_ping >= self.PING_INTERVAL:
                    conn.execute(queries.PING)
                    last_ping = time.monotonic()
