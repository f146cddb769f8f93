"""Resolving the database URL and opening connections with readable failures."""

from __future__ import annotations

from typing import Any

import psycopg

from workers.db.embedded import EmbeddedServerError, embedded_url
from workers.redact import mask_password
from workers.settings import ConfigError, Settings


def database_url(settings: Settings) -> str:
    """The URL every command uses: DATABASE_URL, or the embedded server's."""
    if settings.database_url:
        return settings.database_url
    try:
        return embedded_url(settings.home)
    except EmbeddedServerError as exc:
        raise ConfigError(str(exc)) from None


def redact(url: str) -> str:
    """A URL fit for logs, error messages and output: the password is replaced."""
    return mask_password(url)


def describe_target(url: str) -> str:
    """host:port/dbname of a URL, for one-line error messages."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or ''}"


def connect(
    url: str, *, connect_timeout: int = 5, autocommit: bool = False, **kwargs: Any
) -> psycopg.Connection[Any]:
    """Open a connection, turning a failure into ConfigError with one clear line."""
    try:
        return psycopg.connect(
            url, autocommit=autocommit, connect_timeout=connect_timeout, **kwargs
        )
    except psycopg.OperationalError as exc:
        # libpq spreads one failure over several lines; keep it to one.
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"cannot connect to {describe_target(url)}: {reason}") from None
    except psycopg.ProgrammingError as exc:  # malformed conninfo
        raise ConfigError(f"invalid database URL {redact(url)}: {exc}") from None
