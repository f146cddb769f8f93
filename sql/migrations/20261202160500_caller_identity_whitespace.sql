-- The JWT identity and a named actor are trimmed of tabs and line breaks too, not only of
-- spaces (as the enforcement RPCs' field reader trims text).
--
-- Why: a claim or a name made only of "\r" or "\t" survived btrim() and became an identity
-- nobody can read in an audit field. Property tests (tests/security) found it.

create or replace function dragonfly.caller_jwt_identity()
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_claims jsonb;
begin
    begin
        v_claims := nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb;
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

create or replace function dragonfly.audit_actor(p_named text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_named text := nullif(pg_catalog.btrim(p_named, E' \t\r\n'), '');
    v_actor text := dragonfly.caller_actor();
    v_room integer;
begin
    if v_named is null or v_named = v_actor then
        return v_actor;
    end if;
    if dragonfly.caller_trust_level() = 'internal' then
        return v_named;
    end if;
    -- Anyone else is recorded as themselves; the name they gave is only a note. Audit fields
    -- hold at most 200 characters, so the note gives way first.
    v_room := 200 - pg_catalog.length(v_actor) - pg_catalog.length(' (on behalf of )');
    if v_room < 1 then
        return pg_catalog.left(v_actor, 200);
    end if;
    return v_actor || ' (on behalf of ' || pg_catalog.left(v_named, v_room) || ')';
end;
$$;
