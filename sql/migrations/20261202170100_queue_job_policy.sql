-- queue_job() enforces the job-kind policy (previous migration) and records provenance.
--
-- At the door, in this order, before anything is written:
--   1. the envelope's own fields (as before: kind, idempotency_key, payload, delay_seconds,
--      requested_by; 22023);
--   2. the kind: unknown 22023, disabled DF101, not enqueueable at the caller's trust level
--      42501;
--   3. size and nesting of the whole argument: 54000 above the kind's limits;
--   4. the delay: at most the level's max_delay_seconds (22023);
--   5. the payload against the kind's shape: unknown fields and bad values 22023, a field the
--      level may not set 42501, a referenced row that does not exist 23503;
--   6. the key: public callers' keys live in a namespace of their own identity
--      ("public:<hash of role and sub>:<key>"); the prefix "public:" is refused from anyone
--      else, so a public key can neither take nor reveal a key of the fleet's;
--   7. the rate limits, for new jobs only (a repeat of a key is free): per (level, kind) per
--      calendar minute and per (level, kind, target row) per calendar hour; PT429 (HTTP 429
--      through PostgREST) with the seconds until the window ends in the message and detail.
-- The envelope sent to the queue carries "provenance": {level, role, sub, email}, taken from
-- the session, never from the payload; requested_by is recorded through audit_actor().
--
-- Steps 1 to 6 are dragonfly.check_queue_job(), which queue_jobs() shares; dragonfly.send_job()
-- is the claim-and-send half, also for RPCs that build a job themselves (request_case_copilot,
-- next migration) and have validated it already.
--
-- Both look keys up in dragonfly.enqueued_jobs and run with enable_seqscan off: after ANALYZE
-- of an empty table (reltuples 0) the planner costs a sequential scan at zero, and PL/pgSQL's
-- cached generic plan kept scanning the whole table as it grew (enqueue fell from about 2,200
-- to 1,200 jobs/s within 5,000 calls). A function-level setting: nothing outside them changes.

create unlogged table dragonfly.enqueue_rate_windows (
    scope text not null,
    window_start timestamptz not null,
    jobs integer not null,
    primary key (scope, window_start)
);

comment on table dragonfly.enqueue_rate_windows is
    'Counters of new jobs per rate-limit scope ("<level>:<kind>" per minute, '
    '"<level>:<kind>:<target>" per hour) and window. Unlogged: after a crash the counts start '
    'again from zero, which only forgives one window. A scope''s earlier windows are deleted when '
    'its next window opens; dragonfly.prune_enqueue_rate_windows() removes scopes gone quiet.';

alter table dragonfly.enqueue_rate_windows enable row level security;
revoke all on dragonfly.enqueue_rate_windows from public;
grant select on dragonfly.enqueue_rate_windows to service_role;

-- Counts one new job in a scope's current window; PT429 when that makes it more than the limit
-- (the raise rolls the count back, so refused calls do not use up the window).
create function dragonfly.count_enqueue(p_scope text, p_window interval, p_limit integer, p_what text)
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
    -- The transaction's time: one call is one transaction, and all of a transaction's
    -- enqueues count in one window.
    v_now timestamptz := pg_catalog.now();
    v_start timestamptz;
    v_jobs integer;
    v_fresh boolean;
    v_retry integer;
begin
    v_start := pg_catalog.date_bin(p_window, v_now, timestamptz '2000-01-01 00:00:00+00');
    insert into dragonfly.enqueue_rate_windows as w (scope, window_start, jobs)
    values (p_scope, v_start, 1)
    on conflict (scope, window_start) do update set jobs = w.jobs + 1
    returning w.jobs, (w.xmax = 0) into v_jobs, v_fresh;
    if v_fresh then
        delete from dragonfly.enqueue_rate_windows as w
         where w.scope = p_scope and w.window_start < v_start;
    end if;
    if v_jobs > p_limit then
        v_retry := greatest(1, pg_catalog.ceil(extract(epoch from (v_start + p_window - v_now)))::integer);
        raise exception using
            errcode = 'PT429',
            message = pg_catalog.format(
                'queue_job: rate limit reached: %s (%s per %s); retry in %s s',
                p_what, p_limit, case when p_window = interval '1 minute' then 'minute' else 'hour' end,
                v_retry
            ),
            detail = pg_catalog.format('retry_after_seconds=%s', v_retry),
            hint = 'Wait for the window to end; a repeat of an enqueued key is not counted.';
    end if;
end;
$$;

comment on function dragonfly.count_enqueue(text, interval, integer, text) is
    'Counts one new job in the scope''s current window (date_bin of p_window); PT429 with '
    'retry_after_seconds when it exceeds p_limit. Internal to queue_job().';

revoke execute on function dragonfly.count_enqueue(text, interval, integer, text) from public;

