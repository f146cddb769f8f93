"""The worker runtime: one consumer loop for every job kind.

A job kind is a pydantic payload model plus a handler (:class:`JobKind`); the
consumer (:mod:`workers.runtime.consumer`) reads its queue in batches, runs each
job inside a transaction that also records it done and deletes its message,
retries transient failures with backoff and dead-letters the rest. See
docs/worker-runtime.md.
"""

from workers.runtime.context import BatchContext, FetchContext, JobContext
from workers.runtime.envelope import Envelope
from workers.runtime.errors import PermanentError, TransientError
from workers.runtime.handlers import BatchItem, JobKind

__all__ = [
    "BatchContext",
    "BatchItem",
    "Envelope",
    "FetchContext",
    "JobContext",
    "JobKind",
    "PermanentError",
    "TransientError",
]
