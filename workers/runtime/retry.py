"""Retry decisions: pure functions of the failure, the attempt and the policy.

Two kinds of retry are kept apart (docs/worker-runtime.md):

- a *job* that failed is retried by the queue: :func:`decide` maps
  ``(error, attempt)`` to :class:`Retry` (push the message's visibility timeout
  by an exponential backoff with jitter) or :class:`DeadLetter`; no sleeping,
  no state, so it is tested as a table;
- a *connection* that broke is retried in place by the consumer loop with
  :class:`Backoff` (capped exponential, jittered), so a database restart causes
  neither a crash loop nor a thundering herd of reconnects.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from workers.runtime.errors import Failure, TransientError, classify

DeadLetterReason = Literal["malformed", "forbidden", "permanent", "max_attempts", "timeout"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to give up on a job and how long to wait between its attempts."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 300.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``delay`` seconds (the message's new visibility timeout)."""

    delay: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Give up: move the message to the dead-letter store."""

    reason: DeadLetterReason


Decision = Retry | DeadLetter


def backoff_delay(attempt: int, policy: RetryPolicy, jitter: float) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random.

    ``jitter`` in [0, 1) is the random draw (passed in, so this stays pure):
    attempt 1 waits between base/2 and base, attempt 2 between base and 2*base,
    and so on, never more than ``max_delay``.
    """
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** max(attempt - 1, 0))
    return ceiling / 2.0 + ceiling / 2.0 * min(max(jitter, 0.0), 1.0)


def decide(error: BaseException, attempt: int, policy: RetryPolicy, *, jitter: float) -> Decision:
    """What to do after attempt number ``attempt`` (1-based) failed with ``error``."""
    failure: Failure = classify(error)
    if failure == "malformed":
        return DeadLetter("malformed")
    if failure == "forbidden":
        return DeadLetter("forbidden")
    if failure == "permanent":
        return DeadLetter("permanent")
    if attempt >= policy.max_attempts:
        return DeadLetter("timeout" if failure == "timeout" else "max_attempts")
    delay = backoff_delay(attempt, policy, jitter)
    if isinstance(error, TransientError) and error.retry_after is not None:
        delay = max(delay, min(error.retry_after, policy.max_delay))
    return Retry(delay)


class Backoff:
    """Capped exponential backoff for reconnecting: 0.1 s, 0.2 s, ... up to ``cap``."""

    def __init__(
        self, cap: float, *, initial: float = 0.1, rand: Callable[[], float] = random.random
    ) -> None:
        self._cap = cap
        self._initial = min(initial, cap)
        self._rand = rand
        self._next = self._initial
        self.failures = 0

    def next_delay(self) -> float:
        """The delay before the next attempt (jittered between half and all of it)."""
        delay = self._next
        self._next = min(self._cap, self._next * 2.0)
        self.failures += 1
        return delay / 2.0 + delay / 2.0 * self._rand()

    def reset(self) -> None:
        self._next = self._initial
        self.failures = 0
