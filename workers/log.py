"""Structured logging: JSON lines for machines, a readable renderer on a TTY.

Event names are stable (``job_started``, ``job_failed``, ``job_dead_lettered``,
...) and so are the keys (``queue``, ``msg_id``, ``kind``, ``idempotency_key``,
``attempt``, ``duration_ms``, ``case_id``): dashboards and alerts match on them.

Every line goes through one renderer, structlog's and the standard library's
loggers (httpx, psycopg, ...) alike, so with JSON on, every line is one JSON
object; and every string in it is scrubbed (:func:`workers.redact.scrub`).
Each line is written with a single ``write()`` call: the fleet's children share
one stderr, and a line written in two pieces (body, then newline) merges with
another process's line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import structlog
from pydantic import SecretStr

from workers.redact import register_secrets, scrub
from workers.settings import Settings

_HANDLER_NAME = "dragonfly"


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrub_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(item) for item in value]
    return value


def scrub_event(_logger: Any, _method: str, event_dict: Any) -> Any:
    """structlog processor: scrub every string of the event (after exceptions are rendered)."""
    return {key: _scrub_value(value) for key, value in event_dict.items()}


class LineWriter:
    """A structlog logger that writes each line, newline included, in one call."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        self._file.write(message + "\n")
        self._file.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _configured_secrets(settings: Settings) -> Iterator[str | None]:
    """The secret settings, and every URL setting (its path and password may be credentials)."""
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif name.endswith("_url") and isinstance(value, str):
            yield value


def configure_logging(settings: Settings, *, process: str | None = None) -> None:
    """Configure structlog and the standard library once per process."""
    register_secrets(_configured_secrets(settings))
    level = getattr(logging, settings.log_level)
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if use_json:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, scrub_event, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_args: LineWriter(sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_stdlib(level, shared, renderer)
    # pgserver narrates every handle it opens and closes at INFO; keep its warnings only.
    logging.getLogger("pgserver").setLevel(max(level, logging.WARNING))
    if process:
        structlog.contextvars.bind_contextvars(process=process)


def _route_stdlib(level: int, shared: list[Any], renderer: Any) -> None:
    """Send the standard library's records (libraries' loggers) through the same renderer."""
    handler = logging.StreamHandler(sys.stderr)  # one write() per record: msg + terminator
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                scrub_event,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; ``name`` becomes the ``logger`` key."""
    return structlog.get_logger(name) if name else structlog.get_logger()
