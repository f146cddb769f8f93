"""SIGTERM / SIGINT: the first asks for a graceful stop, the second exits at once.

Handlers are installed explicitly, so the process behaves the same as PID 1 in
a container (where the kernel applies no default action to SIGTERM) and under
systemd. The handler itself only records the signal -- it runs between two
bytecodes of the main thread, which may hold a lock at that moment -- and the
main thread notices within :data:`POLL` seconds. The second signal ends the
process with ``os._exit`` (exit status 128 + signal number) without running
anything else: messages still locked by its transactions return to the queue
when their connections close.
"""

from __future__ import annotations

import os
import signal
import time
from types import FrameType

POLL = 0.05


class SignalStop:
    """Install with :meth:`install`; then ``wait()`` returns the first signal's name."""

    def __init__(self) -> None:
        self._first: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._first is not None:
            os.write(2, f"dragonfly: second {signal.Signals(signum).name}, exiting now\n".encode())
            os._exit(128 + signum)
        self._first = signum

    @property
    def requested(self) -> str | None:
        return signal.Signals(self._first).name if self._first is not None else None

    def request(self) -> None:
        """Ask for a stop as if SIGTERM had arrived (tests, embedding)."""
        if self._first is None:
            self._first = signal.SIGTERM

    def wait(self, until: float | None = None) -> str | None:
        """Block until a stop is requested (or monotonic ``until``); the signal's name."""
        while self._first is None and (until is None or time.monotonic() < until):
            time.sleep(POLL)
        return self.requested
