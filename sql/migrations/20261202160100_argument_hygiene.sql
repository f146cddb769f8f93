-- Input hygiene shared by the RPCs: ISO 8601 timestamps only, typed arguments parsed from
-- text (22023 naming the argument), caller input echoed at most ~100 characters.
--
-- Why: PostgreSQL's timestamptz input accepts far more than ISO 8601 ('tomorrow', 'epoch',
-- Julian dates such as 'J2461000', '1/2/2027' read by DateStyle), so "ISO 8601 timestamps"
-- were not what the RPCs enforced. And an RPC with uuid/numeric/timestamptz parameters
-- cannot name the argument that failed: PostgREST converts the JSON body to the parameter
-- types before the function runs and returns PostgreSQL's raw 22P02 / 22007 / 22008 /
-- 22003 with the whole input in the message. The typed-argument RPCs therefore take text
-- and parse it here (the following migrations), and every echo of caller input is cut.

-- The value a message may quote: at most 100 characters, quoted, marked when cut.
create or replace function enforcement_private.quoted_input(p_value text)
returns text
language sql
immutable
set search_path = ''
as $$
    select case
        when p_value is null then 'null'
        when pg_catalog.length(p_value) <= 100 then pg_catalog.quote_literal(p_value)
        else pg_catalog.quote_literal(pg_catalog.left(p_value, 100)) || '...'
    end
$$;

comment on function enforcement_private.quoted_input(text) is
    'Caller input as an error message may quote it: quoted, at most 100 characters (then "..."). Internal.';

revoke execute on function enforcement_private.quoted_input(text) from public;

-- ISO 8601 / RFC 3339 only: a date, optionally a time (T or one space), optionally
-- seconds and up to 6 decimals, optionally Z or a numeric offset. Anything else is null.
create or replace function enforcement_private.iso_timestamptz(p_value text)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
    if p_value is null
       or pg_catalog.length(p_value) > 40
       or p_value !~ '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}(:?\d{2})?)?)?$' then
        return null;
    end if;
    return p_value::timestamptz;
exception when data_exception then
    -- Shaped like ISO 8601 but not a real instant (month 13, 25:00, ...).
    return null;
end;
$$;

comment on function enforcement_private.iso_timestamptz(text) is
    'Parses an ISO 8601 timestamp (YYYY-MM-DD[(T| )hh:mm[:ss[.ffffff]][Z|+hh[:mm]]]); null for anything '
    'else, including what PostgreSQL alone would accept (tomorrow, epoch, J2461000, 1/2/2027). Internal.';

revoke execute on function enforcement_private.iso_timestamptz(text) from public;

create or replace function enforcement_private.arg_uuid(p_rpc text, p_arg text, p_value text)
returns uuid
language plpgsql
immutable
set search_path = ''
as $$
begin
    if p_value is null then
        return null;
    end if;
    if p_value !~* '^\s*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\s*$' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: %s must be a uuid (got %s)', p_rpc, p_arg,
                                        enforcement_private.quoted_input(p_value));
    end if;
    return pg_catalog.btrim(p_value)::uuid;
end;
$$;

comment on function enforcement_private.arg_uuid(text, text, text) is
    'A text argument as a uuid (canonical form; null stays null); 22023 naming the argument otherwise. '
    'Internal.';

revoke execute on function enforcement_private.arg_uuid(text, text, text) from public;

create or replace function enforcement_private.arg_numeric(p_rpc text, p_arg text, p_value text)
returns numeric
language plpgsql
immutable
set search_path = ''
as $$
begin
    if p_value is null then
        return null;
    end if;
    if pg_catalog.length(p_value) > 40
       or p_value !~ '^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,2})?\s*$' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: %s must be a number (got %s)', p_rpc, p_arg,
                                        enforcement_private.quoted_input(p_value));
    end if;
    return pg_catalog.btrim(p_value)::numeric;
end;
$$;

comment on function enforcement_private.arg_numeric(text, text, text) is
    'A text argument as a number (decimal, optional exponent, at most 40 characters; null stays null); '
    '22023 naming the argument otherwise. Internal.';

revoke execute on function enforcement_private.arg_numeric(text, text, text) from public;

create or replace function enforcement_private.arg_timestamptz(p_rpc text, p_arg text, p_value text)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
declare
    v_at timestamptz;
begin
    if p_value is null then
        return null;
    end if;
    v_at := enforcement_private.iso_timestamptz(pg_catalog.btrim(p_value));
    if v_at is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: %s must be an ISO 8601 timestamp (got %s)', p_rpc, p_arg,
                                        enforcement_private.quoted_input(p_value));
    end if;
    return v_at;
end;
$$;

comment on function enforcement_private.arg_timestamptz(text, text, text) is
    'A text argument as an ISO 8601 timestamp (null stays null); 22023 naming the argument otherwise. '
    'Internal.';

revoke execute on function enforcement_private.arg_timestamptz(text, text, text) from public;

