"""One scheduler per fleet: a session-level advisory lock.

Every ``dragonfly scheduler`` process tries ``pg_try_advisory_lock`` each tick;
the one that holds it runs the tasks, the others stand by. The lock belongs to
the holder's database session, so it is released the moment that process dies
or loses its connection, and a standby takes over on its next tick. Advisory
locks are per database: fleets on different databases do not interfere.
"""

from __future__ import annotations

from typing import Any

import psycopg

# "dfsched1" as a 63-bit advisory lock key; fixed forever.
SCHEDULER_LOCK_KEY = 0x6466736368656431


class FleetLock:
    """The advisory lock on one autocommit connection."""

    def __init__(self, conn: psycopg.Connection[Any], key: int = SCHEDULER_LOCK_KEY) -> None:
        self._conn = conn
        self._key = key
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if free (idempotent while held); return whether held."""
        if not self.held:
            row = self._conn.execute("select pg_try_advisory_lock(%s)", (self._key,)).fetchone()
            self.held = bool(row and row[0])
        return self.held

    def release(self) -> None:
        if self.held:
            self._conn.execute("select pg_advisory_unlock(%s)", (self._key,))
            self.held = False
