-- Jobs carry their tenant. queue_job() finds it at the door, the envelope records it, and the
-- keys and rate windows of people's jobs are kept per tenant.
--
-- Why: since 20261203090000_tenants.sql every case, judgment, court case and plaintiff
-- belongs to a tenant, and a row of another tenant must answer exactly like a row that does
-- not exist. queue_job() still found a job's referenced row wherever it was: anyone could
-- queue work on any tenant's case, and the worker acted without knowing whose work it did.
--
-- At the door (dragonfly.check_queue_job(), shared by queue_job() and queue_jobs()):
--   * a referenced row (a payload field of the kind's shape whose "references" is court_case,
--     enforcement_case, plaintiff or judgment) is found only in the tenants the caller reaches:
--     its write tenants for the operator level, its read tenants for the public level
--     (viewers, signed-in non-members: none; anon: none), every tenant for internal callers
--     (narrowed by dragonfly.acting_tenant, as tenancy.caller_tenants() narrows them). A row
--     elsewhere is 23503 with the very message of a missing row. These references are resolved
--     for every level (reference_levels now only limits outreach_campaign, which has no
--     tenant);
--   * the envelope's new field "tenant" is the referenced row's tenant. A caller may name it
--     ("tenant": "<uuid>" beside "kind"): it must then be the row's, else the missing-row
--     answer. A job without a referenced row takes the tenant named (one the caller reaches,
--     else 23503 'no tenant'); without one, an internal caller's job crosses tenants (the
--     envelope's tenant is null) unless acting_tenant narrows it, and an operator's or a
--     public caller's job takes the one tenant they reach (22023 when they reach several);
--   * the payload is checked before the repeat probe: the key's namespace depends on the
--     tenant, so a repeat is answered only inside the tenant of its row, one the caller
--     reaches. The answer to a repeat never names a job of another tenant. The fleet, when
--     not narrowed, reaches every tenant and keeps its keys as given: its repeats are still
--     answered before the payload is looked at (the fleet's hot path costs what it did);
--   * key namespaces: an operator's key is stored as "tenant:<tenant id>:<key>" (operators of
--     one tenant share it; an operator of B reusing a key of A neither collides with A's job
--     nor learns of it), at most 211 characters as given; a public caller's as
--     "public:<16 hex of md5(role/sub/tenant)>:<key>" (was role/sub), at most 200; internal
--     keys stay as given (the fleet's keys name their rows: enforce:sla:<case>:<due>,
--     alert:<event>:<rule>). "public:" stays reserved to public callers;
--   * rate limits per minute count per tenant for operators and public callers
--     ("<level>:<kind>:tenant:<tenant id>"): one tenant's traffic neither uses up another's
--     window nor shows in its PT429 answers. Per-target windows are per row, so per tenant
--     already.
--
-- dragonfly.send_job() (the claim-and-send half, called by request_case_copilot() as well)
-- keeps its signature and finds the job's tenant itself, from the payload's referenced row;
-- queue_job() and queue_jobs() hand the tenant they checked to dragonfly.send_tenant_job().
--
-- Redefined here: check_job_payload (returns the tenant too, so it is dropped and created
-- again), check_queue_job, send_job, queue_job, queue_jobs (create or replace).

-- ---------------------------------------------------------------------------------------
-- Where a referenced row lives

create function dragonfly.job_reference_tenant(p_reference text, p_id uuid, p_tenants uuid[])
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
    v_tenant uuid;
begin
    -- The tenant filter is part of the lookup: a row of a tenant outside p_tenants is not
    -- found, at the cost of a row that does not exist. p_tenants null: every tenant.
    case p_reference
        when 'court_case' then
            select c.tenant_id into v_tenant
              from judgments.cases as c
             where c.id = p_id and (p_tenants is null or c.tenant_id = any (p_tenants));
        when 'enforcement_case' then
            select c.tenant_id into v_tenant
              from public.enforcement_cases as c
             where c.id = p_id and (p_tenants is null or c.tenant_id = any (p_tenants));
        when 'plaintiff' then
            select p.tenant_id into v_tenant
              from public.plaintiffs as p
             where p.id = p_id and (p_tenants is null or p.tenant_id = any (p_tenants));
        when 'judgment' then
            select j.tenant_id into v_tenant
              from public.judgments as j
             where j.id = p_id and (p_tenants is null or j.tenant_id = any (p_tenants));
        else
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('job_reference_tenant: %s rows have no tenant', p_reference);
    end case;
    return v_tenant;
end;
$$;

comment on function dragonfly.job_reference_tenant(text, uuid, uuid[]) is
    'The tenant of the row a job payload field references (court_case, enforcement_case, plaintiff, '
    'judgment), when it exists in one of p_tenants (null: any tenant); else null. Internal.';

revoke execute on function dragonfly.job_reference_tenant(text, uuid, uuid[]) from public;

-- The tenants whose rows a caller of this level may queue work on: null for every tenant
-- (internal callers and the enforcement_operator role, not narrowed: tenancy.caller_tenants()'s
-- own rule, without listing every tenant on each call), else caller_tenants() of the need
-- the level has (public: read, operator and internal: write). For a signed-in user (role
-- authenticated) it reads the memberships itself, by caller_tenants()'s rule for them: the
-- caller's trust level is known already (the provenance's), and caller_tenants() would decide
-- it again on every call of a person's console (one membership query instead of three).
create function dragonfly.job_tenants_reached(p_level text)
returns uuid[]
language plpgsql
stable
set search_path = ''
as $$
declare
    v_role text := dragonfly.caller_role();
    v_acting uuid := tenancy.acting_tenant();
    v_user uuid;
    v_tenants uuid[];
begin
    if v_role = 'authenticated' and p_level <> 'internal'
       and not pg_catalog.pg_has_role(v_role, 'enforcement_operator', 'usage') then
        v_user := tenancy.caller_user_id();
        if v_user is null then
            return '{}';
        end if;
        select coalesce(pg_catalog.array_agg(m.tenant_id), '{}')
          into v_tenants
          from public.tenant_members as m
         where m.user_id = v_user
           and (v_acting is null or m.tenant_id = v_acting)
           and (p_level = 'public' or m.role in ('operator', 'admin'));
        return v_tenants;
    end if;
    if v_acting is null
       and (p_level = 'internal' or pg_catalog.pg_has_role(v_role, 'enforcement_operator', 'usage')) then
        return null;
    end if;
    return tenancy.caller_tenants(case when p_level = 'public' then 'read' else 'write' end);
