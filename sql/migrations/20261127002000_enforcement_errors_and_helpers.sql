-- Shared ground for the enforcement RPCs: the private helper schema, payload validation,
-- the project's own SQLSTATE codes, and small lookups every RPC needs.
--
-- Why: the enforcement RPCs (open/close case, stage, events, actions, payments,
-- subpoenas) all take one jsonb payload. Validating each field the same way in every
-- RPC, with the same messages and codes, is what lets callers rely on the codes instead
-- of the message text. The helpers live in their own schema (enforcement_private),
-- which no API role can use: only the SECURITY DEFINER RPCs, running as their owner,
-- call them.
--
-- Error codes raised by the enforcement RPCs (docs/rpc.md lists them per RPC):
--   22023  invalid_parameter_value  a payload field is missing, of the wrong type, out of
--                                   range, or names an unknown stage/tier/kind/status;
--                                   the message names the field.
--   P0002  no_data_found            a referenced case, judgment, plaintiff, action or task
--                                   does not exist.
--   23505  unique_violation         the row would duplicate one that must be unique (an
--                                   open case for the judgment, an active subpoena).
--   42501  insufficient_privilege   the caller may not execute the RPC (EXECUTE privilege).
--   DF001  case closed              the enforcement case is closed; nothing may change it.
--   DF002  stage regression         the target stage is lower on the ladder than the
--                                   current one and override is not true.
--   DF003  transition refused       the action status change is not allowed by the
--                                   action state machine (or the action is closed).
--   DF004  overpayment              the payment exceeds the balance still due.
--   DF005  judgment not enforceable the judgment is not active (satisfied, vacated,
--                                   expired).
-- Class DF is not used by PostgreSQL, so these never collide with a server error.

create schema if not exists enforcement_private;

comment on schema enforcement_private is
    'Helpers of the enforcement RPCs (payload validation, derived-column mapping, triggers). '
    'Not exposed over the API: no API role has USAGE; the SECURITY DEFINER RPCs call them as their owner.';

revoke all on schema enforcement_private from public;

-- ---------------------------------------------------------------------------------------
-- Payload shape

create or replace function enforcement_private.require_payload(
    p_rpc text,
    p_payload jsonb,
    p_allowed text[]
)
returns void
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_unknown text;
begin
    if p_payload is null or pg_catalog.jsonb_typeof(p_payload) <> 'object' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: payload must be a JSON object', p_rpc),
            hint = pg_catalog.format('Allowed fields: %s.', pg_catalog.array_to_string(p_allowed, ', '));
    end if;

    select pg_catalog.string_agg(k, ', ' order by k)
      into v_unknown
      from pg_catalog.jsonb_object_keys(p_payload) as k
     where k <> all (p_allowed);

    if v_unknown is not null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: unknown field(s) %s', p_rpc, v_unknown),
            hint = pg_catalog.format('Allowed fields: %s.', pg_catalog.array_to_string(p_allowed, ', '));
    end if;
end;
$$;

comment on function enforcement_private.require_payload(text, jsonb, text[]) is
    'Raises 22023 unless the payload is a JSON object whose keys are all in p_allowed (a misspelt '
    'field is an error, not silently ignored). Internal: called by the enforcement RPCs only.';

revoke execute on function enforcement_private.require_payload(text, jsonb, text[]) from public;

-- A field is "absent" when the key is missing or its value is JSON null.
create or replace function enforcement_private.field_present(p_payload jsonb, p_field text)
returns boolean
language sql
immutable
set search_path = ''
as $$
    select coalesce(pg_catalog.jsonb_typeof(p_payload -> p_field), 'null') <> 'null'
$$;

comment on function enforcement_private.field_present(jsonb, text) is
    'True when the payload has the field with a non-null value. Internal.';

revoke execute on function enforcement_private.field_present(jsonb, text) from public;

