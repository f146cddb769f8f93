"""The job-kind policy, checked again by the worker before a job has any effect.

``queue_job()`` checks each job against its kind's policy at the door and records who
enqueued it in the envelope's ``provenance`` (docs/security.md, "Policy per job kind").
A message can reach a queue another way -- a dead letter replayed, a tool calling
``pgmq.send`` directly, a message older than provenance -- so the worker checks who may
ask for what once more, from the same rows (``dragonfly.job_kind_policies`` and the
kind's shape, ``dragonfly.job_kinds.payload_fields``), loaded once when it starts:

- the envelope's level has no policy row for the kind (or it is public and the kind has
  no payload shape): ``forbidden: <level> callers may not enqueue <kind> jobs``;
- the payload sets a field (to anything but null) that the level's ``fields`` do not
  include: ``forbidden: <level> callers may not set payload.<field> of <kind> jobs``.
  Fields the provenance names as ``derived`` -- formed by the enqueueing RPC itself, not
  taken from its caller (``request_case_copilot``) -- are not the caller's to answer for.

A message without provenance counts as public
(:data:`workers.runtime.envelope.UNKNOWN_PROVENANCE`). A forbidden
job is dead-lettered at once with reason ``forbidden``: no fetch, no handler. Only *who
may set what* is checked here; the values are the kind's payload model's business, and
size, delay and rate limits belong to the door.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast, get_args

import psycopg

from workers.runtime import queries
from workers.runtime.envelope import Envelope, TrustLevel
from workers.runtime.errors import Forbidden

_LEVELS: tuple[str, ...] = get_args(TrustLevel)
_PLAIN_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PolicyUnavailable(Exception):
    """The database holds no job-kind policy (not migrated); the message is one line."""


@dataclass(frozen=True, slots=True)
class KindPolicy:
    """Who may enqueue one kind, and which payload fields each trust level may set.

    ``levels``: level -> its fields (None: every field); a level missing may not enqueue
    the kind. ``shape``: the field names of the kind's payload shape, None without one.
    """

    kind: str
    levels: Mapping[TrustLevel, frozenset[str] | None]
    shape: frozenset[str] | None

    def check(self, envelope: Envelope) -> None:
        """Raise :class:`Forbidden` when the envelope's provenance may not ask for it."""
        level = envelope.provenance.level
        if level not in self.levels or (level == "public" and self.shape is None):
            raise Forbidden(f"forbidden: {level} callers may not enqueue {self.kind} jobs")
        allowed = self.levels[level]
        if allowed is None:
            return
        permitted = allowed | envelope.provenance.derived
        for name in sorted(envelope.payload):
            if envelope.payload[name] is not None and name not in permitted:
                raise Forbidden(
                    f"forbidden: {level} callers may not set payload.{_field_name(name)}"
                    f" of {self.kind} jobs"
                )

    def describe(self) -> dict[str, Any]:
        """The policy for a log line: level -> its fields (``"*"`` for all)."""
        return {
            level: "*" if fields is None else sorted(fields)
            for level, fields in self.levels.items()
        }


def _field_name(name: str) -> str:
    """A payload key as a message may show it: plain names as is, others quoted and cut."""
    return name if _PLAIN_FIELD.fullmatch(name) else repr(name[:60])


def load_policy(conn: psycopg.Connection[Any], kind: str) -> KindPolicy:
    """The policy of ``kind`` as the database holds it now (no rows: nobody may enqueue)."""
    try:
        rows = queries.policy_rows(conn, kind)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        raise PolicyUnavailable(
            "the database has no job-kind policy (dragonfly.job_kind_policies);"
            " run `dragonfly db migrate` first"
        ) from None
    levels: dict[TrustLevel, frozenset[str] | None] = {}
    shape: frozenset[str] | None = None
    for has_shape, shape_fields, level, fields in rows:
        shape = frozenset(shape_fields) if has_shape else None
        if level in _LEVELS:
            levels[cast(TrustLevel, level)] = None if fields is None else frozenset(fields)
    return KindPolicy(kind=kind, levels=levels, shape=shape)
