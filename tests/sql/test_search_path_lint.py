"""Supabase's database linter, check function_search_path_mutable, finds nothing.

The query is the linter's own logic (supabase/splinter, lint 0011): every function outside
the schemas Supabase and extensions own, and not part of an extension, must set search_path.
"""

from __future__ import annotations

from typing import Any

import psycopg

LINT_0011 = """
select n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  from pg_proc as p
  join pg_namespace as n on n.oid = p.pronamespace
  left join pg_depend as dep on dep.objid = p.oid and dep.deptype = 'e'
 where n.nspname not in (
           '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_config',
           '_timescaledb_internal', 'auth', 'cron', 'extensions', 'graphql', 'graphql_public',
           'information_schema', 'net', 'pgmq', 'pgroonga', 'pgsodium', 'pgsodium_masks',
           'pgtle', 'pgbouncer', 'pg_catalog', 'pg_toast', 'realtime', 'repack', 'storage',
           'supabase_functions', 'supabase_migrations', 'tiger', 'topology', 'vault')
   and dep.objid is null
   and not exists (
           select 1 from unnest(coalesce(p.proconfig, '{}')) as config
            where config like 'search_path=%')
 order by 1
"""


def test_every_function_of_the_project_pins_its_search_path(db: psycopg.Connection[Any]) -> None:
    flagged = [row[0] for row in db.execute(LINT_0011).fetchall()]

    assert flagged == []


def test_the_check_sees_the_project_s_schemas(db: psycopg.Connection[Any]) -> None:
    # A function without a pinned search_path in one of them is flagged (the check can fail).
    db.execute("create function intake.lint_probe() returns int language sql as 'select 1'")

    flagged = [row[0] for row in db.execute(LINT_0011).fetchall()]

    assert flagged == ["intake.lint_probe()"]
