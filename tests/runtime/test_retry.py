"""The retry decision is a pure function: a table of cases, no database, no clock."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pg_errors

from workers.runtime.errors import (
    Forbidden,
    JobTimeout,
    MalformedMessage,
    PermanentError,
    TransientError,
)
from workers.runtime.retry import Backoff, DeadLetter, Retry, RetryPolicy, backoff_delay, decide

POLICY = RetryPolicy(max_attempts=4, base_delay=2.0, max_delay=10.0)


@pytest.mark.parametrize(
    ("error", "attempt", "expected"),
    [
        (TransientError("503"), 1, Retry(1.0)),
        (TransientError("503"), 2, Retry(2.0)),
        (TransientError("503"), 3, Retry(4.0)),
        (TransientError("503"), 4, DeadLetter("max_attempts")),
        (KeyError("bug"), 1, Retry(1.0)),  # unknown: retried, a fix may land meanwhile
        (KeyError("bug"), 4, DeadLetter("max_attempts")),
        (JobTimeout("slow"), 1, Retry(1.0)),
        (JobTimeout("slow"), 4, DeadLetter("timeout")),
        (PermanentError("no"), 1, DeadLetter("permanent")),
        (MalformedMessage("bad"), 1, DeadLetter("malformed")),
        (Forbidden("no"), 1, DeadLetter("forbidden")),  # never retried, not even once
        (pg_errors.SerializationFailure("x"), 1, Retry(1.0)),
        (pg_errors.DeadlockDetected("x"), 2, Retry(2.0)),
        (psycopg.OperationalError("connection lost"), 3, Retry(4.0)),
        (pg_errors.UniqueViolation("dup"), 1, DeadLetter("permanent")),
        (pg_errors.InvalidParameterValue("bad"), 1, DeadLetter("permanent")),
    ],
)
def test_decide(error: BaseException, attempt: int, expected: Retry | DeadLetter) -> None:
    assert decide(error, attempt, POLICY, jitter=0.0) == expected


def test_backoff_grows_exponentially_with_equal_jitter_and_is_capped() -> None:
    assert [backoff_delay(n, POLICY, 0.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [backoff_delay(n, POLICY, 1.0) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff_delay(2, POLICY, 0.5) == 3.0


def test_retry_after_is_honoured_up_to_the_maximum_delay() -> None:
    assert decide(TransientError("429", retry_after=7), 1, POLICY, jitter=0) == Retry(7.0)
    assert decide(TransientError("429", retry_after=60), 1, POLICY, jitter=0) == Retry(10.0)
    assert decide(TransientError("429", retry_after=0.1), 3, POLICY, jitter=0) == Retry(4.0)


def test_one_attempt_policy_dead_letters_the_first_failure() -> None:
    once = RetryPolicy(max_attempts=1)
    assert decide(TransientError("x"), 1, once, jitter=0.5) == DeadLetter("max_attempts")


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base_delay": -1}, {"base_delay": 5, "max_delay": 1}]
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_reconnect_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(1.0, initial=0.1, rand=lambda: 1.0)
    assert [round(backoff.next_delay(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.failures == 6
    backoff.reset()
    assert (backoff.next_delay(), backoff.failures) == (0.1, 1)
