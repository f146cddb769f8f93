"""What can go wrong in a job, and which failures are worth another attempt.

Handlers and adapters raise :class:`PermanentError` (retrying cannot help: the
message goes to the dead-letter store now) or :class:`TransientError` (the next
attempt may succeed: it is retried with backoff). Everything else is sorted by
:func:`classify`, the one place that maps exceptions -- psycopg's SQLSTATEs,
httpx's transport and status errors, the standard library's timeouts -- to a
:data:`Failure` class. The retry decision (:mod:`workers.runtime.retry`) only
ever sees that class and the attempt number.
"""

from __future__ import annotations

from typing import Literal

import httpx
import psycopg

from workers.redact import scrub

Failure = Literal["transient", "permanent", "timeout", "malformed", "forbidden", "unknown"]
"""How a job attempt failed.

- ``transient``: worth retrying (connection loss, serialization failure, deadlock,
  an outside service's 5xx/429/timeout, :class:`TransientError`);
- ``permanent``: retrying cannot help (the database refused the data, the vendor
  rejected the request, :class:`PermanentError`): dead-lettered at once;
- ``timeout``: the handler overran its kind's job timeout; retried;
- ``malformed``: the envelope or payload does not validate; dead-lettered at once;
- ``forbidden``: the envelope's provenance may not enqueue the kind or set a field of its
  payload (:class:`Forbidden`, :mod:`workers.runtime.policy`); dead-lettered at once;
- ``unknown``: any other exception (most likely a bug); retried, so a fix deployed
  before ``max_attempts`` still saves the job, then dead-lettered.
"""


class PermanentError(Exception):
    """Retrying cannot help: dead-letter the job now with this message.

    The message is scrubbed (:func:`workers.redact.scrub`): adapters build it from
    what an outside service answered, which may echo a token or a URL.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(scrub(message))


class TransientError(Exception):
    """The next attempt may succeed; ``retry_after`` (seconds) asks for a minimum delay.

    The message is scrubbed, as :class:`PermanentError`'s is.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(scrub(message))
        self.retry_after = retry_after


class MalformedMessage(Exception):
    """The message's envelope or payload does not validate; never retried."""


class Forbidden(MalformedMessage):
    """Who enqueued the job may not ask for it: never retried, dead-lettered as forbidden.

    Raised by the policy re-check (:mod:`workers.runtime.policy`) before the job has any
    effect; a handler may raise it too (a check only it can make). A kind of
    :class:`MalformedMessage`, so whatever treats a bad message as final treats this so too.
    """


class JobTimeout(BaseException):
    """Raised in a handler's thread when it overruns its kind's job timeout.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that a handler's
    ``except Exception`` does not swallow it.
    """


class JobInterrupted(BaseException):
    """Raised in a handler's thread when shutdown's grace period ran out."""


# SQLSTATE classes and codes a later attempt may get past: transaction rollback
# (serialization failure, deadlock), connection exceptions, insufficient resources,
# operator intervention (query canceled, admin shutdown, crash recovery), lock not
# available, system errors (I/O).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"40", "08", "53", "57", "58"})
_TRANSIENT_SQLSTATES = frozenset({"55P03", "55006"})


def _classify_psycopg(exc: psycopg.Error) -> Failure:
    state = exc.sqlstate
    if state is None:
        # No answer from the server at all: the connection broke or timed out.
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return "transient"
        return "unknown"
    if state[:2] in _TRANSIENT_SQLSTATE_CLASSES or state in _TRANSIENT_SQLSTATES:
        return "transient"
    # The server refused the statement on its merits (22xxx data, 23xxx integrity,
    # 42xxx privilege/syntax, P0xxx raised by an RPC, DFxxx the project's own codes):
    # the same input will be refused again.
    return "permanent"


def _classify_http(exc: httpx.HTTPError) -> Failure:
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return "transient" if status == 429 or status >= 500 else "permanent"
    if isinstance(exc, httpx.TransportError):  # timeouts, connection and protocol errors
        return "transient"
    return "unknown"


def classify(exc: BaseException) -> Failure:
    """The failure class of an exception raised by a job attempt."""
    if isinstance(exc, JobTimeout):
        return "timeout"
    if isinstance(exc, Forbidden):
        return "forbidden"
    if isinstance(exc, MalformedMessage):
        return "malformed"
    if isinstance(exc, PermanentError):
        return "permanent"
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, psycopg.Error):
        return _classify_psycopg(exc)
    if isinstance(exc, httpx.HTTPError):
        return _classify_http(exc)
    if isinstance(exc, TimeoutError | ConnectionError):
        return "transient"
    return "unknown"


def describe(exc: BaseException) -> str:
    """One line for logs and the dead-letter store: type, SQLSTATE when any, message.

    Scrubbed: a library's exception (httpx's status error names the URL) may carry secrets.
    """
    message = " ".join(str(exc).split())
    state = exc.sqlstate if isinstance(exc, psycopg.Error) else None
    name = type(exc).__name__
    prefix = f"{name} [{state}]" if state else name
    return scrub(f"{prefix}: {message}") if message else prefix