end;
$$;

comment on function dragonfly.job_tenants_reached(text) is
    'The tenants whose rows the caller (at trust level p_level) may queue jobs on: null = every tenant '
    '(internal callers and enforcement_operator, unless dragonfly.acting_tenant narrows them), else '
    'what tenancy.caller_tenants(read) answers for public callers and (write) for operators. Internal.';

revoke execute on function dragonfly.job_tenants_reached(text) from public;

-- The tenant of a payload's first referenced row that has one, wherever it is (send_job()
-- for RPCs that checked access themselves); null without such a row.
create function dragonfly.job_payload_tenant(p_shape jsonb, p_job jsonb)
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
    v_field text;
    v_reference text;
    v_value text;
    v_tenant uuid;
begin
    if p_shape is null or p_job is null or pg_catalog.jsonb_typeof(p_job) <> 'object' then
        return null;
    end if;
    for v_field, v_reference in
        select s.key, s.value ->> 'references'
          from pg_catalog.jsonb_each(p_shape) as s
         where s.value ->> 'references' in ('court_case', 'enforcement_case', 'plaintiff', 'judgment')
         order by s.key
    loop
        v_value := p_job ->> v_field;
        continue when v_value is null
            or v_value !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
        v_tenant := dragonfly.job_reference_tenant(v_reference, v_value::uuid, null);
        if v_tenant is not null then
            return v_tenant;
        end if;
    end loop;
    return null;
end;
$$;

comment on function dragonfly.job_payload_tenant(jsonb, jsonb) is
    'The tenant of the first row a job payload references (fields of the shape p_shape referencing '
    'court_case, enforcement_case, plaintiff or judgment, by name), or null. No access check: for '
    'callers that checked the row themselves. Internal.';

revoke execute on function dragonfly.job_payload_tenant(jsonb, jsonb) from public;

-- ---------------------------------------------------------------------------------------
-- The payload's shape, and the tenant of its rows

drop function dragonfly.check_job_payload(text, jsonb, text[], text, jsonb);

-- As in 20261202170100, and: a field referencing a row with a tenant is found only in
-- p_tenants (null: any), every level alike, and all such rows of one payload must be in one
-- tenant; that tenant is returned with the target.
create function dragonfly.check_job_payload(
    p_kind text,
    p_shape jsonb,
    p_allowed text[],
    p_level text,
    p_job jsonb,
    p_tenants uuid[],
    out target text,
    out tenant uuid
)
language plpgsql
stable
set search_path = ''
as $$
declare
    v_field text;
    v_value jsonb;
    v_spec jsonb;
    v_text text;
    v_type text;
    v_max integer;
    v_missing text;
    v_required jsonb;
    v_required_seen integer := 0;
    v_reference text;
    v_row_tenant uuid;
begin
    for v_field, v_value in select e.key, e.value from pg_catalog.jsonb_each(p_job) as e loop
        v_spec := p_shape -> v_field;
        if v_spec is null then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'queue_job: %s jobs have no field payload.%s',
                    p_kind, enforcement_private.quoted_input(v_field)
                ),
                hint = pg_catalog.format(
                    'Fields of %s jobs: %s.', p_kind,
                    (select pg_catalog.string_agg(k, ', ' order by k)
                       from pg_catalog.jsonb_object_keys(p_shape) as k)
                );
        end if;
        if p_allowed is not null and v_field <> all (p_allowed) then
            raise exception using
                errcode = '42501',
                message = pg_catalog.format(
                    'queue_job: %s callers may not set payload.%s of %s jobs', p_level, v_field, p_kind
                ),
                hint = pg_catalog.format(
                    '%s callers may set: %s.', p_level, pg_catalog.array_to_string(p_allowed, ', ')
                );
        end if;
        if pg_catalog.jsonb_typeof(v_value) = 'null' then
            continue;  -- an explicit null is the field left out
        end if;
        if (v_spec ->> 'required')::boolean then
            v_required_seen := v_required_seen + 1;
        end if;

        v_type := v_spec ->> 'type';
        if v_type = 'object' then
            if pg_catalog.jsonb_typeof(v_value) <> 'object' then
                raise exception using
                    errcode = '22023',
                    message = pg_catalog.format(
                        'queue_job: payload.%s must be a JSON object (got %s)',
                        v_field, pg_catalog.jsonb_typeof(v_value)
                    );
            end if;
            continue;
        end if;
        if pg_catalog.jsonb_typeof(v_value) <> 'string' then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'queue_job: payload.%s must be a string (got %s)', v_field, pg_catalog.jsonb_typeof(v_value)
                );
        end if;
        v_text := v_value #>> '{}';
        if v_type = 'uuid' then
            if v_text !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
                raise exception using
                    errcode = '22023',
                    message = pg_catalog.format(
                        'queue_job: payload.%s must be a uuid (got %s)',
                        v_field, enforcement_private.quoted_input(v_text)
                    );
            end if;
        elsif v_type = 'enum' then
            if not (v_spec -> 'values') ? v_text then
                raise exception using
                    errcode = '22023',
                    message = pg_catalog.format(
                        'queue_job: payload.%s must be one of %s (got %s)',
                        v_field,
                        (select pg_catalog.string_agg(v, ', ')
                           from pg_catalog.jsonb_array_elements_text(v_spec -> 'values') as v),
                        enforcement_private.quoted_input(v_text)
                    );
            end if;
        elsif v_type = 'timestamp' then
            if enforcement_private.iso_timestamptz(v_text) is null then
                raise exception using
                    errcode = '22023',
                    message = pg_catalog.format(
                        'queue_job: payload.%s must be an ISO 8601 timestamp (got %s)',
                        v_field, enforcement_private.quoted_input(v_text)
                    );
            end if;
        else  -- text
            v_max := coalesce((v_spec ->> 'max_length')::integer, 200);
            if pg_catalog.btrim(v_text, E' \t\r\n') = '' or pg_catalog.length(v_text) > v_max
               or v_text ~ '[\x01-\x08\x0a-\x1f\x7f]' then
                raise exception using
                    errcode = '22023',
                    message = pg_catalog.format(
                        'queue_job: payload.%s must be one line of 1 to %s characters (got %s)',
                        v_field, v_max, enforcement_private.quoted_input(v_text)
                    );
            end if;
        end if;

        v_reference := v_spec ->> 'references';
        if v_reference in ('court_case', 'enforcement_case', 'plaintiff', 'judgment') then
            -- A row in a tenant the caller does not reach, or in another tenant than the
            -- payload's other rows, is answered as a row that does not exist.
            v_row_tenant := dragonfly.job_reference_tenant(v_reference, v_text::uuid, p_tenants);
            if v_row_tenant is null or v_row_tenant is distinct from coalesce(tenant, v_row_tenant) then
                raise exception using
                    errcode = '23503',
                    message = pg_catalog.format(
                        'queue_job: payload.%s: no %s %s', v_field,
                        pg_catalog.replace(v_reference, '_', ' '),
                        enforcement_private.quoted_input(v_text)
                    );
            end if;
            tenant := v_row_tenant;
        elsif v_reference is not null
              and (not v_spec ? 'reference_levels' or (v_spec -> 'reference_levels') ? p_level)
              and not dragonfly.job_reference_exists(v_reference, v_text) then
            raise exception using
                errcode = '23503',
                message = pg_catalog.format(
                    'queue_job: payload.%s: no %s %s', v_field,
                    pg_catalog.replace(v_reference, '_', ' '),
                    enforcement_private.quoted_input(v_text)
                );
        end if;
        if (v_spec ->> 'target')::boolean then
            target := v_text;
        end if;
    end loop;

    -- Required fields: counted in the loop; named (a query) only when some are missing.
    v_required := pg_catalog.jsonb_path_query_array(
        p_shape, '$.keyvalue() ? (@.value.required == true).key'
    );
    if v_required_seen < pg_catalog.jsonb_array_length(v_required) then
        select pg_catalog.string_agg(r, ', ' order by r)
          into v_missing
          from pg_catalog.jsonb_array_elements_text(v_required) as r
         where pg_catalog.jsonb_typeof(p_job -> r) is null
            or pg_catalog.jsonb_typeof(p_job -> r) = 'null';
    end if;
    if v_missing is not null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('queue_job: %s jobs need payload.%s', p_kind, v_missing);
    end if;
