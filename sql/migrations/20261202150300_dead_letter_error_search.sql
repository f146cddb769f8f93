-- find_dead_letters by error text: a trigram index where pg_trgm exists.
--
-- Why: the error filter was strpos(lower(last_error), lower(p_error)) > 0, which no index
-- can serve, so a search for an error that matches nothing read every dead letter (842 ms
-- with a million). The filter is now last_error ILIKE '%<text>%' (the same test: a
-- case-insensitive substring, with %, _ and \ in the text taken literally), which a GIN
-- trigram index serves for texts of three characters or more.
--
-- pg_trgm ships with PostgreSQL's contrib and with Supabase (in schema extensions), but
-- not with every server (the embedded pgserver PostgreSQL 16 has no contrib). Where it is
-- available the migration creates it in schema extensions (if it is not installed yet) and
-- the index; where it is not, or this role may not create it, the search still works, by
-- reading the table, and a NOTICE says so. Installing pg_trgm later and re-creating the
-- index by hand (the statement below) is enough; the function needs no change.

create schema if not exists extensions;

do $$
declare
    v_schema text;
begin
    if not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_trgm') then
        if not exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_trgm') then
            raise notice 'pg_trgm is not available: find_dead_letters searches error text without an index';
            return;
        end if;
        begin
            create extension pg_trgm with schema extensions;
        exception when insufficient_privilege then
            raise notice 'pg_trgm cannot be created by this role: find_dead_letters searches error text without an index';
            return;
        end;
    end if;
    select n.nspname into v_schema
      from pg_catalog.pg_extension as e
      join pg_catalog.pg_namespace as n on n.oid = e.extnamespace
     where e.extname = 'pg_trgm';
    execute pg_catalog.format(
        'create index if not exists dead_letters_last_error_trgm_idx on dragonfly.dead_letters '
        'using gin (last_error %I.gin_trgm_ops)',
        v_schema
    );
end
$$;

create or replace function dragonfly.find_dead_letters(
    p_queue text default null,
    p_kind text default null,
    p_error text default null,
    p_since timestamptz default null,
    p_until timestamptz default null,
    p_status text default 'dead',
    p_ids bigint[] default null,
    p_limit integer default 100
)
returns setof dragonfly.dead_letters
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_pattern text;
begin
    if p_status is not null and p_status not in ('dead', 'replayed', 'purged') then
        raise exception 'find_dead_letters: status must be dead, replayed or purged, got %', p_status
            using errcode = '22023';
    end if;
    if p_limit is not null and p_limit < 1 then
        raise exception 'find_dead_letters: p_limit must be at least 1' using errcode = '22023';
    end if;
    if p_error is null then
        return query
            select d.*
            from dragonfly.dead_letters d
            where (p_queue is null or d.queue = p_queue)
              and (p_kind is null or d.kind = p_kind)
              and (p_since is null or d.dead_at >= p_since)
              and (p_until is null or d.dead_at < p_until)
              and (p_status is null or d.status = p_status)
              and (p_ids is null or d.id = any (p_ids))
            order by d.dead_at, d.id
            limit p_limit;
        return;
    end if;
    -- Its own statement, so the plan always has the ILIKE the trigram index serves (a
    -- "p_error is null or ..." would hide it from a generic plan).
    v_pattern := '%' || pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
        p_error, '\', '\\'), '%', '\%'), '_', '\_') || '%';
    return query
        select d.*
        from dragonfly.dead_letters d
        where d.last_error ilike v_pattern
          and (p_queue is null or d.queue = p_queue)
          and (p_kind is null or d.kind = p_kind)
          and (p_since is null or d.dead_at >= p_since)
          and (p_until is null or d.dead_at < p_until)
          and (p_status is null or d.status = p_status)
          and (p_ids is null or d.id = any (p_ids))
        order by d.dead_at, d.id
        limit p_limit;
end
$$;

comment on function dragonfly.find_dead_letters(text, text, text, timestamptz, timestamptz, text, bigint[], integer) is
    'Dead letters matching every given filter (queue, kind, error substring, case-insensitive, taken literally; '
    'dead_at window, status, ids; null = any), oldest first, at most p_limit (null = all). The error search '
    'uses dead_letters_last_error_trgm_idx where pg_trgm is installed.';

revoke execute on function dragonfly.find_dead_letters(text, text, text, timestamptz, timestamptz, text, bigint[], integer) from public;
grant execute on function dragonfly.find_dead_letters(text, text, text, timestamptz, timestamptz, text, bigint[], integer)
    to service_role, dragonfly_worker;
