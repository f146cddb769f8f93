-- Supabase compatibility layer.
--
-- Why: every later migration is written for Supabase, which already provides the
-- PostgREST roles and the auth.* helper functions. On a plain PostgreSQL (the
-- machine's server, the embedded default) they do not exist, so this migration
-- creates each one only where it is missing. On Supabase it changes nothing.
--
-- It also creates the two roles this project itself needs everywhere:
--   enforcement_operator  the Ops users the specification names (JWT role claim)
--   dragonfly_worker      the fleet's own role; grant it to the login role the
--                         worker processes connect with.
do $$
declare
    r text;
begin
    -- Roles are cluster-wide: another database of the same cluster may be
    -- migrating at the same moment, so losing the race to create one is fine.
    foreach r in array array[
        'anon', 'authenticated', 'enforcement_operator', 'dragonfly_worker', 'service_role',
        'authenticator'
    ] loop
        if not exists (select 1 from pg_catalog.pg_roles where rolname = r) then
            begin
                execute pg_catalog.format(
                    'create role %I %s',
                    r,
                    case r
                        -- Supabase's service_role bypasses row-level security; mirror that.
                        when 'service_role' then 'nologin noinherit bypassrls'
                        when 'authenticator' then 'login noinherit'
                        else 'nologin noinherit'
                    end
                );
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;

-- PostgREST switches from authenticator to the JWT's role claim, so authenticator
-- must be a member of every role a request may run as (Supabase grants the first
-- three itself; granting again is harmless).
grant anon, authenticated, service_role, enforcement_operator to authenticator;

create schema if not exists auth;

grant usage on schema auth to anon, authenticated, service_role, enforcement_operator, dragonfly_worker;

-- auth.jwt(), auth.uid() and auth.role() read the claims PostgREST puts in the
-- request.jwt.claims setting, as Supabase's own definitions do. They are created
-- only when absent so Supabase's versions are never replaced.
do $$
begin
    if not exists (
        select 1
        from pg_catalog.pg_proc p
        join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'auth' and p.proname = 'jwt'
    ) then
        create function auth.jwt() returns jsonb
        language sql stable
        as $fn$
            select coalesce(
                nullif(pg_catalog.current_setting('request.jwt.claim', true), ''),
                nullif(pg_catalog.current_setting('request.jwt.claims', true), '')
            )::jsonb
        $fn$;
        comment on function auth.jwt() is
            'Claims of the current request''s JWT, as PostgREST sets them in request.jwt.claims.';
    end if;

    if not exists (
        select 1
        from pg_catalog.pg_proc p
        join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'auth' and p.proname = 'uid'
    ) then
        create function auth.uid() returns uuid
        language sql stable
        as $fn$
            select nullif(
                coalesce(
                    pg_catalog.current_setting('request.jwt.claim.sub', true),
                    (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
                ),
                ''
            )::uuid
        $fn$;
        comment on function auth.uid() is
            'The sub claim of the current request''s JWT as a uuid, or null.';
    end if;

    if not exists (
        select 1
        from pg_catalog.pg_proc p
        join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'auth' and p.proname = 'role'
    ) then
        create function auth.role() returns text
        language sql stable
        as $fn$
            select nullif(
                coalesce(
                    pg_catalog.current_setting('request.jwt.claim.role', true),
                    (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
                ),
                ''
            )::text
        $fn$;
        comment on function auth.role() is
            'The role claim of the current request''s JWT, or null.';
    end if;
end
$$;

grant execute on function auth.jwt(), auth.uid(), auth.role()
    to anon, authenticated, service_role, enforcement_operator, dragonfly_worker;

-- Functions are executable by PUBLIC by default; this project grants EXECUTE
-- deliberately instead, function by function.
alter default privileges in schema public revoke execute on functions from public;
