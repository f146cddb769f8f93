"""Pieces every command shares: settings, the database URL, failures, tables."""

from __future__ import annotations

from typing import Any

import psycopg

from workers.db.connect import connect, database_url
from workers.settings import Settings, load_settings


class CommandError(Exception):
    """A command failed; printed as one line, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Print ``rows`` under ``headers`` in columns as wide as their widest cell."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for line in [headers, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def settings_and_url() -> tuple[Settings, str]:
    """Load settings (ConfigError on a bad value) and resolve the database URL."""
    settings = load_settings()
    return settings, database_url(settings)


def open_connection(*, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A connection to the configured database, failing with one clear line."""
    settings, url = settings_and_url()
    return connect(url, connect_timeout=settings.connect_timeout, autocommit=autocommit)
