"""The process's heartbeat: its row in ``dragonfly.fleet_processes``.

Every ``interval`` seconds a daemon thread writes (host, pid, process type, start time,
readiness and why not) over the probe's connection; a clean stop deletes the row. A process
that dies leaves a row that stops moving, and readers (the console's Fleet page, the
``dragonfly_fleet_processes_ready`` gauge) count a process as up only while its row is
fresher than 30 seconds. A heartbeat that cannot be written (the database is down, the
migration that adds the table has not run) is tried again next time; the process goes on.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from datetime import UTC, datetime

from workers.log import get_logger
from workers.observability.http import Readiness
from workers.observability.probe import DatabaseProbe, ProbeError

INTERVAL_SECONDS = 5.0
"""How often a process writes its heartbeat (readers call it gone after 30 s)."""


class Heartbeat:
    """Writes the heartbeat of one process until :meth:`stop`."""

    def __init__(
        self,
        probe: DatabaseProbe,
        readiness: Readiness,
        process: str,
        *,
        interval: float = INTERVAL_SECONDS,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self._probe = probe
        self._readiness = readiness
        self.process = process
        self.host = host or socket.gethostname()
        self.pid = pid or os.getpid()
        self.started_at = datetime.now(UTC)
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._failing = False
        self._log = get_logger("workers.observability")

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def beat_now(self) -> None:
        """Write the next heartbeat at once (readiness changed)."""
        self._wake.set()

    def _beat(self) -> None:
        try:
            self._probe.heartbeat(
                host=self.host,
                pid=self.pid,
                process=self.process,
                started_at=self.started_at,
                ready=self._readiness.ready,
                reason=self._readiness.reason,
            )
        except ProbeError as exc:
            if not self._failing:
                self._log.warning("heartbeat_failed", process=self.process, error=str(exc))
            self._failing = True
            return
        if self._failing:
            self._log.info("heartbeat_resumed", process=self.process)
        self._failing = False

    def _run(self) -> None:
        while not self._stop.is_set():
            self._beat()
            self._wake.wait(self._interval)
            self._wake.clear()

    def stop(self) -> None:
        """Stop beating and remove the row (best effort: a row left behind goes stale)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        with contextlib.suppress(ProbeError):
            self._probe.gone(host=self.host, pid=self.pid)
