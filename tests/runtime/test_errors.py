"""Which failures are worth another attempt: one place, by SQLSTATE and type."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from psycopg import errors as pg_errors

from workers.runtime.errors import (
    Forbidden,
    JobInterrupted,
    JobTimeout,
    MalformedMessage,
    PermanentError,
    TransientError,
    classify,
    describe,
)


def _status(code: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://127.0.0.1/vendor")
    return httpx.HTTPStatusError(
        "x", request=request, response=httpx.Response(code, request=request)
    )


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (TransientError("x"), "transient"),
        (PermanentError("x"), "permanent"),
        (JobTimeout("x"), "timeout"),
        (MalformedMessage("x"), "malformed"),
        (Forbidden("x"), "forbidden"),
        (psycopg.OperationalError("server closed the connection"), "transient"),
        (psycopg.InterfaceError("connection already closed"), "transient"),
        (pg_errors.SerializationFailure("x"), "transient"),
        (pg_errors.DeadlockDetected("x"), "transient"),
        (pg_errors.QueryCanceled("x"), "transient"),
        (pg_errors.AdminShutdown("x"), "transient"),
        (pg_errors.LockNotAvailable("x"), "transient"),
        (pg_errors.TooManyConnections("x"), "transient"),
        (pg_errors.UniqueViolation("x"), "permanent"),
        (pg_errors.CheckViolation("x"), "permanent"),
        (pg_errors.InvalidParameterValue("x"), "permanent"),  # 22023 from an RPC
        (pg_errors.NoDataFound("x"), "permanent"),  # P0002
        (pg_errors.InsufficientPrivilege("x"), "permanent"),
        (pg_errors.ObjectNotInPrerequisiteState("x"), "permanent"),  # 55000
        (psycopg.ProgrammingError("commit forbidden"), "unknown"),
        (_status(503), "transient"),
        (_status(429), "transient"),
        (_status(404), "permanent"),
        (httpx.ReadTimeout("slow"), "transient"),
        (httpx.ConnectError("refused"), "transient"),
        (TimeoutError(), "transient"),
        (ConnectionResetError(), "transient"),
        (ValueError("bug"), "unknown"),
    ],
)
def test_classify(error: BaseException, failure: str) -> None:
    assert classify(error) == failure


def test_interruptions_escape_a_handlers_except_exception() -> None:
    for exc in (JobTimeout, JobInterrupted):
        assert not issubclass(exc, Exception)


def test_describe_is_one_line_with_the_sqlstate() -> None:
    assert describe(pg_errors.UniqueViolation("duplicate key\n  detail")) == (
        "UniqueViolation [23505]: duplicate key detail"
    )
    assert describe(KeyError()) == "KeyError"