-- The scheduler's retention task (a member of dragonfly_worker, with no right on the table)
-- calls it, so it runs with its owner's rights; it must then not be a way to reset the rate
-- limits, so it deletes only windows that are over (the longest window is an hour).
create function dragonfly.prune_enqueue_rate_windows(p_older interval default interval '2 hours')
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_deleted integer;
begin
    if p_older is null or p_older < interval '1 hour' then
        raise exception using
            errcode = '22023',
            message = 'prune_enqueue_rate_windows: p_older must be at least 1 hour (the longest window)';
    end if;
    delete from dragonfly.enqueue_rate_windows as w
     where w.window_start < pg_catalog.now() - p_older;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end
$$;

comment on function dragonfly.prune_enqueue_rate_windows(interval) is
    'Deletes rate-limit windows that started more than p_older ago (at least 1 hour, else 22023: '
    'such windows are over; their scopes went quiet); returns how many. Run by the scheduler''s '
    'retention task every run.';

revoke execute on function dragonfly.prune_enqueue_rate_windows(interval) from public;
grant execute on function dragonfly.prune_enqueue_rate_windows(interval) to service_role, dragonfly_worker;

-- Whether a referenced row exists. Static statements (one plan each) rather than dynamic SQL.
create function dragonfly.job_reference_exists(p_reference text, p_value text)
returns boolean
language plpgsql
stable
set search_path = ''
as $$
begin
    case p_reference
        when 'court_case' then
            return exists (select 1 from judgments.cases as c where c.id = p_value::uuid);
        when 'enforcement_case' then
            return exists (select 1 from public.enforcement_cases as c where c.id = p_value::uuid);
        when 'plaintiff' then
            return exists (select 1 from public.plaintiffs as p where p.id = p_value::uuid);
        when 'judgment' then
            return exists (select 1 from public.judgments as j where j.id = p_value::uuid);
        when 'outreach_campaign' then
            return exists (
                select 1 from public.outreach_campaigns as c where c.name = p_value and c.active
            );
        else
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('job_reference_exists: unknown reference %s', p_reference);
    end case;
end;
$$;

comment on function dragonfly.job_reference_exists(text, text) is
    'Whether the row a job payload field references exists: court_case, enforcement_case, '
    'plaintiff, judgment (by uuid) or outreach_campaign (an active one, by name). Internal.';

revoke execute on function dragonfly.job_reference_exists(text, text) from public;

-- The payload of one job against its kind's shape and the caller level's fields. Returns the
-- target row's id (the field marked target), for the per-target rate limit.
create function dragonfly.check_job_payload(
    p_kind text,
    p_shape jsonb,
    p_allowed text[],
    p_level text,
    p_job jsonb
)
returns text
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
    v_target text;
    v_missing text;
    v_required jsonb;
    v_required_seen integer := 0;
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

        if v_spec ? 'references'
           and (not v_spec ? 'reference_levels' or (v_spec -> 'reference_levels') ? p_level)
           and not dragonfly.job_reference_exists(v_spec ->> 'references', v_text) then
            raise exception using
                errcode = '23503',
                message = pg_catalog.format(
                    'queue_job: payload.%s: no %s %s', v_field,
                    pg_catalog.replace(v_spec ->> 'references', '_', ' '),
                    enforcement_private.quoted_input(v_text)
                );
        end if;
        if (v_spec ->> 'target')::boolean then
            v_target := v_text;
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
    return v_target;
end;
$$;

comment on function dragonfly.check_job_payload(text, jsonb, text[], text, jsonb) is
    'Checks a job payload against its kind''s shape (dragonfly.job_kinds.payload_fields) and the '
    'fields the caller''s level may set: 22023 unknown field, bad value or missing required field; '
    '42501 a field the level may not set; 23503 a referenced row that does not exist. Returns the '
    'target field''s value. Internal to queue_job().';

revoke execute on function dragonfly.check_job_payload(text, jsonb, text[], text, jsonb) from public;

-- The session's provenance, as the envelope records it.
create function dragonfly.caller_provenance()
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
    return pg_catalog.jsonb_build_object(
               'level', dragonfly.caller_trust_level(),
               'role', dragonfly.caller_role()
           ) || dragonfly.caller_jwt_identity();
end;
$$;

comment on function dragonfly.caller_provenance() is
    'The provenance a job envelope records: {level, role, sub, email} of the session. Internal.';

revoke execute on function dragonfly.caller_provenance() from public;