end;
$$;

comment on function dragonfly.check_job_payload(text, jsonb, text[], text, jsonb, uuid[]) is
    'Checks a job payload against its kind''s shape (dragonfly.job_kinds.payload_fields) and the '
    'fields the caller''s level may set: 22023 unknown field, bad value or missing required field; '
    '42501 a field the level may not set; 23503 a referenced row that does not exist, or whose tenant '
    'is not one of p_tenants (null: any) or not the tenant of the payload''s other rows. Returns the '
    'target field''s value and the referenced rows'' tenant (null: none referenced). Internal to '
    'queue_job().';

revoke execute on function dragonfly.check_job_payload(text, jsonb, text[], text, jsonb, uuid[]) from public;

-- ---------------------------------------------------------------------------------------
-- Claim and send, in a tenant

alter type dragonfly.checked_job add attribute tenant uuid;

comment on type dragonfly.checked_job is
    'One queue_job() envelope after dragonfly.check_queue_job(): the kind, the key (in the '
    'caller''s namespace), the payload, delay and requested_by to send; msg_id is set when the key '
    'was enqueued already (nothing to send); limits {rate_per_minute, target_rate_per_hour, '
    'target, tenant} when the caller''s level has rate limits for the kind; tenant, the job''s '
    'tenant (null: it crosses tenants, internal callers only). Internal.';

-- The rate-limit scope of a (level, kind) per minute: per tenant when the job has one.
create function dragonfly.enqueue_rate_scope(p_level text, p_kind text, p_tenant uuid)
returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
    select p_level || ':' || p_kind || coalesce(':tenant:' || p_tenant::text, '')
$$;

comment on function dragonfly.enqueue_rate_scope(text, text, uuid) is
    'The scope of the per-minute rate window of p_level callers'' p_kind jobs in tenant p_tenant: '
    '"<level>:<kind>:tenant:<tenant id>" ("<level>:<kind>" for a job without a tenant). Internal.';

revoke execute on function dragonfly.enqueue_rate_scope(text, text, uuid) from public;

-- The half of queue_job() after validation, as send_job() was (20261202170100), with the
-- job's tenant in the envelope and in the per-minute rate scope.
create function dragonfly.send_tenant_job(
    p_kind text,
    p_key text,
    p_job jsonb,
    p_delay integer,
    p_requested_by text,
    p_provenance jsonb,
    p_limits jsonb,
    p_tenant uuid
)
returns bigint
language plpgsql
volatile
set search_path = ''
set enable_seqscan = off
as $$
declare
    v_now timestamptz := pg_catalog.now();
    v_inserted integer;
    v_msg_id bigint;
