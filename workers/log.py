"""Structured logging: JSON lines for machines, a readable renderer on a TTY.

Event names are stable (``job_started``, ``job_failed``, ``job_dead_lettered``,
...) and so are the keys (``queue``, ``msg_id``, ``kind``, ``idempotency_key``,
``attempt``, ``duration_ms``, ``case_id``): dashboards and alerts match on them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from workers.settings import Settings


def configure_logging(settings: Settings, *, process: str | None = None) -> None:
    """Configure structlog and the standard library once per process."""
    level = getattr(logging, settings.log_level)
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if use_json:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # pgserver narrates every handle it opens and closes at INFO; keep its warnings only.
    logging.getLogger("pgserver").setLevel(max(level, logging.WARNING))
    if process:
        structlog.contextvars.bind_contextvars(process=process)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; ``name`` becomes the ``logger`` key."""
    return structlog.get_logger(name) if name else structlog.get_logger()