-- Claim a key and send: the half of queue_job() after validation. The primary key makes a
-- concurrent enqueue of the same key wait until this transaction ends; it then finds the row
-- (committed) or inserts its own (this one rolled back). msg_id 0 is a placeholder no other
-- transaction can see. p_counted runs the rate limits, only when the key is new.
create function dragonfly.send_job(
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
            (p_provenance ->> 'level') || ':' || p_kind, interval '1 minute',
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

comment on function dragonfly.send_job(text, text, jsonb, integer, text, jsonb, jsonb) is
    'Claims (kind, key) in dragonfly.enqueued_jobs and sends the envelope {kind, idempotency_key, '
    'payload, requested_by, provenance, enqueued_at} with p_delay seconds; a known key returns its '
    'first msg_id and sends nothing. p_limits {rate_per_minute, target_rate_per_hour, target} are '
    'counted for new keys only (PT429). The caller has validated everything. Internal.';

revoke execute on function dragonfly.send_job(text, text, jsonb, integer, text, jsonb, jsonb) from public;

create type dragonfly.checked_job as (
    kind text,
    idempotency_key text,
    payload jsonb,
    delay_seconds integer,
    requested_by text,
    msg_id bigint,
    limits jsonb
);

comment on type dragonfly.checked_job is
    'One queue_job() envelope after dragonfly.check_queue_job(): the kind, the key (in the '
    'caller''s namespace), the payload, delay and requested_by to send; msg_id is set when the key '
    'was enqueued already (nothing to send); limits {rate_per_minute, target_rate_per_hour, '
    'target} when the caller''s level has rate limits for the kind. Internal.';

-- The door of queue_job() (steps 1 to 6 of this header), shared with queue_jobs().
create function dragonfly.check_queue_job(payload jsonb, p_provenance jsonb)
returns dragonfly.checked_job
language plpgsql
stable
set search_path = ''
set enable_seqscan = off
as $$
declare
    v_allowed_keys constant text[] :=
        array['kind', 'idempotency_key', 'payload', 'delay_seconds', 'requested_by'];
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
            hint = 'Allowed fields: kind, idempotency_key, payload, delay_seconds, requested_by.';
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
    -- A public key gets a 24-character namespace prefix below; the record holds 255.
    v_key_max := case when v_level = 'public' then 200 else 255 end;
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

    -- 4. The delay, and who asked.
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

    -- 5. The key's namespace; and a repeat of a key gets its first answer, whatever the
    --    payload (as it always has: the first call was checked). No lock, no write.
    if v_level = 'public' then
        v_key := 'public:'
            || pg_catalog.left(
                   pg_catalog.md5((v_provenance ->> 'role') || '/' || coalesce(v_provenance ->> 'sub', '')),
                   16
               )
            || ':' || v_key;
    elsif v_key like 'public:%' then
        raise exception using
            errcode = '22023',
            message = 'queue_job: idempotency keys starting with "public:" are reserved for public callers';
    end if;
    select j.msg_id into v_msg_id
      from dragonfly.enqueued_jobs as j
     where j.kind = v_kind and j.idempotency_key = v_key;
    v_out.kind := v_kind;
    v_out.idempotency_key := v_key;
    v_out.payload := v_job;
    v_out.delay_seconds := v_delay::integer;
    if v_msg_id > 0 then
        v_out.msg_id := v_msg_id;
        v_out.requested_by := v_requested_by;
        return v_out;
    end if;

    -- 6. A new key: the payload against the kind's shape and this level's fields.
    if v_shape is not null then
        v_target := dragonfly.check_job_payload(v_kind, v_shape, v_fields, v_level, v_job);
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
    'fields, the kind''s policy for the level, size and depth, the delay, the key''s namespace and, '
    'for a key not enqueued yet, the payload''s shape. Raises what queue_job() raises (22023, '
    'DF101, 42501, 54000, 23503); returns a dragonfly.checked_job. Writes nothing. Internal to '
    'queue_job() and queue_jobs().';

revoke execute on function dragonfly.check_queue_job(jsonb, jsonb) from public;

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
    -- Steps 1 to 6: the envelope, the policy, size, delay, namespace, repeat probe, payload.
    v_job := dragonfly.check_queue_job(payload, v_provenance);
    if v_job.msg_id is not null then
        return v_job.msg_id;  -- a repeat of the key gets its first answer
    end if;
    -- 7. Claim, count and send.
    return dragonfly.send_job(
        v_job.kind, v_job.idempotency_key, v_job.payload, v_job.delay_seconds, v_job.requested_by,
        v_provenance, v_job.limits
    );
end;
$$;

comment on function public.queue_job(jsonb) is
    'Enqueue a job: {"kind": a kind of dragonfly.job_kinds, "idempotency_key": text, '
    '"payload": {...}, "delay_seconds": integer, "requested_by": text}, checked against the kind''s '
    'policy for the caller''s trust level (docs/security.md). Sends the envelope {kind, '
    'idempotency_key, payload, requested_by, provenance, enqueued_at} to the PGMQ queue named kind '
    'and returns its msg_id; the same (kind, idempotency_key) again returns the first msg_id and '
    'sends nothing. 22023 invalid input; DF101 disabled kind; 42501 a kind or field the caller''s '
    'level may not use; 54000 too large or too deep; 23503 a referenced row that does not exist; '
    'PT429 a rate limit (retry_after_seconds in the detail).';
