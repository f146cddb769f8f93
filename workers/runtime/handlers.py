"""Job kinds: a payload model plus a handler, found by ``module:attribute``.

A kind's package exposes a :class:`JobKind` as ``JOB``::

    # workers/enrich/__init__.py
    JOB = JobKind(kind="enrich", payload=EnrichPayload, handle=handle, adapters=make_adapters)

``dragonfly worker enrich`` loads ``workers.enrich:JOB``. Another definition can
be named instead -- ``--handler module:attr`` on the command line, or
``DRAGONFLY_HANDLERS='{"enrich": "module:attr"}'`` -- which is how the tests and
the benchmark run their own handlers in real worker processes, and how a kind
defined outside this package is found. Which kinds exist is the registry's
business (:mod:`workers.job_kinds`, ``dragonfly.job_kinds``), not this module's.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from workers.job_kinds import check_kind_name, default_spec
from workers.runtime.envelope import Envelope
from workers.settings import Settings

if TYPE_CHECKING:
    from workers.runtime.context import BatchContext, FetchContext, JobContext

P = TypeVar("P", bound=BaseModel)


class HandlerNotFound(Exception):
    """No job definition could be loaded for a kind; the message says what was tried."""


@dataclass(frozen=True, slots=True)
class BatchItem(Generic[P]):
    """One job offered to a kind's ``handle_batch``: its message, envelope and payload."""

    msg_id: int
    envelope: Envelope
    payload: P


@dataclass(frozen=True)
class JobKind(Generic[P]):
    """How to run one kind of job.

    - ``payload``: the pydantic model of the envelope's ``payload``;
    - ``handle(ctx, payload)``: does the work through ``ctx.conn`` inside the job's
      transaction; never commits, never reads the queue, never sleeps; raises
      PermanentError / TransientError (or anything, see ``classify``) to fail;
    - ``adapters(settings)``: builds the outside-world adapters once per process
      (a mapping handed to every job as ``ctx.adapters``);
    - ``timeout``: seconds a handler may run (default ``DRAGONFLY_JOB_TIMEOUT``;
      ``DRAGONFLY_JOB_TIMEOUTS`` overrides per kind);
    - ``batch_size``: messages read (and committed) together (default
      ``DRAGONFLY_BATCH_SIZE``); small for kinds whose handlers are slow.
    - ``handle_batch(ctx, items)``: optional; runs many jobs of one batch at once
      (set-based SQL instead of a few statements per job) and returns the msg_ids
      it completed. A job it does not return must have had no effect: the runtime
      then runs it through ``handle`` as usual (so bad input fails there, with its
      own reason). If it raises, everything it wrote is rolled back and every job
      runs through ``handle``. Called with two or more jobs, under one savepoint
      and the kind's timeout.
    - ``fetch(ctx, payload)``: optional; the job's *outside phase*, for work that
      talks to the outside world (vendor HTTP, SMTP, an LLM). The runtime runs it
      before the job's transaction, with no transaction open and no row locked
      (``ctx.conn`` is in autocommit: each statement commits at once), under the
      kind's timeout, while the message is held hidden; what it returns reaches
      ``handle`` as ``ctx.fetched``, which records the outcome inside the job's
      transaction. It raises like ``handle`` does (the same classification,
      retries and dead letters). Return None when there was nothing to fetch:
      such jobs stay eligible for ``handle_batch``. docs/worker-runtime.md,
      "The outside phase".
    """

    kind: str
    payload: type[P]
    handle: Callable[[JobContext, P], None]
    adapters: Callable[[Settings], Mapping[str, Any]] | None = None
    timeout: float | None = None
    batch_size: int | None = None
    handle_batch: Callable[[BatchContext, Sequence[BatchItem[P]]], Collection[int]] | None = None
    fetch: Callable[[FetchContext, P], Any] | None = None

    def __post_init__(self) -> None:
        check_kind_name(self.kind)
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.batch_size is not None and not 1 <= self.batch_size <= 1000:
            raise ValueError("batch_size must be between 1 and 1000")


def load_job(kind: str, spec: str | None = None) -> JobKind[Any]:
    """The JobKind of ``kind`` from ``spec`` (``module:attr``) or the kind's package."""
    try:
        check_kind_name(kind)
    except ValueError as exc:
        raise HandlerNotFound(str(exc)) from None
    target = spec or default_spec(kind)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise HandlerNotFound(f"handler {target!r} must look like module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerNotFound(f"cannot import {module_name} for handler {target}: {exc}") from None
    job = getattr(module, attr, None)
    if job is None:
        raise HandlerNotFound(
            f"{module_name} has no {attr}: kind {kind} has no job definition there"
            " (define a JobKind, or name one with --handler module:attr)"
        )
    if not isinstance(job, JobKind):
        raise HandlerNotFound(f"{target} is a {type(job).__name__}, not a JobKind")
    if job.kind != kind:
        raise HandlerNotFound(f"{target} defines kind {job.kind!r}, not {kind!r}")
    return job
