"""How values are shown: times, ages, and payloads with their secrets scrubbed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from workers.redact import MASK, scrub

_SECRET_KEY = re.compile(
    r"(?i)(pass(word|wd)?|secret|token|api[_-]?key|authorization|credential|private[_-]?key|cookie)"
)


def scrub_json(value: Any) -> Any:
    """``value`` with every string scrubbed (:func:`workers.redact.scrub`) and the values of
    keys that name a secret (password, token, api_key, ...) replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: (MASK if _SECRET_KEY.search(str(k)) and v not in (None, "") else scrub_json(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub_json(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def pretty_json(value: Any) -> str:
    """Scrubbed, indented JSON text."""
    return json.dumps(scrub_json(value), indent=2, sort_keys=True, default=str)


def scrubbed(text: str | None) -> str:
    return scrub(text) if text else ""


def ts(value: datetime | None) -> str:
    """A time as ``2026-12-03 14:05:09Z``; ``-`` for none."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def age(seconds: float | int | None) -> str:
    """A duration as ``3d4h``, ``2h5m``, ``4m7s`` or ``9s``; ``-`` for none."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def since(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``value`` was: ``4m7s ago``."""
    if value is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    return f"{age(max(seconds, 0))} ago"


def one_line(text: str | None, width: int = 100) -> str:
    flat = " ".join(scrubbed(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
