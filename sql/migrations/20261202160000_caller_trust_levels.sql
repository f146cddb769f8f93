-- Who is calling: the trust level and the JWT identity, decided from the session.
--
-- Why: on Supabase the anon key ships inside every browser client, so a payload field such
-- as actor, closed_by or requested_by is whatever the internet writes into it. What a call
-- may cause must follow from who the session is (the role PostgREST switched to and the
-- claims it verified), never from the payload. These functions are the one place that
-- decision is made; the RPCs, the audit fields and (later) the job-kind policy ask them.
--
-- Levels (docs/security.md):
--   internal  service_role, members of dragonfly_worker, the schema owner (superusers):
--             the fleet and service tooling;
--   operator  the PostgreSQL role enforcement_operator (and its members). Signed-in Ops users
--             whose token carries an operator claim join this branch of caller_trust_level()
--             when identity moves to Supabase users;
--   public    everyone else: anon, authenticated, any other role. Default deny.
--
-- The caller's role inside a SECURITY DEFINER function: current_user is then the function's
-- owner, but the "role" setting still holds what SET ROLE chose (PostgREST runs
-- `set local role <jwt role>`), and a SECURITY DEFINER function cannot change it. A session
-- that never switched role (a login role of the fleet) is its session_user. Membership is
-- tested with USAGE (inherited rights): PostgREST's authenticator is a NOINHERIT member of
-- service_role and must not count as it.

create or replace function dragonfly.caller_role()
returns text
language sql
stable
set search_path = ''
as $$
    select case
        when pg_catalog.current_setting('role') in ('none', '') then session_user::text
        else pg_catalog.current_setting('role')
    end
$$;

comment on function dragonfly.caller_role() is
    'The role the caller acts as: the SET ROLE role (PostgREST''s JWT role), else the session user. '
    'Correct inside SECURITY DEFINER functions, where current_user is the owner.';

revoke execute on function dragonfly.caller_role() from public;
grant execute on function dragonfly.caller_role() to service_role, dragonfly_worker;

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
    select n.nspowner::regrole::text into v_owner from pg_catalog.pg_namespace as n where n.nspname = 'dragonfly';
    if v_role = 'service_role'
       or pg_catalog.pg_has_role(v_role, 'service_role', 'usage')
       or pg_catalog.pg_has_role(v_role, 'dragonfly_worker', 'usage')
       or pg_catalog.pg_has_role(v_role, v_owner, 'usage') then
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

comment on function dragonfly.caller_trust_level() is
    'internal | operator | public, decided from the session role (never from a payload): internal = '
    'service_role, dragonfly_worker members, the owner; operator = enforcement_operator; public = '
    'anon, authenticated and every other role.';

revoke execute on function dragonfly.caller_trust_level() from public;
grant execute on function dragonfly.caller_trust_level() to service_role, dragonfly_worker;

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
                    then nullif(pg_catalog.left(pg_catalog.btrim(v_claims ->> 'sub'), 200), '') end,
        'email', case when pg_catalog.jsonb_typeof(v_claims -> 'email') = 'string'
                      then nullif(pg_catalog.left(pg_catalog.btrim(v_claims ->> 'email'), 200), '') end
    );
end;
$$;

comment on function dragonfly.caller_jwt_identity() is
    'The caller''s JWT identity {sub, email} from request.jwt.claims as PostgREST sets them; null '
    'members when absent or not strings, each at most 200 characters.';

revoke execute on function dragonfly.caller_jwt_identity() from public;
grant execute on function dragonfly.caller_jwt_identity() to service_role, dragonfly_worker;

create or replace function dragonfly.caller_actor()
returns text
language sql
stable
set search_path = ''
as $$
    select coalesce(i ->> 'email', i ->> 'sub', dragonfly.caller_role())
      from (select dragonfly.caller_jwt_identity() as i) as s
$$;

comment on function dragonfly.caller_actor() is
    'The actor an audit field records for this session: the JWT''s email, else its sub, else the '
    'caller''s role (anon, a fleet login role, ...).';

revoke execute on function dragonfly.caller_actor() from public;
grant execute on function dragonfly.caller_actor() to service_role, dragonfly_worker;

create or replace function dragonfly.audit_actor(p_named text)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_named text := nullif(pg_catalog.btrim(p_named), '');
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

comment on function dragonfly.audit_actor(text) is
    'What an audit field (actor, created_by, closed_by, requested_by) records when a caller names '
    'p_named: internal callers the name itself; operator and public callers their own identity '
    '(caller_actor), with the name kept as "<identity> (on behalf of <name>)". At most 200 characters.';

revoke execute on function dragonfly.audit_actor(text) from public;
grant execute on function dragonfly.audit_actor(text) to service_role, dragonfly_worker;

-- The enforcement RPCs read their audit fields through field_text and fall back to
-- request_actor(). Both now follow the session: request_actor() is caller_actor(), and an
-- actor-like field read by field_text is recorded through audit_actor(), so no RPC (present
-- or future) can record a payload-named actor for an operator or public caller. field_text
-- becomes STABLE: it now reads the session.

create or replace function enforcement_private.request_actor()
returns text
language sql
stable
set search_path = ''
as $$
    select dragonfly.caller_actor()
$$;

comment on function enforcement_private.request_actor() is
    'The actor recorded when a payload names none: dragonfly.caller_actor() (the JWT''s email, else '
    'its sub, else the caller''s role). Internal.';

create or replace function enforcement_private.field_text(
    p_rpc text,
    p_payload jsonb,
    p_field text,
    p_required boolean,
    p_max_length integer default 200
)
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_value jsonb := p_payload -> p_field;
    v_text text;
begin
    if not enforcement_private.field_present(p_payload, p_field) then
        if p_required then
            perform enforcement_private.missing(p_rpc, p_field);
        end if;
        return null;
    end if;
    if pg_catalog.jsonb_typeof(v_value) <> 'string' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: %s must be a string (got %s)', p_rpc, p_field, pg_catalog.jsonb_typeof(v_value)
            );
    end if;
    v_text := pg_catalog.btrim(v_value #>> '{}', E' \t\r\n');
    if v_text = '' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: %s must not be blank', p_rpc, p_field);
    end if;
    if pg_catalog.length(v_text) > p_max_length then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: %s must be at most %s characters (got %s)',
                p_rpc, p_field, p_max_length, pg_catalog.length(v_text)
            );
    end if;
    if p_field = any (array['actor', 'created_by', 'closed_by']) then
        return dragonfly.audit_actor(v_text);
    end if;
    return v_text;
end;
$$;

comment on function enforcement_private.field_text(text, jsonb, text, boolean, integer) is
    'Reads a non-blank string field (trimmed, at most p_max_length characters) from an RPC payload; '
    '22023 naming the field otherwise. The audit fields actor, created_by and closed_by are returned '
    'through dragonfly.audit_actor() (a payload-named actor counts only from internal callers). Internal.';
