"""The job kinds: Python's one list, and its check against the database's registry.

The database's list is ``dragonfly.job_kinds``: one row per kind, each with the PGMQ
queue of the same name, added by a migration calling ``dragonfly.register_job_kind``.
Python's list is :data:`KINDS`, the kinds this package ships (each a package
``workers.<kind>`` defining ``JOB``), plus the kinds named in ``DRAGONFLY_HANDLERS``
(``{"kind": "module:attr"}``): kinds defined outside the package, such as a
deployment's own or the tests', need no edit here (docs/adding-a-job-kind.md).

Settings validation, the built-in Procfile, the demo, the CLI and the runtime take
the kinds from here; workers and the fleet call :func:`check_registry` at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import psycopg

KINDS: tuple[str, ...] = ("enrich", "outreach", "enforce", "case_copilot")
"""The kinds this package ships, in pipeline order."""

# The rule of dragonfly.register_job_kind (and of the job_kinds.kind check): a kind is
# formatted into PGMQ table and channel names, so it must be a short, safe identifier.
_KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
KIND_NAME_RULE = (
    "a lowercase letter followed by at most 39 lowercase letters, digits or underscores"
)

REGISTERED = "select kind, enabled from dragonfly.job_kinds order by kind"


class RegistryMismatch(Exception):
    """Python's kinds and ``dragonfly.job_kinds`` disagree; the message is one line."""


def check_kind_name(kind: str) -> str:
    """``kind`` when it is a valid kind name; ValueError (one line) otherwise."""
    if not _KIND_NAME.fullmatch(kind):
        raise ValueError(f"job kind must be {KIND_NAME_RULE}, got {kind[:100]!r}")
    return kind


def python_kinds(handlers: Mapping[str, str]) -> tuple[str, ...]:
    """The shipped kinds, then those only ``DRAGONFLY_HANDLERS`` names (sorted)."""
    return KINDS + tuple(sorted(set(handlers) - set(KINDS)))


def default_spec(kind: str) -> str:
    """Where a kind's own definition lives: ``workers.<kind>:JOB``."""
    return f"workers.{kind}:JOB"


def registered(conn: psycopg.Connection[Any]) -> dict[str, bool]:
    """``dragonfly.job_kinds`` as kind -> enabled (``conn`` in autocommit mode)."""
    try:
        return {str(kind): bool(enabled) for kind, enabled in conn.execute(REGISTERED)}
    except psycopg.errors.UndefinedTable:
        raise RegistryMismatch(
            "the database has no dragonfly.job_kinds; run `dragonfly db migrate` first"
        ) from None


def check_registry(
    rows: Mapping[str, bool], *, python: Collection[str], running: Collection[str] = ()
) -> list[str]:
    """Raise :class:`RegistryMismatch` when a kind of ``python`` or ``running`` has no row.

    ``rows`` is :func:`registered`; ``running``: the kinds this process (or fleet) is
    about to consume. Returns warnings: a running kind that is disabled (its queue is
    still drained; ``queue_job`` refuses new jobs of it). Whether each running kind has
    a Python definition is the loader's check (``load_job``), made before this one.
    """
    missing = [k for k in (*python, *running) if k not in rows]
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        raise RegistryMismatch(
            f"job kind(s) {names} not registered in dragonfly.job_kinds: apply the migration"
            " that calls dragonfly.register_job_kind (dragonfly db migrate)"
        )
    return [
        f"job kind {k} is disabled: its queue is drained, queue_job refuses new jobs"
        for k in dict.fromkeys(running)
        if not rows[k]
    ]
