"""Runtime configuration, read once from environment variables.

Every setting has a safe default so a bare `dragonfly up` works on the embedded
database. Variables are prefixed ``DRAGONFLY_`` except ``DATABASE_URL``, which
keeps the name every platform (Supabase, Heroku, Render) already uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from workers.job_kinds import check_kind_name, python_kinds

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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console renderer on a TTY, JSON otherwise."
    )

    # --- worker runtime ---
    # The consumer loop of `dragonfly worker KIND` (docs/worker-runtime.md).
    worker_concurrency: int = Field(
        default=2, ge=1, le=64, description="Jobs a worker process runs at once (its slots)."
    )
    batch_size: int = Field(
        default=200,
        ge=1,
        le=1000,
        description="Messages a slot reads and commits together (a kind may set its own).",
    )
    batch_window: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="Seconds after which a batch starts no new job: the rest go back to the"
        " queue and the batch commits, so slow jobs do not hold finished ones.",
    )
    visibility_timeout: int = Field(
        default=30,
        ge=1,
        le=86400,
        description="Seconds a read message stays hidden; after a crash it reappears then.",
    )
    poll_interval: float = Field(
        default=1.0,
        gt=0,
        le=300,
        description="Seconds an idle slot waits for an insert notification before reading"
        " anyway (delayed and retried messages are found by polling).",
    )
    max_attempts: int = Field(
        default=5, ge=1, le=1000, description="Attempts before a job is dead-lettered."
    )
    retry_base_delay: float = Field(
        default=2.0, ge=0, le=86400, description="Backoff before the 2nd attempt, seconds."
    )
    retry_max_delay: float = Field(
        default=300.0, ge=0, le=604800, description="Longest backoff between attempts, seconds."
    )
    job_timeout: float = Field(
        default=300.0, gt=0, le=86400, description="Seconds a handler may run (all kinds)."
    )
    handlers: dict[str, str] = Field(
        default_factory=dict,
        description='Per-kind job definitions, JSON: {"enrich": "module:attr"};'
        " default workers.<kind>:JOB. Names the kinds defined outside this package.",
    )
    job_timeouts: dict[str, float] = Field(
        default_factory=dict,
        description='Per-kind job timeouts, JSON: {"enrich": 60}; override job_timeout.',
    )
    shutdown_grace: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="Seconds in-flight jobs get to finish after SIGTERM before being released.",
    )
    reconnect_max_delay: float = Field(
        default=30.0, gt=0, le=3600, description="Longest wait between reconnection attempts."
    )

    @field_validator("handlers")
    @classmethod
    def _kind_names(cls, value: dict[str, str]) -> dict[str, str]:
        # Naming a kind here is how a kind defined outside this package becomes known;
        # the start-up check then requires its dragonfly.job_kinds row.
        for kind in value:
            check_kind_name(kind)
        return value

    @field_validator("job_timeouts")
    @classmethod
    def _known_kinds(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        kinds = python_kinds(info.data.get("handlers") or {})
        unknown = sorted(set(value) - set(kinds))
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; kinds are {', '.join(kinds)}")
        return value

    @field_validator("job_timeouts")
    @classmethod
    def _positive_timeouts(cls, value: dict[str, float]) -> dict[str, float]:
        # `not 0 < t` also refuses NaN, which JSON-ish input can carry.
        if any(not 0 < t <= 86400 for t in value.values()):
            raise ValueError("timeouts must be more than 0 and at most 86400 seconds")
        return value

    # --- end worker runtime ---

    # --- fleet ---
    metrics_port: int = Field(
        default=9400,
        ge=0,
        le=65535,
        description="Port of /healthz, /readyz and /metrics; 0 disables the server."
        " `dragonfly up` gives its N-th child port + N.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address the health/metrics server binds to."
    )
    scheduler_refresh_at: str = Field(
        default="02:30",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="UTC time (HH:MM) of the nightly refresh_enforcement_metrics() run.",
    )
    scheduler_tick_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How often the scheduler looks for due tasks."
    )
    retention_interval_minutes: int = Field(
        default=60, ge=1, le=10080, description="How often the scheduler prunes old records."
    )
    retention_completed_days: int = Field(
        default=30, ge=0, description="Days completed-job records are kept; 0 keeps them forever."
    )
    retention_dedupe_days: int = Field(
        default=30,
        ge=0,
        description="Days queue_job() dedupe records are kept; 0 keeps them forever.",
    )
    retention_archive_days: int = Field(
        default=7, ge=0, description="Days archived PGMQ messages are kept; 0 keeps them forever."
    )
    retention_dead_letter_days: int = Field(
        default=30,
        ge=0,
        description="Days replayed/purged dead letters are kept; 0 keeps them forever.",
    )
    retention_alert_days: int = Field(
        default=90,
        ge=0,
        description="Days delivered/dead alert deliveries are kept; 0 keeps them forever.",
    )
    retention_queue_history_days: int = Field(
        default=7,
        ge=0,
        description="Days of per-minute queue history (the console's charts) kept; 0 keeps it"
        " forever.",
    )
    retention_batch_size: int = Field(
        default=5000, ge=1, le=1_000_000, description="Rows deleted per retention transaction."
    )
    fleet_stop_timeout: float = Field(
        default=45.0,
        gt=0,
        le=3600,
        description="Seconds `dragonfly up` waits after SIGTERM before killing a child.",
    )
    fleet_restart_max_backoff: float = Field(
        default=30.0, gt=0, le=3600, description="Longest wait before restarting a crashed child."
    )
    # --- end fleet ---

    # --- console ---
    # `dragonfly console`, the on-call web console (docs/console.md).
    console_host: str = Field(
        default="127.0.0.1", description="Address `dragonfly console` binds to."
    )
    console_port: int = Field(
        default=8700, ge=1, le=65535, description="Port of `dragonfly console`."
    )
    console_admin_token: SecretStr | None = Field(
        default=None,
        description="Static admin token for the console (sees every tenant); unset on the"
        " embedded default: one is generated at start and printed once.",
    )
    console_jwt_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DRAGONFLY_CONSOLE_JWT_SECRET", "SUPABASE_JWT_SECRET"),
        description="The Supabase project's JWT secret (HS256); SUPABASE_JWT_SECRET is read too."
        " Operators then sign in with their access token.",
    )
    console_jwks_url: str | None = Field(
        default=None,
        description="JWKS URL of the Supabase project (asymmetric signing keys), e.g."
        " https://<ref>.supabase.co/auth/v1/.well-known/jwks.json.",
    )
    console_jwt_audience: str = Field(
        default="authenticated", description="The aud claim console access tokens must carry."
    )
    console_session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs console session cookies; unset: a random key per process"
        " (sessions end when it restarts).",
    )
    console_session_hours: float = Field(
        default=12.0, gt=0, le=720, description="Hours a console session lasts at most."
    )

    @field_validator("console_jwks_url")
    @classmethod
    def _check_jwks_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http:// or https://, got {scheme or 'none'}")
        return value

    # --- end console ---

    # --- alerts ---
    # The alert listener (docs/alerts.md). A sink left unconfigured is not an error: its
    # deliveries stay pending until a listener that has it configured runs.
    slack_webhook_url: SecretStr | None = Field(
        default=None, description="Slack incoming-webhook URL for alerts; unset: no Slack sink."
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for alert and outreach emails; unset: no email sink."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP server port.")
    smtp_username: str | None = Field(default=None, description="SMTP login; unset: no AUTH.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the SMTP session with STARTTLS."
    )
    smtp_from: str = Field(default="dragonfly@localhost", description="From address of emails.")
    smtp_timeout: float = Field(default=10.0, gt=0, le=300, description="SMTP timeout, seconds.")
    alert_email_to: str | None = Field(
        default=None,
        description="Comma-separated recipients of alert emails (a rule's email_to overrides).",
    )
    alert_http_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Timeout of one webhook POST, seconds."
    )
    alert_max_attempts: int = Field(
        default=8, ge=1, le=100, description="Attempts per delivery before it is dead."
    )
    alert_backoff_base_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="First retry delay; doubles per attempt."
    )
    alert_backoff_max_seconds: float = Field(
        default=900.0, gt=0, le=86400, description="Longest retry delay."
    )
    listener_catchup_batch: int = Field(
        default=500, ge=1, le=100_000, description="Events routed per catch-up transaction."
    )
    listener_catchup_lookback_seconds: int = Field(
        default=3600,
        ge=0,
        le=604_800,
        description="How far behind the cursor catch-up looks, for transactions that commit late.",
    )
    listener_sweep_interval_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Catch-up sweep period of a running listener."
    )
    listener_synchronous_commit: bool = Field(
        default=False,
        description="Make the listener's commits wait for the WAL flush (off: faster; a server"
        " crash can then repeat an alert, never lose one).",
    )
    # --- end alerts ---

    # --- enforce & copilot ---
    copilot_llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible API base URL (e.g. https://api.openai.com/v1);"
        " unset means the deterministic rules backend.",
    )
    copilot_llm_model: str = Field(
        default="gpt-4o-mini", min_length=1, description="Chat-completions model name."
    )
    copilot_llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for the LLM endpoint (never logged)."
    )
    copilot_llm_timeout: float = Field(
        default=30.0, gt=0, le=600, description="Seconds one LLM request may take."
    )
    copilot_llm_max_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries per LLM call (timeouts, 429, 5xx)."
    )
    enforce_sla_sweep_minutes: int = Field(
        default=15,
        ge=1,
        le=1440,
        description="How often the scheduler enqueues plan jobs for overdue cases.",
    )
    enforce_sla_sweep_batch: int = Field(
        default=500, ge=1, le=100_000, description="Most overdue cases enqueued per sweep."
    )

    @field_validator("copilot_llm_base_url")
    @classmethod
    def _check_llm_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http:// or https://, got {scheme or 'none'}")
        return value.rstrip("/")

    # --- end enforce & copilot ---

    # --- enrich & outreach ---
    # docs/scoring.md and docs/outreach.md. The SMTP server itself (smtp_host, smtp_port,
    # smtp_starttls, smtp_username, smtp_password, smtp_from, smtp_timeout) is shared with
    # the alert listener and configured in the alerts block above.
    enrich_vendor_url: str | None = Field(
        default=None,
        description="Enrichment vendor API base URL; unset: enrich scores from stored data only.",
    )
    enrich_vendor_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for the enrichment vendor (never logged)."
    )
    enrich_vendor_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds one enrichment-vendor request may take."
    )
    enrich_vendor_attempts: int = Field(
        default=2,
        ge=1,
        le=5,
        description="Tries per vendor call inside one job (429, 5xx, timeouts); then the queue"
        " retries the job with backoff.",
    )
    outreach_from_email: str | None = Field(
        default=None,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="From address of outreach emails; unset: DRAGONFLY_SMTP_FROM.",
    )
    quiet_hours_start: str = Field(
        default="20:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local time (HH:MM, plaintiff's zone) from which no outreach is made.",
    )
    quiet_hours_end: str = Field(
        default="09:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local time (HH:MM, plaintiff's zone) at which outreach may resume.",
    )
    outreach_max_emails_per_week: int = Field(
        default=2,
        ge=0,
        le=50,
        description="Most outreach emails one plaintiff gets in any 7 days, whatever the jobs"
        " and their keys; a job over it is recorded capped. 0: no outreach email.",
    )
    outreach_max_calls_per_week: int = Field(
        default=3,
        ge=0,
        le=50,
        description="Most outreach call tasks opened for one plaintiff in any 7 days; a job"
        " over it is recorded capped. 0: no outreach call task.",
    )

    @field_validator("enrich_vendor_url")
    @classmethod
    def _check_vendor_url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http:// or https://, got {scheme or 'none'}")
        return value.rstrip("/")

    # --- end enrich & outreach ---

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


def env_name(field: str) -> str:
    """The environment variable that sets a Settings field."""
    if field.lower() == "database_url":
        return "DATABASE_URL"
    return ENV_PREFIX + field.upper()


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's multi-line report into one line naming the variable."""
    first = exc.errors()[0]
    loc = first.get("loc") or ("?",)
    field = str(loc[0])
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    where = "".join(f"[{part!r}]" for part in loc[1:])  # a key inside a JSON-valued setting
    return f"invalid setting {env_name(field)}{where}: {message}"


_SOURCE_FIELD = re.compile(r'field "(?P<field>[^"]+)"')


def describe_source_error(exc: SettingsError) -> str:
    """One line for a value pydantic-settings could not even parse (a JSON-valued setting)."""
    match = _SOURCE_FIELD.search(str(exc))
    variable = env_name(match["field"]) if match else "?"
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        reason = f"not valid JSON ({cause.msg} at character {cause.pos})"
    else:
        reason = " ".join(str(cause or exc).split()) or "unreadable value"
    return f"invalid setting {variable}: {reason}"


def load_settings() -> Settings:
    """Read settings from the environment, raising ConfigError with one clear line."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except SettingsError as exc:
        raise ConfigError(describe_source_error(exc)) from None
