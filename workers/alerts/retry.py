"""The delivery retry decision: a pure ``(policy, attempt, error) -> decision`` function.

Backoff is exponential (base, 2x base, 4x base, ... capped), at least the
``Retry-After`` a sink reported. A permanent error, or the last allowed attempt,
makes the delivery dead: on-call lists it and retries it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.alerts.sinks.base import DeliveryError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a delivery is retried."""

    max_attempts: int = 8
    base_seconds: float = 5.0
    max_seconds: float = 900.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        exponent = min(max(attempt - 1, 0), 60)
        return float(min(self.max_seconds, self.base_seconds * (2**exponent)))


@dataclass(frozen=True, slots=True)
class Decision:
    """Dead, or retry after ``delay_seconds``."""

    dead: bool
    delay_seconds: float = 0.0
    reason: str = ""


def decide(policy: RetryPolicy, attempt: int, error: DeliveryError) -> Decision:
    """What to do after attempt number ``attempt`` failed with ``error``."""
    if error.permanent:
        return Decision(dead=True, reason="permanent")
    if attempt >= policy.max_attempts:
        return Decision(dead=True, reason="max_attempts")
    delay = policy.delay(attempt)
    if error.retry_after is not None:
        delay = max(delay, min(error.retry_after, policy.max_seconds))
    return Decision(dead=False, delay_seconds=delay, reason="retry")
