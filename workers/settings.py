"""Runtime configuration, read once from environment variables.

Every setting has a safe default so a bare `dragonfly up` works on the embedded
database. Variables are prefixed ``DRAGONFLY_`` except ``DATABASE_URL``, which
keeps the name every platform (Supabase, Heroku, Render) already uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "DRAGONFLY_"


class ConfigError(Exception):
    """A setting is invalid; the message is one line naming the variable."""


class Settings(BaseSettings):
    """The fleet's settings. See the configuration table in README.md."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL"),
        description="PostgreSQL URL; unset means the embedded server under DRAGONFLY_HOME.",
    )
    home: Path = Field(
        default=Path(".dragonfly"),
        description="Directory of the embedded PostgreSQL and other local state.",
    )
    connect_timeout: int = Field(default=5, ge=1, le=300, description="Seconds to connect.")
    migrations_dir: Path | None = Field(
        default=None,
        description="Directory of *.sql migrations; defaults to the bundled sql/migrations.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console renderer on a TTY, JSON otherwise."
    )

    @field_validator("database_url")
    @classmethod
    def _check_scheme(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("postgres", "postgresql"):
            got = f"{scheme}://" if scheme else "none"
            raise ValueError(f"scheme must be postgresql:// or postgres://, got {got}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def _env_name(field: str) -> str:
    if field.lower() == "database_url":
        return "DATABASE_URL"
    return ENV_PREFIX + field.upper()


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's multi-line report into one line naming the variable."""
    first = exc.errors()[0]
    loc = first.get("loc") or ("?",)
    field = str(loc[0])
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"invalid setting {_env_name(field)}: {message}"


def load_settings() -> Settings:
    """Read settings from the environment, raising ConfigError with one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