create or replace function enforcement_private.missing(p_rpc text, p_field text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
    raise exception using
        errcode = '22023',
        message = pg_catalog.format('%s: %s is required', p_rpc, p_field);
end;
$$;

comment on function enforcement_private.missing(text, text) is
    'Raises 22023 "<rpc>: <field> is required". Internal.';

revoke execute on function enforcement_private.missing(text, text) from public;

-- ---------------------------------------------------------------------------------------
-- Typed field readers. Each returns null when the field is absent and not required, and
-- raises 22023 naming the field when it is present but invalid.

create or replace function enforcement_private.field_uuid(
    p_rpc text,
    p_payload jsonb,
    p_field text,
    p_required boolean
)
returns uuid
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_value jsonb := p_payload -> p_field;
begin
    if not enforcement_private.field_present(p_payload, p_field) then
        if p_required then
            perform enforcement_private.missing(p_rpc, p_field);
        end if;
        return null;
    end if;
    -- The canonical textual form only: no braces, no missing hyphens, no surprises.
    if pg_catalog.jsonb_typeof(v_value) <> 'string'
       or (v_value #>> '{}') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: %s must be a uuid string', p_rpc, p_field);
    end if;
    return (v_value #>> '{}')::uuid;
end;
$$;

comment on function enforcement_private.field_uuid(text, jsonb, text, boolean) is
    'Reads a uuid field (canonical string form) from an RPC payload; 22023 naming the field when '
    'invalid or, if required, missing. Internal.';

revoke execute on function enforcement_private.field_uuid(text, jsonb, text, boolean) from public;

create or replace function enforcement_private.field_text(
    p_rpc text,
    p_payload jsonb,
    p_field text,
    p_required boolean,
    p_max_length integer default 200
)
returns text
language plpgsql
immutable
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
    return v_text;
end;
$$;

comment on function enforcement_private.field_text(text, jsonb, text, boolean, integer) is
    'Reads a non-blank string field (trimmed, at most p_max_length characters) from an RPC payload; '
    '22023 naming the field otherwise. Internal.';

revoke execute on function enforcement_private.field_text(text, jsonb, text, boolean, integer) from public;

create or replace function enforcement_private.field_choice(
    p_rpc text,
    p_payload jsonb,
    p_field text,
    p_required boolean,
    p_choices text[]
)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_value jsonb := p_payload -> p_field;
begin
    if not enforcement_private.field_present(p_payload, p_field) then
        if p_required then
            perform enforcement_private.missing(p_rpc, p_field);
        end if;
        return null;
    end if;
    if pg_catalog.jsonb_typeof(v_value) <> 'string' or (v_value #>> '{}') <> all (p_choices) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: %s must be one of %s (got %s)',
                p_rpc, p_field, pg_catalog.array_to_string(p_choices, ', '),
                pg_catalog.left(v_value::text, 80)
            );
    end if;
    return v_value #>> '{}';
end;
$$;

comment on function enforcement_private.field_choice(text, jsonb, text, boolean, text[]) is
    'Reads a string field that must be one of p_choices; 22023 naming the field and the choices '
    'otherwise. Internal.';

revoke execute on function enforcement_private.field_choice(text, jsonb, text, boolean, text[]) from public;

create or replace function enforcement_private.field_numeric(
    p_rpc text,
    p_payload jsonb,
    p_field text,
    p_required boolean,
    p_min numeric,
    p_max numeric,
    p_min_exclusive boolean default false,
    p_max_scale integer default 2
)
returns numeric
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_value jsonb := p_payload -> p_field;
    v_number numeric;
    v_range text := pg_catalog.format(
        '%s %s and <= %s with at most %s decimals',
        case when p_min_exclusive then '>' else '>=' end, p_min, p_max, p_max_scale
    );
begin
    if not enforcement_private.field_present(p_payload, p_field) then
        if p_required then
            perform enforcement_private.missing(p_rpc, p_field);
        end if;
        return null;
    end if;
    if pg_catalog.jsonb_typeof(v_value) = 'number' then
        v_number := v_value::numeric;
    elsif pg_catalog.jsonb_typeof(v_value) = 'string'
          and (v_value #>> '{}') ~ '^\s*[+-]?([0-9]{1,20}(\.[0-9]{0,20})?|\.[0-9]{1,20})\s*$' then
        -- Money often travels as a decimal string to dodge binary floating point.
        v_number := (v_value #>> '{}')::numeric;
    else
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: %s must be a number %s', p_rpc, p_field, v_range);
    end if;
    if v_number < p_min or (p_min_exclusive and v_number = p_min) or v_number > p_max
       or v_number <> pg_catalog.round(v_number, p_max_scale) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: %s must be a number %s (got %s)',
                p_rpc, p_field, v_range, pg_catalog.left(v_value::text, 40)
            );
    end if;
    return v_number;
end;
$$;

comment on function enforcement_private.field_numeric(text, jsonb, text, boolean, numeric, numeric, boolean, integer) is
    'Reads a number (JSON number or decimal string) within [p_min, p_max] (p_min excluded when '
    'p_min_exclusive) with at most p_max_scale decimals; 22023 naming the field otherwise. Internal.';

revoke execute on function enforcement_private.field_numeric(text, jsonb, text, boolean, numeric, numeric, boolean, integer)
    from public;

create or replace function enforcement_private.field_boolean(
    p_rpc text,
    p_payload jsonb,
    p_field text,
    p_default boolean
)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_value jsonb := p_payload -> p_field;
begin
    if not enforcement_private.field_present(p_payload, p_field) then
        return p_default;
    end if;
    if pg_catalog.jsonb_typeof(v_value) <> 'boolean' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: %s must be true or false (got %s)', p_rpc, p_field, pg_catalog.left(v_value::text, 40)
            );
    end if;
    return v_value::boolean;
end;
$$;

comment on function enforcement_private.field_boolean(text, jsonb, text, boolean) is
    'Reads a JSON boolean field (p_default when absent); 22023 naming the field otherwise. Internal.';

revoke execute on function enforcement_private.field_boolean(text, jsonb, text, boolean) from public;

create or replace function enforcement_private.field_timestamptz(
    p_rpc text,
    p_payload jsonb,
    p_field text,
    p_required boolean,
    p_not_after timestamptz default null
)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
    v_value jsonb := p_payload -> p_field;
    v_at timestamptz;
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
            message = pg_catalog.format('%s: %s must be an ISO 8601 timestamp string', p_rpc, p_field);
    end if;
    begin
        v_at := (v_value #>> '{}')::timestamptz;
    exception when data_exception then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: %s must be an ISO 8601 timestamp (got %s)', p_rpc, p_field, pg_catalog.left(v_value::text, 60)
            );
    end;
    if not pg_catalog.isfinite(v_at)
       or v_at < '1900-01-01 00:00:00+00'::timestamptz
       or v_at >= '2200-01-01 00:00:00+00'::timestamptz then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: %s must be a finite timestamp between 1900 and 2200', p_rpc, p_field);
    end if;
    if p_not_after is not null and v_at > p_not_after then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: %s must not be in the future', p_rpc, p_field);
    end if;
    return v_at;
end;
$$;

comment on function enforcement_private.field_timestamptz(text, jsonb, text, boolean, timestamptz) is
    'Reads a timestamp string (finite, 1900-2200, not after p_not_after when given); 22023 naming the '
    'field otherwise. Internal.';

revoke execute on function enforcement_private.field_timestamptz(text, jsonb, text, boolean, timestamptz) from public;

create or replace function enforcement_private.field_object(
    p_rpc text,
    p_payload jsonb,
    p_field text
)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_value jsonb := p_payload -> p_field;
begin
    if not enforcement_private.field_present(p_payload, p_field) then
        return '{}'::jsonb;
    end if;
    if pg_catalog.jsonb_typeof(v_value) <> 'object' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: %s must be a JSON object (got %s)', p_rpc, p_field, pg_catalog.jsonb_typeof(v_value)
            );
    end if;
    if pg_catalog.octet_length(v_value::text) > 65536 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: %s must be at most 64 kB of JSON', p_rpc, p_field);
    end if;
    return v_value;
end;
$$;

comment on function enforcement_private.field_object(text, jsonb, text) is
    'Reads a JSON object field ({} when absent, at most 64 kB); 22023 naming the field otherwise. Internal.';

revoke execute on function enforcement_private.field_object(text, jsonb, text) from public;

-- ---------------------------------------------------------------------------------------
-- Who is acting

create or replace function enforcement_private.request_actor()
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_claims jsonb;
begin
    begin
        v_claims := nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb;
    exception when invalid_text_representation then
        v_claims := null;
    end;
    return coalesce(
        nullif(v_claims ->> 'email', ''),
        nullif(v_claims ->> 'sub', ''),
        session_user::text
    );
end;
$$;

comment on function enforcement_private.request_actor() is
    'The actor recorded when a payload names none: the JWT''s email, else its sub, else the session user. '
    'Internal.';

revoke execute on function enforcement_private.request_actor() from public;

-- ---------------------------------------------------------------------------------------
-- Case lookups shared by the RPCs

-- Locks the case row for the rest of the transaction. Every enforcement RPC locks the
-- case first (and the judgment, when it needs it, second), so concurrent RPCs on one
-- case queue up in one order and cannot deadlock. FOR NO KEY UPDATE does not block the
-- foreign-key checks of rows inserted for the case (events, history, tasks).
create or replace function enforcement_private.lock_case(
    p_rpc text,
    p_case_id uuid,
    p_must_be_open boolean default true
)
returns public.enforcement_cases
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_case public.enforcement_cases;
begin
    select c.*
      into v_case
      from public.enforcement_cases as c
     where c.id = p_case_id
       for no key update;

    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('%s: enforcement case %s not found', p_rpc, p_case_id);
    end if;

    if p_must_be_open and v_case.closed_at is not null then
        raise exception using
            errcode = 'DF001',
            message = pg_catalog.format(
                '%s: enforcement case %s is closed (%s at %s)',
                p_rpc, p_case_id, v_case.closure_reason, v_case.closed_at
            ),
            hint = 'A closed case cannot change; open a new case for the judgment if enforcement resumes.';
    end if;

    return v_case;
end;
$$;

comment on function enforcement_private.lock_case(text, uuid, boolean) is
    'Locks an enforcement case FOR NO KEY UPDATE and returns it; P0002 when missing, DF001 when closed '
    'and p_must_be_open. Every RPC locks the case before the judgment, so they cannot deadlock. Internal.';

revoke execute on function enforcement_private.lock_case(text, uuid, boolean) from public;

create or replace function enforcement_private.tier_for_score(p_score numeric)
returns public.enforcement_tier_lookup
language sql
stable
set search_path = ''
as $$
    select t.*
      from public.enforcement_tier_lookup as t
     where t.min_score <= p_score
     order by t.min_score desc
     limit 1
$$;

comment on function enforcement_private.tier_for_score(numeric) is
    'The tier band of a collectability score: the tier with the greatest min_score <= score (null for a '
    'null score). Internal; used by open_enforcement_case() and refresh_enforcement_metrics().';

revoke execute on function enforcement_private.tier_for_score(numeric) from public;

create or replace function enforcement_private.stage_due_at(p_stage text, p_from timestamptz)
returns timestamptz
language sql
stable
set search_path = ''
as $$
    select p_from + pg_catalog.make_interval(days => s.sla_days)
      from public.enforcement_stage_lookup as s
     where s.stage = p_stage
$$;

comment on function enforcement_private.stage_due_at(text, timestamptz) is
    'p_from plus the stage''s SLA in days: the default next_action_at of a case entering the stage '
    '(null for terminal stages). Internal.';

revoke execute on function enforcement_private.stage_due_at(text, timestamptz) from public;

create or replace function enforcement_private.field_storage_path(
    p_rpc text,
    p_payload jsonb,
    p_field text,
    p_required boolean
)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_path text := enforcement_private.field_text(p_rpc, p_payload, p_field, p_required, 1024);
begin
    if v_path is not null
       and (v_path ~ '^/' or v_path ~ '(^|/)\.\.?(/|$)' or v_path ~ '//' or v_path ~ '[[:cntrl:]]') then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: %s must be a relative storage key (bucket/folder/file): no leading /, no . or .. '
                'segments, no empty segments, no control characters', p_rpc, p_field
            );
    end if;
    return v_path;
end;
$$;

comment on function enforcement_private.field_storage_path(text, jsonb, text, boolean) is
    'Reads a Supabase storage key (relative, at most 1024 characters, no . or .. or empty segments, no '
    'control characters); 22023 naming the field otherwise. Internal.';

revoke execute on function enforcement_private.field_storage_path(text, jsonb, text, boolean) from public;
