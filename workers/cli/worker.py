"""``dragonfly worker KIND [--concurrency N] [--handler MODULE:ATTR]``.

Runs the consumer for one job kind until SIGTERM/SIGINT (then drains: exit 0),
with the process's health/metrics server. It never migrates: ``dragonfly up``
(or ``dragonfly db migrate``) does that first.
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
from collections.abc import Mapping
from typing import Any

import psycopg

from workers.cli.argtypes import kind_name
from workers.cli.common import CommandError, settings_and_url
from workers.db.connect import redact
from workers.job_kinds import (
    KINDS,
    RegistryMismatch,
    check_registry,
    python_kinds,
    registered,
)
from workers.log import configure_logging, get_logger
from workers.observability import process as observability
from workers.runtime import queries
from workers.runtime.consumer import Consumer, ConsumerConfig
from workers.runtime.handlers import HandlerNotFound, load_job
from workers.runtime.shutdown import SignalStop
from workers.settings import Settings


def _concurrency(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 64, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker",
        help="run a worker for one job kind (until SIGTERM/SIGINT)",
        description="Consume one kind's queue: batches, exactly-once commits, retries, dead"
        " letters. The first SIGTERM/SIGINT drains (exit 0); a second exits at once.",
    )
    p.add_argument(
        "kind",
        type=kind_name,
        metavar="KIND",
        help=f"job kind (and queue) to consume: {', '.join(KINDS)}, or a kind named in"
        " DRAGONFLY_HANDLERS or --handler",
    )
    p.add_argument(
        "--concurrency",
        type=_concurrency,
        metavar="N",
        help="jobs run at once (default DRAGONFLY_WORKER_CONCURRENCY)",
    )
    p.add_argument(
        "--handler",
        metavar="MODULE:ATTR",
        help="job definition (a JobKind) to run instead of workers.<kind>:JOB"
        " (also DRAGONFLY_HANDLERS)",
    )
    p.set_defaults(func=cmd_worker)


def _check_database(url: str, settings: Settings, kind: str) -> list[str]:
    """Refuse to start on an unmigrated database or an unregistered kind (one line);
    a database that is down is waited for. Returns warnings to log."""
    try:
        with psycopg.connect(
            url, autocommit=True, connect_timeout=settings.connect_timeout
        ) as conn:
            if not queries.runtime_installed(conn):
                raise CommandError(
                    "the database has no worker runtime functions; run `dragonfly db migrate` first"
                )
            rows = registered(conn)
        return check_registry(rows, python=python_kinds(settings.handlers), running=[kind])
    except psycopg.OperationalError:
        return []  # the consumer reconnects with backoff
    except RegistryMismatch as exc:
        raise CommandError(str(exc), exit_code=2) from None


def _close_adapters(adapters: Mapping[str, Any], log: Any) -> None:
    for name, adapter in adapters.items():
        close = getattr(adapter, "close", None)
        if callable(close):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - closing must not fail the exit
                log.warning("adapter_close_failed", adapter=name, error=str(exc))


def cmd_worker(args: argparse.Namespace) -> int:
    settings, url = settings_and_url()
    try:
        job = load_job(args.kind, args.handler or settings.handlers.get(args.kind))
    except HandlerNotFound as exc:
        raise CommandError(str(exc), exit_code=2) from None
    warnings = _check_database(url, settings, args.kind)
    process = f"worker:{args.kind}"
    configure_logging(settings, process=process)
    log = get_logger("workers.runtime")
    for warning in warnings:
        log.warning("job_kind_disabled", kind=args.kind, detail=warning)
    # Signals first: a SIGTERM arriving while the process starts still drains it.
    stop = SignalStop()
    stop.install()
    # `kill -USR1 <pid>` prints every thread's stack to stderr: what is it doing?
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    config = ConsumerConfig.from_settings(settings, job, concurrency=args.concurrency)
    adapters = job.adapters(settings) if job.adapters else {}
    obs = observability.start(settings, process=process, database_url=url)
    consumer = Consumer(
        url,
        job,
        config,
        adapters=adapters,
        metrics=obs.jobs,
        on_ready=obs.readiness.set_ready,
        log=log,
    )
    log.info("worker_starting", kind=args.kind, database=redact(url))
    consumer.start()
    try:
        signal_name = stop.wait()
        log.info("shutdown_requested", signal=signal_name, grace_s=config.shutdown_grace)
    finally:
        consumer.stop()
        consumer.drain()
        obs.close()
        _close_adapters(adapters, log)
    return 0
