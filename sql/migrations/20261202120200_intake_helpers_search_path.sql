-- Pin the search_path of the intake.* helper functions.
--
-- Why: Supabase's database linter (function_search_path_mutable) flags every function of the
-- project's schemas whose search_path is not set, and these six were the ones left: they
-- ran with the caller's search_path. Their bodies already qualify every name (pg_catalog is
-- searched first in any case), so search_path = '' changes no result.
--
-- The cost, and what keeps it small: a function with a SET clause sets and restores the
-- setting on every call, and a SQL function with one is never inlined into the calling query,
-- so each call runs through the SQL-function executor instead. The Simplicity import calls
-- guess_entity_type and time_ordered_uuid per row (normalize_email per plaintiff). Those three
-- were SQL functions; they become PL/pgSQL functions returning the same expression, which
-- PL/pgSQL evaluates on its fast path for simple expressions. Per call of time_ordered_uuid
-- (bench/bench_import.py --compare-unpinned): 1.8 us inlined before, 28 us pinned as SQL,
-- 9.1 us pinned as PL/pgSQL; the whole import showed no difference beyond the machine's noise
-- (docs/import.md, "Performance"). Same arguments, same results.
-- tests/sql/test_search_path_lint.py runs the linter's check over every migration.

create or replace function intake.guess_entity_type(name text)
returns text
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
begin
    return case
        when pg_catalog.lower($1) ~ '(^|[^[:alnum:]])(inc|incorporated|llc|l\.l\.c|llp|lp|ltd|limited|corp|corporation|co|company|pc|pllc|plc|bank|trust|association|partners|group|holdings|services|fund|capital|credit union)([^[:alnum:]]|$)'
            then 'organization'
        else 'person'
    end;
end;
$$;

create or replace function intake.normalize_email(email text)
returns text
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
begin
    return case
        when pg_catalog.lower(pg_catalog.btrim($1)) ~ '^[^@[:space:]]+@[^@[:space:].]+(\.[^@[:space:].]+)+$'
            then pg_catalog.lower(pg_catalog.btrim($1))
    end;
end;
$$;

create or replace function intake.time_ordered_uuid(prefix text, seq bigint, suffix text)
returns uuid
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
begin
    return (
        $1
        || pg_catalog.to_hex(
            (7::bigint << 36) | ($2 % 4294967296 >> 20 << 24) | (8::bigint << 20) | ($2 % 4294967296 & 1048575)
        )
        || $3
    )::uuid;
end;
$$;

-- The other three are PL/pgSQL already: only the setting.
alter function intake.normalize_entity_name(text, text) set search_path = '';
alter function intake.normalize_phone(text) set search_path = '';
alter function intake.parse_simplicity_date(text) set search_path = '';