begin
    insert into dragonfly.enqueued_jobs (kind, idempotency_key, msg_id, enqueued_at, enqueued_by)
    values (p_kind, p_key, 0, v_now, p_requested_by)
    on conflict (kind, idempotency_key) do nothing;
    get diagnostics v_inserted = row_count;

    if v_inserted = 0 then
        select j.msg_id
          into v_msg_id
          from dragonfly.enqueued_jobs as j
         where j.kind = p_kind and j.idempotency_key = p_key;
        if v_msg_id is null then
            -- The record was pruned between our insert attempt and this read.
            raise exception using
                errcode = '40001',
                message = pg_catalog.format(
                    'queue_job: enqueue record for (%s, %s) changed concurrently; retry',
                    p_kind, enforcement_private.quoted_input(p_key)
                );
        end if;
        return v_msg_id;
    end if;

    if p_limits ->> 'rate_per_minute' is not null then
        perform dragonfly.count_enqueue(
            dragonfly.enqueue_rate_scope(p_provenance ->> 'level', p_kind, p_tenant), interval '1 minute',
            (p_limits ->> 'rate_per_minute')::integer,
            pg_catalog.format('%s jobs from %s callers', p_kind, p_provenance ->> 'level')
        );
    end if;
    if p_limits ->> 'target_rate_per_hour' is not null and p_limits ->> 'target' is not null then
        perform dragonfly.count_enqueue(
            (p_provenance ->> 'level') || ':' || p_kind || ':' || (p_limits ->> 'target'),
            interval '1 hour',
            (p_limits ->> 'target_rate_per_hour')::integer,
            pg_catalog.format(
                '%s jobs for %s from %s callers', p_kind, p_limits ->> 'target', p_provenance ->> 'level'
            )
        );
    end if;

    select pgmq.send(
        p_kind,
        pg_catalog.jsonb_build_object(
            'kind', p_kind,
            'idempotency_key', p_key,
            'payload', p_job,
            'requested_by', p_requested_by,
            'provenance', p_provenance,
            'tenant', p_tenant,
            'enqueued_at',
            pg_catalog.to_char(pg_catalog.timezone('UTC', v_now), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        ),
        p_delay
    )
      into v_msg_id;

    update dragonfly.enqueued_jobs as j
       set msg_id = v_msg_id
     where j.kind = p_kind and j.idempotency_key = p_key;

    return v_msg_id;
end;
$$;

comment on function dragonfly.send_tenant_job(text, text, jsonb, integer, text, jsonb, jsonb, uuid) is
    'Claims (kind, key) in dragonfly.enqueued_jobs and sends the envelope {kind, idempotency_key, '
    'payload, requested_by, provenance, tenant, enqueued_at} with p_delay seconds; a known key returns '
    'its first msg_id and sends nothing. p_limits {rate_per_minute, target_rate_per_hour, target} are '
    'counted for new keys only (PT429), per minute in p_tenant''s window. The caller has validated '
    'everything, the tenant included. Internal.';

revoke execute on function dragonfly.send_tenant_job(text, text, jsonb, integer, text, jsonb, jsonb, uuid)
    from public;

-- Unchanged signature: RPCs that build a job themselves (request_case_copilot) call it. The
-- job's tenant is its referenced row's (the RPC checked the row); a job without one acts
-- where the caller is narrowed to, or crosses tenants.
create or replace function dragonfly.send_job(
    p_kind text,
    p_key text,
    p_job jsonb,
    p_delay integer,
    p_requested_by text,
    p_provenance jsonb,
    p_limits jsonb default null
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_tenant uuid;
begin
    v_tenant := dragonfly.job_payload_tenant(
        (select k.payload_fields from dragonfly.job_kinds as k where k.kind = p_kind), p_job
    );
    return dragonfly.send_tenant_job(
        p_kind, p_key, p_job, p_delay, p_requested_by, p_provenance, p_limits,
        coalesce(v_tenant, tenancy.acting_tenant())
    );
end;
$$;

comment on function dragonfly.send_job(text, text, jsonb, integer, text, jsonb, jsonb) is
    'Claims (kind, key) and sends the envelope of a job an RPC built and checked itself '
    '(request_case_copilot): its tenant is the tenant of the payload''s referenced row, else the '
    'caller''s acting tenant, else none; then as send_tenant_job(). A known key returns its first '
    'msg_id and sends nothing. Internal.';

-- ---------------------------------------------------------------------------------------
-- The door

-- As in 20261202170100, with the tenant: "tenant" joins the envelope's fields, the payload
-- (and with it the tenant) is checked before the repeat probe, and the namespaces of
-- operators' and public callers' keys are per tenant (this migration's header).
create or replace function dragonfly.check_queue_job(payload jsonb, p_provenance jsonb)
returns dragonfly.checked_job
language plpgsql
stable
set search_path = ''
set enable_seqscan = off
as $$
declare
    v_allowed_keys constant text[] :=
        array['kind', 'idempotency_key', 'payload', 'delay_seconds', 'requested_by', 'tenant'];
    v_unknown text;
    v_provenance jsonb := p_provenance;
    v_level text := v_provenance ->> 'level';
    v_kind text;
    v_enabled boolean;
    v_shape jsonb;
    v_max_bytes integer;
    v_max_depth integer;
    v_allowed boolean;
    v_fields text[];
    v_max_delay integer;
    v_rate integer;
    v_target_rate integer;
    v_msg_id bigint;
    v_key text;
    v_key_max integer;
    v_job jsonb;
    v_delay numeric;
    v_requested_by text;
    v_size integer;
    v_target text;
    v_named uuid;
    v_reach uuid[];
    v_scope uuid[];
    v_checked record;
    v_tenant uuid;
    v_out dragonfly.checked_job;
begin
    -- 1. The envelope's own fields.
    if payload is null or pg_catalog.jsonb_typeof(payload) <> 'object' then
        raise exception using
            errcode = '22023',
            message = 'queue_job: payload must be a JSON object',
            hint = 'Send {"kind": ..., "idempotency_key": ..., "payload": {...}}.';
    end if;
    if payload - v_allowed_keys <> '{}'::jsonb then
        select pg_catalog.string_agg(enforcement_private.quoted_input(k), ', ' order by k)
          into v_unknown
          from (select k from pg_catalog.jsonb_object_keys(payload - v_allowed_keys) as k
                 order by k limit 5) as s;
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('queue_job: unknown field(s) %s', v_unknown),
            hint = 'Allowed fields: kind, idempotency_key, payload, delay_seconds, requested_by, tenant.';
    end if;

    -- 2. The kind, and the policy of the caller's level for it (one lookup).
    if pg_catalog.jsonb_typeof(payload -> 'kind') = 'string' then
        select k.kind, k.enabled, k.payload_fields, k.max_payload_bytes, k.max_depth,
               p.kind is not null, p.fields, p.max_delay_seconds, p.rate_per_minute,
               p.target_rate_per_hour
          into v_kind, v_enabled, v_shape, v_max_bytes, v_max_depth,
               v_allowed, v_fields, v_max_delay, v_rate, v_target_rate
          from dragonfly.job_kinds as k
          left join dragonfly.job_kind_policies as p on p.kind = k.kind and p.level = v_level
         where k.kind = payload ->> 'kind';
    end if;
    if v_kind is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'queue_job: kind must be one of %s (got %s)',
                (select pg_catalog.string_agg(k.kind, ', ' order by k.kind)
                   from dragonfly.job_kinds as k
                  where k.enabled),
                coalesce(pg_catalog.left((payload -> 'kind')::text, 100), 'nothing')
            );
    end if;
    if not v_enabled then
        raise exception using
            errcode = 'DF101',
            message = pg_catalog.format('queue_job: job kind %s is disabled', v_kind),
            hint = 'A disabled kind takes no new jobs (dragonfly.job_kinds.enabled is false).';
    end if;
    if not v_allowed or (v_level = 'public' and v_shape is null) then
        raise exception using
            errcode = '42501',
            message = pg_catalog.format('queue_job: %s callers may not enqueue %s jobs', v_level, v_kind);
    end if;

    -- 3. Size and nesting, before any field is looked at.
    v_size := pg_catalog.octet_length(payload::text);
    if v_size > v_max_bytes then
        raise exception using
            errcode = '54000',
            message = pg_catalog.format(
                'queue_job: %s jobs may be at most %s bytes of JSON (got %s)', v_kind, v_max_bytes, v_size
            );
    end if;
    if pg_catalog.jsonb_path_exists(payload, ('strict $.**{' || (v_max_depth + 1) || '}')::jsonpath) then
        raise exception using
            errcode = '54000',
            message = pg_catalog.format(
                'queue_job: %s jobs may nest objects and arrays at most %s deep', v_kind, v_max_depth
            );
    end if;

    if pg_catalog.jsonb_typeof(payload -> 'idempotency_key') is distinct from 'string'
       or pg_catalog.btrim(payload ->> 'idempotency_key') = '' then
        raise exception using
            errcode = '22023',
            message = 'queue_job: idempotency_key must be a non-empty string';
    end if;
    v_key := payload ->> 'idempotency_key';
    -- Public and operator keys get a namespace prefix below (24 and 44 characters); the
    -- record holds 255.
    v_key_max := case v_level when 'public' then 200 when 'operator' then 211 else 255 end;
    if pg_catalog.length(v_key) > v_key_max then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'queue_job: idempotency_key must be at most %s characters (got %s)',
                v_key_max, pg_catalog.length(v_key)
            );
    end if;

    v_job := coalesce(payload -> 'payload', '{}'::jsonb);
    if pg_catalog.jsonb_typeof(v_job) = 'null' then
        v_job := '{}'::jsonb;
    elsif pg_catalog.jsonb_typeof(v_job) <> 'object' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'queue_job: payload.payload must be a JSON object (got %s)',
                pg_catalog.jsonb_typeof(v_job)
            );
    end if;

    -- 4. The delay, who asked, and the tenant named.
    if pg_catalog.jsonb_typeof(payload -> 'delay_seconds') is null
       or pg_catalog.jsonb_typeof(payload -> 'delay_seconds') = 'null' then
        v_delay := 0;
    elsif pg_catalog.jsonb_typeof(payload -> 'delay_seconds') <> 'number' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'queue_job: delay_seconds must be an integer between 0 and %s', v_max_delay
            );
    else
        v_delay := (payload ->> 'delay_seconds')::numeric;
        if v_delay <> pg_catalog.trunc(v_delay) or v_delay < 0 or v_delay > v_max_delay then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'queue_job: delay_seconds must be an integer between 0 and %s for %s callers (got %s)',
                    v_max_delay, v_level, pg_catalog.left(payload ->> 'delay_seconds', 40)
                );
        end if;
    end if;

    if pg_catalog.jsonb_typeof(payload -> 'requested_by') is null
       or pg_catalog.jsonb_typeof(payload -> 'requested_by') = 'null' then
        v_requested_by := null;
    elsif pg_catalog.jsonb_typeof(payload -> 'requested_by') <> 'string'
          or pg_catalog.length(payload ->> 'requested_by') > 200 then
        raise exception using
            errcode = '22023',
            message = 'queue_job: requested_by must be a string of at most 200 characters';
    else
        v_requested_by := nullif(pg_catalog.btrim(payload ->> 'requested_by'), '');
    end if;

    if pg_catalog.jsonb_typeof(payload -> 'tenant') is not null
       and pg_catalog.jsonb_typeof(payload -> 'tenant') <> 'null' then
        if pg_catalog.jsonb_typeof(payload -> 'tenant') <> 'string'
           or (payload ->> 'tenant') !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'queue_job: tenant must be a tenant id (a uuid; got %s)',
                    enforcement_private.quoted_input(payload ->> 'tenant')
                );
        end if;
        v_named := (payload ->> 'tenant')::uuid;
    end if;

    -- 5. The payload against the kind's shape and this level's fields, and the job's tenant:
    --    its rows are looked for in the tenants the caller reaches (the one named, if any).
    --    The fleet, not narrowed, reaches every tenant and its keys are not namespaced: a
    --    repeat of its key is answered first, whatever the payload, as before tenants (the
    --    fleet's hot path). Everyone else's key depends on the tenant: checked first.
    if v_level = 'internal'
       and coalesce(pg_catalog.current_setting('dragonfly.acting_tenant', true), '') = '' then
        v_reach := null;  -- job_tenants_reached()'s answer, without the call: every tenant
    else
        v_reach := dragonfly.job_tenants_reached(v_level);
    end if;
    if v_level = 'internal' and v_reach is null then
        if v_key like 'public:%' then
            raise exception using
                errcode = '22023',
                message = 'queue_job: idempotency keys starting with "public:" are reserved for public callers';
        end if;
        select j.msg_id into v_msg_id
          from dragonfly.enqueued_jobs as j
         where j.kind = v_kind and j.idempotency_key = v_key;
        if v_msg_id > 0 then
            v_out.kind := v_kind;
            v_out.idempotency_key := v_key;
            v_out.payload := v_job;
            v_out.delay_seconds := v_delay::integer;
            v_out.msg_id := v_msg_id;
            v_out.requested_by := v_requested_by;
            return v_out;
        end if;
    end if;
    if v_shape is not null then
        v_scope := case
                       when v_named is null then v_reach
                       when v_reach is null or v_named = any (v_reach) then array[v_named]
                       else '{}'::uuid[]
                   end;
        -- An assignment, not a query: an error's context stays one short line.
        v_checked := dragonfly.check_job_payload(v_kind, v_shape, v_fields, v_level, v_job, v_scope);
        v_target := v_checked.target;
        v_tenant := v_checked.tenant;
    end if;
    if v_tenant is null then
        -- No row says where the job belongs.
        if v_named is not null then
            if (v_reach is not null and v_named <> all (v_reach))
               or not exists (select 1 from public.tenants as t where t.id = v_named) then
                raise exception using
                    errcode = '23503',
                    message = pg_catalog.format('queue_job: no tenant %s', v_named);
            end if;
            v_tenant := v_named;
        elsif v_level = 'internal' then
            v_tenant := tenancy.acting_tenant();  -- null: the job crosses tenants
        else
            v_reach := coalesce(
                v_reach, tenancy.caller_tenants(case when v_level = 'public' then 'read' else 'write' end)
            );
            if pg_catalog.cardinality(v_reach) <> 1 then
                raise exception using
                    errcode = '22023',
                    message = pg_catalog.format(
                        'queue_job: %s jobs that reference no row must name their tenant', v_kind
                    ),
                    hint = 'Add "tenant": "<tenant id>" to the job.';
            end if;
            v_tenant := v_reach[1];
        end if;
    end if;

    -- 6. The key's namespace; and a repeat of a key, in its namespace, gets its first answer
    --    (the first call was checked). No lock, no write. (The fleet's own was probed above.)
    if v_level = 'internal' and v_reach is null then
        v_msg_id := null;
    elsif v_level = 'public' then
        v_key := 'public:'
            || pg_catalog.left(
                   pg_catalog.md5(
                       (v_provenance ->> 'role') || '/' || coalesce(v_provenance ->> 'sub', '')
                       || '/' || v_tenant::text
                   ),
                   16
               )
            || ':' || v_key;
    elsif v_key like 'public:%' then
        raise exception using
            errcode = '22023',
            message = 'queue_job: idempotency keys starting with "public:" are reserved for public callers';
    elsif v_level = 'operator' then
        v_key := 'tenant:' || v_tenant::text || ':' || v_key;
    end if;
    if not (v_level = 'internal' and v_reach is null) then
        select j.msg_id into v_msg_id
          from dragonfly.enqueued_jobs as j
         where j.kind = v_kind and j.idempotency_key = v_key;
    end if;
    v_out.kind := v_kind;
    v_out.idempotency_key := v_key;
    v_out.payload := v_job;
    v_out.delay_seconds := v_delay::integer;
    v_out.tenant := v_tenant;
    if v_msg_id > 0 then
        v_out.msg_id := v_msg_id;
        v_out.requested_by := v_requested_by;
        return v_out;
    end if;

    -- Who asked, as an audit field records it; nobody named stays null (the provenance
    -- records the session either way).
    if v_requested_by is not null then
        v_requested_by := dragonfly.audit_actor(v_requested_by);
    end if;

    v_out.requested_by := v_requested_by;
    if v_rate is not null or v_target_rate is not null then
        v_out.limits := pg_catalog.jsonb_build_object(
            'rate_per_minute', v_rate, 'target_rate_per_hour', v_target_rate, 'target', v_target
        );
    end if;
    return v_out;
end;
$$;

comment on function dragonfly.check_queue_job(jsonb, jsonb) is
    'Checks one queue_job() envelope for the caller whose provenance is given: the envelope''s '
    'fields, the kind''s policy for the level, size and depth, the delay, the payload''s shape and '
    'the job''s tenant (its rows in tenants the caller reaches), and the key''s namespace. Raises '
    'what queue_job() raises (22023, DF101, 42501, 54000, 23503); returns a dragonfly.checked_job. '
    'Writes nothing. Internal to queue_job() and queue_jobs().';

create or replace function public.queue_job(payload jsonb)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_provenance jsonb := dragonfly.caller_provenance();
    v_job dragonfly.checked_job;
begin
    -- The envelope, the policy, size, delay, payload and tenant, namespace, repeat probe.
    v_job := dragonfly.check_queue_job(payload, v_provenance);
    if v_job.msg_id is not null then
        return v_job.msg_id;  -- a repeat of the key gets its first answer
    end if;
    -- Claim, count and send.
    return dragonfly.send_tenant_job(
        v_job.kind, v_job.idempotency_key, v_job.payload, v_job.delay_seconds, v_job.requested_by,
        v_provenance, v_job.limits, v_job.tenant
    );
end;
$$;

comment on function public.queue_job(jsonb) is
    'Enqueue a job: {"kind": a kind of dragonfly.job_kinds, "idempotency_key": text, '
    '"payload": {...}, "delay_seconds": integer, "requested_by": text, "tenant": uuid}, checked '
    'against the kind''s policy for the caller''s trust level and in the tenants the caller reaches '
    '(docs/security.md). Sends the envelope {kind, idempotency_key, payload, requested_by, '
    'provenance, tenant, enqueued_at} to the PGMQ queue named kind and returns its msg_id; the same '
    '(kind, idempotency_key) again, in the caller''s namespace, returns the first msg_id and sends '
    'nothing. 22023 invalid input; DF101 disabled kind; 42501 a kind or field the caller''s level may '
    'not use; 54000 too large or too deep; 23503 a referenced row that does not exist (or is in a '
    'tenant the caller does not reach); PT429 a rate limit (retry_after_seconds in the detail).';

-- ---------------------------------------------------------------------------------------
-- queue_jobs(): as in 20261202180000, with the job's tenant in each envelope and the
-- per-minute rate windows per tenant (check_queue_job() finds the tenant of each element).

create or replace function public.queue_jobs(jobs jsonb)
returns table (ordinality integer, msg_id bigint, sent boolean, sqlstate text, message text)
language plpgsql
volatile
security definer
set search_path = ''
set enable_seqscan = off
as $$
declare
    c_max_jobs constant integer := 1000;
    v_provenance jsonb := dragonfly.caller_provenance();
    v_level text := v_provenance ->> 'level';
    v_now timestamptz := pg_catalog.now();
    v_count integer;
    v_element jsonb;
    v_i integer;
    v_job dragonfly.checked_job;
    v_state text;
    v_message text;
    -- Per element, by ordinality: the outcome.
    r_msg_id bigint[];
    r_sent boolean[];
    r_state text[];
    r_message text[];
    -- The checked jobs with a key not enqueued yet, in order.
    n_ord integer[] := '{}';
    n_job dragonfly.checked_job[] := '{}';
    -- Rate limits: the scopes' counts (locked), walked in order.
    v_counts jsonb := '{}'::jsonb;
    v_fresh text[];
    v_scope text;
    v_tscope text;
    v_limits jsonb;
    v_retry integer;
    v_start timestamptz;
    v_send integer[] := '{}';
    v_first boolean[];
    v_group record;
    v_ids bigint[];
    v_lost record;
    v_winner bigint;
    v_minute_scopes text[];
begin
    if jobs is null or pg_catalog.jsonb_typeof(jobs) <> 'array' then
        raise exception using
            errcode = '22023',
            message = 'queue_jobs: jobs must be a JSON array of queue_job envelopes',
            hint = 'Send [{"kind": ..., "idempotency_key": ..., "payload": {...}}, ...].';
    end if;
    v_count := pg_catalog.jsonb_array_length(jobs);
    if v_count > c_max_jobs then
        raise exception using
            errcode = '54000',
            message = pg_catalog.format(
                'queue_jobs: at most %s jobs per call (got %s)', c_max_jobs, v_count
            ),
            hint = 'Split the jobs into several calls.';
    end if;
    if v_count = 0 then
        return;
    end if;
    r_msg_id := pg_catalog.array_fill(null::bigint, array[v_count]);
    r_sent := pg_catalog.array_fill(false, array[v_count]);
    r_state := pg_catalog.array_fill(null::text, array[v_count]);
    r_message := pg_catalog.array_fill(null::text, array[v_count]);

    -- 1. Each element through queue_job()'s door. A refusal is that element's outcome; the
    --    checks write nothing, so the block has nothing to undo.
    v_i := 0;
    for v_element in select e.value from pg_catalog.jsonb_array_elements(jobs) as e loop
        v_i := v_i + 1;
        begin
            v_job := dragonfly.check_queue_job(v_element, v_provenance);
        exception when others then
            get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
            r_state[v_i] := v_state;
            r_message[v_i] := v_message;
            continue;
        end;
        if v_job.msg_id is not null then
            r_msg_id[v_i] := v_job.msg_id;
        else
            n_ord := n_ord || v_i;
            n_job := n_job || v_job;
        end if;
    end loop;

    -- 2. A key twice in the array: the first element that passed its checks stands for both,
    --    and the later ones get its outcome at the end.
    select coalesce(pg_catalog.array_agg(d.ord order by d.ord), '{}')
      into v_send
      from (select n.ord,
                   pg_catalog.row_number() over (partition by n.kind, n.idempotency_key
                                                 order by n.ord) as nth
              from unnest(n_ord, n_job) as n(ord, kind, idempotency_key, payload, delay_seconds, requested_by, msg_id, limits, tenant)) as d
     where d.nth = 1;
    -- The same as a lookup by ordinality (the queries below test it per element).
    v_first := pg_catalog.array_fill(false, array[v_count]);
    foreach v_i in array v_send loop
        v_first[v_i] := true;
    end loop;

    -- 3. The rate limits, for the new keys only, element by element as queue_job() counts them:
    --    the scopes' windows are locked first (concurrent calls count one after another), the
    --    walk happens in memory, and each scope's count is written once.
    if exists (select 1 from unnest(n_job) as n where n.limits is not null) then
        select coalesce(pg_catalog.array_agg(distinct dragonfly.enqueue_rate_scope(v_level, n.kind, n.tenant)), '{}')
          into v_minute_scopes
          from unnest(n_job) as n
         where n.limits ->> 'rate_per_minute' is not null;
        with scopes as (
            select distinct dragonfly.enqueue_rate_scope(v_level, n.kind, n.tenant) as scope,
                   interval '1 minute' as win
              from unnest(n_job) as n
             where n.limits ->> 'rate_per_minute' is not null
            union
            select distinct v_level || ':' || n.kind || ':' || (n.limits ->> 'target'), interval '1 hour'
              from unnest(n_job) as n
             where n.limits ->> 'target_rate_per_hour' is not null and n.limits ->> 'target' is not null
        ), locked as (
            insert into dragonfly.enqueue_rate_windows as w (scope, window_start, jobs)
            select s.scope, pg_catalog.date_bin(s.win, v_now, timestamptz '2000-01-01 00:00:00+00'), 0
              from scopes as s
            on conflict (scope, window_start) do update set jobs = w.jobs
            returning w.scope, w.jobs, (w.xmax = 0) as fresh
        )
        select pg_catalog.jsonb_object_agg(l.scope, l.jobs),
               pg_catalog.array_agg(l.scope) filter (where l.fresh)
          into v_counts, v_fresh
          from locked as l;

        foreach v_i in array v_send loop
            v_job := n_job[pg_catalog.array_position(n_ord, v_i)];
            v_limits := v_job.limits;
            continue when v_limits is null;
            v_scope := dragonfly.enqueue_rate_scope(v_level, v_job.kind, v_job.tenant);
            v_tscope := case when v_limits ->> 'target_rate_per_hour' is not null
                              and v_limits ->> 'target' is not null
                             then v_level || ':' || v_job.kind || ':' || (v_limits ->> 'target') end;
            if v_limits ->> 'rate_per_minute' is not null
               and (v_counts ->> v_scope)::integer >= (v_limits ->> 'rate_per_minute')::integer then
                v_start := pg_catalog.date_bin(interval '1 minute', v_now, timestamptz '2000-01-01 00:00:00+00');
                v_retry := greatest(1, pg_catalog.ceil(extract(epoch from (v_start + interval '1 minute' - v_now)))::integer);
                r_state[v_i] := 'PT429';
                r_message[v_i] := pg_catalog.format(
                    'queue_job: rate limit reached: %s (%s per minute); retry in %s s',
                    pg_catalog.format('%s jobs from %s callers', v_job.kind, v_level),
                    v_limits ->> 'rate_per_minute', v_retry
                );
            elsif v_tscope is not null
                  and (v_counts ->> v_tscope)::integer >= (v_limits ->> 'target_rate_per_hour')::integer then
                v_start := pg_catalog.date_bin(interval '1 hour', v_now, timestamptz '2000-01-01 00:00:00+00');
                v_retry := greatest(1, pg_catalog.ceil(extract(epoch from (v_start + interval '1 hour' - v_now)))::integer);
                r_state[v_i] := 'PT429';
                r_message[v_i] := pg_catalog.format(
                    'queue_job: rate limit reached: %s (%s per hour); retry in %s s',
                    pg_catalog.format('%s jobs for %s from %s callers', v_job.kind, v_limits ->> 'target', v_level),
                    v_limits ->> 'target_rate_per_hour', v_retry
                );
            else
                if v_limits ->> 'rate_per_minute' is not null then
                    v_counts := v_counts || pg_catalog.jsonb_build_object(
                        v_scope, (v_counts ->> v_scope)::integer + 1);
                end if;
                if v_tscope is not null then
                    v_counts := v_counts || pg_catalog.jsonb_build_object(
                        v_tscope, (v_counts ->> v_tscope)::integer + 1);
                end if;
            end if;
        end loop;

        insert into dragonfly.enqueue_rate_windows as w (scope, window_start, jobs)
        select c.key,
               pg_catalog.date_bin(
                   case when c.key = any (v_minute_scopes)
                        then interval '1 minute' else interval '1 hour' end,
                   v_now, timestamptz '2000-01-01 00:00:00+00'),
               c.value::integer
          from pg_catalog.jsonb_each_text(v_counts) as c
        on conflict (scope, window_start) do update set jobs = excluded.jobs;
        -- A scope's earlier windows go when its next one opens, as count_enqueue() does.
        foreach v_scope in array coalesce(v_fresh, '{}') loop
            delete from dragonfly.enqueue_rate_windows as w
             where w.scope = v_scope
               and w.window_start < pg_catalog.date_bin(
                       case when v_scope = any (v_minute_scopes)
                            then interval '1 minute' else interval '1 hour' end,
                       v_now, timestamptz '2000-01-01 00:00:00+00');
        end loop;
    end if;

    -- 4. Send: one pgmq.send_batch() per (kind, delay), the envelopes as send_job() builds
    --    them. The ids come back in the order of the array (one sequence, one statement).
    for v_group in
        select n.kind as kind, n.delay_seconds as delay,
               pg_catalog.array_agg(n.ord order by n.ord) as ords,
               pg_catalog.array_agg(
                   pg_catalog.jsonb_build_object(
                       'kind', n.kind,
                       'idempotency_key', n.idempotency_key,
                       'payload', n.payload,
                       'requested_by', n.requested_by,
                       'provenance', v_provenance,
                       'tenant', n.tenant,
                       'enqueued_at',
                       pg_catalog.to_char(pg_catalog.timezone('UTC', v_now), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                   )
                   order by n.ord
               ) as msgs
          from unnest(n_ord, n_job) as n(ord, kind, idempotency_key, payload, delay_seconds, requested_by, msg_id, limits, tenant)
         where v_first[n.ord] and r_state[n.ord] is null
         group by n.kind, n.delay_seconds
    loop
        select pg_catalog.array_agg(s.id order by s.id)
          into v_ids
          from pgmq.send_batch(v_group.kind, v_group.msgs, v_group.delay) as s(id);
        for v_i in 1 .. pg_catalog.array_length(v_ids, 1) loop
            r_msg_id[v_group.ords[v_i]] := v_ids[v_i];
            r_sent[v_group.ords[v_i]] := true;
        end loop;
    end loop;

    -- 5. Claim the keys with their message ids, in one insert. A key that another transaction
    --    committed after the probe above loses: its message goes again and the element gets
    --    the first msg_id.
    for v_lost in
        with sent as (
            select n.ord, n.kind as kind, n.idempotency_key as key,
                   n.requested_by as requested_by, r_msg_id[n.ord] as id
              from unnest(n_ord, n_job) as n(ord, kind, idempotency_key, payload, delay_seconds, requested_by, msg_id, limits, tenant)
             where v_first[n.ord] and r_msg_id[n.ord] is not null
        ), claimed as (
            insert into dragonfly.enqueued_jobs as j (kind, idempotency_key, msg_id, enqueued_at, enqueued_by)
            select s.kind, s.key, s.id, v_now, s.requested_by from sent as s
            on conflict (kind, idempotency_key) do nothing
            returning j.kind, j.idempotency_key
        )
        select s.ord, s.kind, s.key, s.id
          from sent as s
         where not exists (select 1 from claimed as c where c.kind = s.kind and c.idempotency_key = s.key)
    loop
        perform pgmq.delete(v_lost.kind, v_lost.id);
        select j.msg_id into v_winner
          from dragonfly.enqueued_jobs as j
         where j.kind = v_lost.kind and j.idempotency_key = v_lost.key;
        if v_winner is null then
            r_msg_id[v_lost.ord] := null;
            r_state[v_lost.ord] := '40001';
            r_message[v_lost.ord] := pg_catalog.format(
                'queue_job: enqueue record for (%s, %s) changed concurrently; retry',
                v_lost.kind, enforcement_private.quoted_input(v_lost.key)
            );
        else
            r_msg_id[v_lost.ord] := v_winner;
        end if;
        r_sent[v_lost.ord] := false;
    end loop;

    -- 6. One row per element, in order; a repeated key's later elements share the outcome of
    --    its first (sent only for the first).
    return query
        select o.ord::integer,
               coalesce(r_msg_id[o.ord], r_msg_id[f.first_ord]),
               case when coalesce(r_msg_id[o.ord], r_msg_id[f.first_ord]) is not null
                    then r_sent[o.ord] end,
               coalesce(r_state[o.ord], case when r_msg_id[o.ord] is null then r_state[f.first_ord] end),
               coalesce(r_message[o.ord], case when r_msg_id[o.ord] is null then r_message[f.first_ord] end)
          from pg_catalog.generate_series(1, v_count) as o(ord)
          left join (
              select n.ord,
                     pg_catalog.first_value(n.ord) over (
                         partition by n.kind, n.idempotency_key order by n.ord
                     ) as first_ord
                from unnest(n_ord, n_job) as n(ord, kind, idempotency_key, payload, delay_seconds, requested_by, msg_id, limits, tenant)
          ) as f on f.ord = o.ord
         order by o.ord;
end;
$$;

comment on function public.queue_jobs(jsonb) is
    'Enqueue up to 1000 jobs: a JSON array of queue_job() envelopes, each checked as queue_job() '
    'checks it (its tenant included). One row per element, in order: (ordinality, msg_id, sent, null, '
    'null) for a job enqueued, sent true when this call sent its message and false for a key enqueued '
    'before or earlier in the array (its first msg_id); (ordinality, null, null, sqlstate, message) for '
    'one refused with what queue_job() would have raised. A refused element does not stop the others. '
    'New jobs are sent with one pgmq.send_batch() per kind and delay. 22023 when jobs is not an '
    'array; 54000 above 1000 elements. docs/rpc.md.';
