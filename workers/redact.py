"""Keeping secrets out of logs, dead letters and CLI output.

Three things are scrubbed from any text that leaves a process:

- **URLs**: only ``scheme://host[:port]`` is kept; userinfo, path, query and
  fragment become ``/***``. The path is where Slack keeps a webhook's secret
  (``/services/T…/B…/…``) and vendors put tokens, so no path is trusted. A
  PostgreSQL URL keeps its database name too (its userinfo and query go).
- **Credentials in ``key: value`` form**: ``Bearer <token>``,
  ``Authorization: <anything>``, and ``api_key`` / ``token`` / ``secret`` /
  ``password`` followed by ``=`` or ``:`` keep their name and lose their value.
- **Known secrets by value**: what :func:`register_secrets` was given (the
  configured API keys, webhook URL and passwords), wherever it appears, so an
  echo of a token in some other shape is caught too.

A scrubbed value reads ``***``. :func:`mask_password` is the milder form for a
database URL shown to its operator: only the password goes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit

MASK = "***"

# Shorter values are too likely to occur by chance in ordinary text.
_MIN_SECRET_LENGTH = 6

_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*)://([^\s/?#\"'<>\\]*)([^\s\"'<>\\]*)")
_BEARER = re.compile(r"\b([Bb]earer|BEARER|Basic)(\s+)(?!\*\*\*)[A-Za-z0-9\-._~+/=:]{8,}")
_KEYED = re.compile(
    r"(?i)\b(authorization|proxy-authorization|x-api-key|api[_-]?key|access[_-]?token|"
    r"refresh[_-]?token|token|secret|password|passwd)"
    r"(\"?'?\s*[:=]\s*\"?'?)(?!\*\*\*)(?:bearer\s+|basic\s+)?[^\s\"',;&}]+"
)

# The regexes run only on text that contains one of these (lower-cased): most log strings
# contain none, and a substring test is far cheaper than a failed regex scan.
_KEY_WORDS = ("authorization", "api-key", "api_key", "apikey", "token", "secret", "passw")

_DATABASE_SCHEMES = frozenset({"postgres", "postgresql"})

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first: a secret containing another is masked whole


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values to mask by value (long enough ones; repeated calls add)."""
    global _secrets
    found = set()
    for value in values:
        if not value:
            continue
        found.add(value)
        # A URL's path and query are its secret part and may be echoed on their own
        # (a database URL's path is only the database name, kept like the host).
        if "://" in value:
            parts = urlsplit(value)
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            if tail.strip("/") and parts.scheme.lower() not in _DATABASE_SCHEMES:
                found.add(tail)
            if parts.password:
                found.add(parts.password)
    with _lock:
        known = set(_secrets) | {v for v in found if len(v) >= _MIN_SECRET_LENGTH}
        _secrets = tuple(sorted(known, key=len, reverse=True))


def _scrub_url(match: re.Match[str]) -> str:
    scheme, netloc, rest = match.group(1), match.group(2), match.group(3)
    host = netloc.rpartition("@")[2]
    if scheme.lower() in _DATABASE_SCHEMES:
        # A database name says which database, not how to get in: keep it, drop the query.
        database = rest.partition("?")[0]
        return f"{scheme}://{host}{database}{'?' + MASK if '?' in rest else ''}"
    return f"{scheme}://{host}{'/' + MASK if rest or '@' in netloc else ''}"


def scrub(text: str) -> str:
    """``text`` with known secrets, credentials and URL paths masked."""
    if not text:
        return text
    if "://" in text:
        text = _URL.sub(_scrub_url, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    if any(word in lowered for word in _KEY_WORDS):
        text = _KEYED.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return text


def mask_password(url: str) -> str:
    """A database URL with its password (in userinfo or query) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{MASK}@{hostinfo}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key == "password" for key, _ in pairs):
            query = urlencode(
                [(key, MASK if key == "password" else value) for key, value in pairs], safe="*"
            )
    return parts._replace(netloc=netloc, query=query).geturl()
