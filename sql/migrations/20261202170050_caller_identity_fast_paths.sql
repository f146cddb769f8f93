-- The caller-identity functions, made cheap enough to run on every queue_job() call.
--
-- Why: queue_job() now asks for the caller's trust level, role and JWT identity on every
-- call (the job-kind policy and the envelope's provenance, next migrations), and the three
-- were a measurable part of its time. The decisions are unchanged; only the work is:
--   * caller_role() is PL/pgSQL: called from PL/pgSQL it is a cached simple expression,
--     where a non-inlined SQL function re-ran its executor setup on every call;
--   * caller_trust_level() tests membership of service_role and dragonfly_worker first and
--     looks up the schema owner only when both fail (the fleet never gets that far);
--   * caller_jwt_identity() returns at once when no claims are set (the fleet's own
--     sessions), and enters its subtransaction (to survive claims that are not JSON) only
--     when claims are set.

create or replace function dragonfly.caller_role()
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_role text := pg_catalog.current_setting('role');
begin
    if v_role in ('none', '') then
        return session_user::text;
    end if;
    return v_role;
end;
$$;

create or replace function dragonfly.caller_trust_level()
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_role text := dragonfly.caller_role();
    v_owner text;
begin
    if v_role = 'service_role'
       or pg_catalog.pg_has_role(v_role, 'service_role', 'usage')
       or pg_catalog.pg_has_role(v_role, 'dragonfly_worker', 'usage') then
        return 'internal';
    end if;
    select n.nspowner::regrole::text into v_owner from pg_catalog.pg_namespace as n where n.nspname = 'dragonfly';
    if pg_catalog.pg_has_role(v_role, v_owner, 'usage') then
        return 'internal';
    end if;
    -- Operators. Signed-in users with an operator claim are decided here too, so that every
    -- caller of this function follows when they are added.
    if pg_catalog.pg_has_role(v_role, 'enforcement_operator', 'usage') then
        return 'operator';
    end if;
    return 'public';
end;
$$;

create or replace function dragonfly.caller_jwt_identity()
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_setting text := pg_catalog.current_setting('request.jwt.claims', true);
    v_claims jsonb;
begin
    if v_setting is null or v_setting = '' then
        return '{"sub": null, "email": null}'::jsonb;
    end if;
    begin
        v_claims := v_setting::jsonb;
    exception when data_exception then
        v_claims := null;
    end;
    if pg_catalog.jsonb_typeof(v_claims) is distinct from 'object' then
        v_claims := '{}'::jsonb;
    end if;
    -- Only string claims, trimmed and bounded, so an identity is always printable text.
    return pg_catalog.jsonb_build_object(
        'sub', case when pg_catalog.jsonb_typeof(v_claims -> 'sub') = 'string'
                    then nullif(pg_catalog.left(pg_catalog.btrim(v_claims ->> 'sub', E' \t\r\n'), 200), '') end,
        'email', case when pg_catalog.jsonb_typeof(v_claims -> 'email') = 'string'
                      then nullif(pg_catalog.left(pg_catalog.btrim(v_claims ->> 'email', E' \t\r\n'), 200), '') end
    );
end;
$$;