-- The enforcement RPCs' timestamp fields: ISO 8601 only, as docs/rpc.md always said.
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
    v_at := enforcement_private.arg_timestamptz(p_rpc, p_field, v_value #>> '{}');
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
    'Reads an ISO 8601 timestamp string (finite, 1900-2200, not after p_not_after when given); 22023 '
    'naming the field otherwise. Internal.';

-- set_case_enrichment / set_case_scores: the typed bodies move to the enrichment schema
-- unchanged (no API role may call them there), and public gets text-argument wrappers of the
-- same names and argument names, so PostgREST callers send the same JSON and a bad value is
-- a 22023 naming the argument. SQL callers pass text (a quoted literal or a cast).
alter function public.set_case_enrichment(uuid, numeric, text, text) set schema enrichment;
alter function public.set_case_scores(uuid, numeric, numeric, numeric, numeric, numeric, numeric, text)
    set schema enrichment;
revoke execute on function enrichment.set_case_enrichment(uuid, numeric, text, text)
    from service_role, dragonfly_worker;
revoke execute on function enrichment.set_case_scores(uuid, numeric, numeric, numeric, numeric, numeric, numeric, text)
    from service_role, dragonfly_worker;
comment on function enrichment.set_case_enrichment(uuid, numeric, text, text) is
    'The typed body of public.set_case_enrichment(text, ...), which parses its arguments and calls this. '
    'Not callable by API roles.';
comment on function enrichment.set_case_scores(uuid, numeric, numeric, numeric, numeric, numeric, numeric, text) is
    'The typed body of public.set_case_scores(text, ...), which parses its arguments and calls this. '
    'Not callable by API roles.';

-- A tier is a short name; anything longer is refused before a message could quote it.
create or replace function enforcement_private.arg_tier(p_rpc text, p_value text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
    if pg_catalog.length(p_value) > 50 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: p_collectability_tier is not a tier (got %s)', p_rpc,
                                        enforcement_private.quoted_input(p_value));
    end if;
    return p_value;
end;
$$;

comment on function enforcement_private.arg_tier(text, text) is
    'A tier argument of at most 50 characters (the lookup check follows); 22023 otherwise. Internal.';

revoke execute on function enforcement_private.arg_tier(text, text) from public;

create function public.set_case_enrichment(
    p_case_id text,
    p_collectability_score text,
    p_collectability_tier text,
    p_summary text default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'set_case_enrichment';
begin
    perform enrichment.set_case_enrichment(
        enforcement_private.arg_uuid(c_rpc, 'p_case_id', p_case_id),
        enforcement_private.arg_numeric(c_rpc, 'p_collectability_score', p_collectability_score),
        enforcement_private.arg_tier(c_rpc, p_collectability_tier),
        p_summary
    );
end;
$$;

comment on function public.set_case_enrichment(text, text, text, text) is
    'Store the latest collectability score (0-100) and tier on judgments.cases and stamp last_enriched_at. '
    'A null tier is derived from the score band; a null summary keeps the previous one. Arguments are text '
    '(uuid, number) so a bad one is 22023 naming it. Service role only; 22023 bad argument or unknown tier, '
    'P0002 unknown case.';

revoke execute on function public.set_case_enrichment(text, text, text, text) from public, anon, authenticated;
grant execute on function public.set_case_enrichment(text, text, text, text) to service_role, dragonfly_worker;

create function public.set_case_scores(
    p_case_id text,
    p_identity_score text,
    p_contactability_score text,
    p_asset_score text,
    p_recency_amount_score text,
    p_adverse_penalty text,
    p_collectability_score text,
    p_collectability_tier text
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'set_case_scores';
begin
    perform enrichment.set_case_scores(
        enforcement_private.arg_uuid(c_rpc, 'p_case_id', p_case_id),
        enforcement_private.arg_numeric(c_rpc, 'p_identity_score', p_identity_score),
        enforcement_private.arg_numeric(c_rpc, 'p_contactability_score', p_contactability_score),
        enforcement_private.arg_numeric(c_rpc, 'p_asset_score', p_asset_score),
        enforcement_private.arg_numeric(c_rpc, 'p_recency_amount_score', p_recency_amount_score),
        enforcement_private.arg_numeric(c_rpc, 'p_adverse_penalty', p_adverse_penalty),
        enforcement_private.arg_numeric(c_rpc, 'p_collectability_score', p_collectability_score),
        enforcement_private.arg_tier(c_rpc, p_collectability_tier)
    );
end;
$$;

comment on function public.set_case_scores(text, text, text, text, text, text, text, text) is
    'Store the full scoring breakdown (identity, contactability, asset, recency/amount, adverse penalty, '
    'each 0-100), the collectability score and its tier on judgments.cases and stamp last_scored_at. A null '
    'tier is derived from the score band. Arguments are text (uuid, numbers) so a bad one is 22023 naming '
    'it. Service role only; 22023 bad argument or unknown tier, P0002 unknown case.';

revoke execute on function public.set_case_scores(text, text, text, text, text, text, text, text)
    from public, anon, authenticated;
grant execute on function public.set_case_scores(text, text, text, text, text, text, text, text)
    to service_role, dragonfly_worker;
