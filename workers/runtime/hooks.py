"""What the consumer reports, for metrics and readiness, without knowing who listens.

The process's observability (``workers.observability``) passes its
prometheus-client collectors as ``metrics`` and its readiness flag's
``set_ready`` as ``on_ready``; tests and the benchmark pass nothing and get the
no-op defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class JobMetrics(Protocol):
    """Called after each job attempt's transaction committed.

    ``duration_s`` is the handler's wall time. ``job_failed`` is called for
    every failed attempt (``retrying`` says whether another attempt follows); a
    failure that ends in the dead-letter store is followed by
    ``job_dead_lettered``. A malformed or forbidden message is only dead-lettered
    (``reason`` malformed or forbidden; ``kind`` is whatever the message claimed, or None).
    """

    def job_done(self, *, queue: str, kind: str, duration_s: float) -> None: ...

    def job_failed(self, *, queue: str, kind: str, duration_s: float, retrying: bool) -> None: ...

    def job_dead_lettered(self, *, queue: str, kind: str | None, reason: str) -> None: ...


class NoMetrics:
    """The default :class:`JobMetrics`: records nothing."""

    def job_done(self, *, queue: str, kind: str, duration_s: float) -> None:
        pass

    def job_failed(self, *, queue: str, kind: str, duration_s: float, retrying: bool) -> None:
        pass

    def job_dead_lettered(self, *, queue: str, kind: str | None, reason: str) -> None:
        pass


ReadinessCallback = Callable[[bool, str], None]
"""``on_ready(ready, reason)``: called when the consumer becomes ready (it read
its queue) or stops being ready (database unreachable, stopping)."""


def ignore_readiness(_ready: bool, _reason: str) -> None:
    pass
