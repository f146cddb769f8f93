"""Static checks of every PL/pgSQL function we own, with the plpgsql_check extension.

plpgsql_check finds what PostgreSQL only reports when a branch first runs: a misspelt
column, a wrong number of INTO targets, a type mismatch. CI installs the extension
(Debian's postgresql-15-plpgsql-check) and sets DRAGONFLY_REQUIRE_PLPGSQL_CHECK=1 so the
test cannot silently skip there; on a server without it (the embedded default) it skips.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest

OUR_SCHEMAS = ("public", "judgments", "enrichment", "intake", "dragonfly", "enforcement_private")

# Objects that exist only at run time, which a static check cannot see: temporary
# tables a function creates itself, and pg_cron's schema (used only where installed).
RUNTIME_ONLY = ('relation "pg_temp.', 'relation "cron.')


def _functions(
    db: psycopg.Connection[Any],
) -> list[tuple[int, str, int | None, str | None, str | None]]:
    """(oid, signature, relation of a trigger using it, its transition tables) for our
    PL/pgSQL functions."""
    return db.execute(
        """
        select p.oid::int,
               p.oid::regprocedure::text,
               t.tgrelid::int,
               t.tgoldtable::text,
               t.tgnewtable::text
        from pg_proc p
        left join lateral (
            select t.tgrelid, t.tgoldtable, t.tgnewtable from pg_trigger t
            where t.tgfoid = p.oid order by t.tgname limit 1
        ) as t on true
        join pg_namespace n on n.oid = p.pronamespace
        join pg_language l on l.oid = p.prolang
        where l.lanname = 'plpgsql'
          and n.nspname = any(%s)
          and not exists (
              select 1 from pg_depend d
              where d.objid = p.oid and d.deptype = 'e'
          )
        order by 2
        """,
        (list(OUR_SCHEMAS),),
    ).fetchall()


def test_every_plpgsql_function_passes_plpgsql_check(db: psycopg.Connection[Any]) -> None:
    available = db.execute(
        "select exists (select 1 from pg_available_extensions where name = 'plpgsql_check')"
    ).fetchone()
    if not (available and available[0]):
        if os.environ.get("DRAGONFLY_REQUIRE_PLPGSQL_CHECK") == "1":
            pytest.fail("plpgsql_check is required here but the server does not offer it")
        pytest.skip("the server offers no plpgsql_check extension")
    db.execute("create extension if not exists plpgsql_check")

    functions = _functions(db)
    assert functions, "expected PL/pgSQL functions in our schemas"
    problems: list[str] = []
    for oid, signature, trigger_rel, old_table, new_table in functions:
        if trigger_rel is None and signature.startswith("public.tg_"):
            continue  # a trigger function no table uses yet: nothing to check against
        # Statement triggers read their transition tables under the names the trigger gives.
        rows = db.execute(
            "select level, lineno, message from plpgsql_check_function_tb("
            "%s::oid, %s::oid, oldtable => %s, newtable => %s) where level = 'error'",
            (oid, trigger_rel or 0, old_table, new_table),
        ).fetchall()
        problems += [
            f"{signature} line {lineno}: {message}"
            for _level, lineno, message in rows
            if not any(marker in message for marker in RUNTIME_ONLY)
        ]
    assert not problems, "\n".join(problems)
