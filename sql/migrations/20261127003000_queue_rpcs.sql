-- The job-queue RPCs: queue_job() (the one way to enqueue) and the PGMQ wrappers the
-- fleet and on-call use to read, acknowledge, archive, delay and inspect messages.
--
-- Why RPCs and not direct PGMQ calls:
--   * queue_job() validates the envelope before anything is written and deduplicates on
--     (kind, idempotency_key) through dragonfly.enqueued_jobs, so an Ops Console button
--     pressed twice, a retried HTTP call or a replayed worker all produce one message;
--   * the wrappers are SECURITY DEFINER, so neither service_role nor the fleet's own role
--     (dragonfly_worker) needs any right on the pgmq schema or its q_/a_ tables, and they
--     only ever touch the four job queues. They follow the names and rights of Supabase's
--     pgmq_public functions, minus send/send_batch: enqueueing goes through queue_job().
--
-- dragonfly.enqueued_jobs is created by the worker-runtime migration, which runs after this
-- file; PL/pgSQL bodies are resolved when first called, so the order does not matter.
--
-- Errors: 22023 (invalid_parameter_value) for any invalid argument, the message naming the
-- field. docs/rpc.md lists every code.

create or replace function public.queue_job(payload jsonb)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_allowed_keys constant text[] :=
        array['kind', 'idempotency_key', 'payload', 'delay_seconds', 'requested_by'];
    v_kinds constant text[] := array['enrich', 'outreach', 'enforce', 'case_copilot'];
    v_unknown text;
    v_kind text;
    v_key text;
    v_job jsonb;
    v_delay numeric;
    v_requested_by text;
    v_now timestamptz := pg_catalog.now();
    v_inserted integer;
    v_msg_id bigint;
begin
    -- 1. Validate everything before writing anything.
    if payload is null or pg_catalog.jsonb_typeof(payload) <> 'object' then
        raise exception using
            errcode = '22023',
            message = 'queue_job: payload must be a JSON object',
            hint = 'Send {"kind": ..., "idempotency_key": ..., "payload": {...}}.';
    end if;

    select pg_catalog.string_agg(k, ', ' order by k)
      into v_unknown
      from pg_catalog.jsonb_object_keys(payload) as k
     where k <> all (v_allowed_keys);
    if v_unknown is not null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('queue_job: unknown field(s) %s', v_unknown),
            hint = 'Allowed fields: kind, idempotency_key, payload, delay_seconds, requested_by.';
    end if;

    if pg_catalog.jsonb_typeof(payload -> 'kind') is distinct from 'string'
       or (payload ->> 'kind') <> all (v_kinds) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'queue_job: kind must be one of enrich, outreach, enforce, case_copilot (got %s)',
                coalesce((payload -> 'kind')::text, 'nothing')
            );
    end if;
    v_kind := payload ->> 'kind';

    if pg_catalog.jsonb_typeof(payload -> 'idempotency_key') is distinct from 'string'
       or pg_catalog.btrim(payload ->> 'idempotency_key') = '' then
        raise exception using
            errcode = '22023',
            message = 'queue_job: idempotency_key must be a non-empty string';
    end if;
    v_key := payload ->> 'idempotency_key';
    if pg_catalog.length(v_key) > 255 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'queue_job: idempotency_key must be at most 255 characters (got %s)',
                pg_catalog.length(v_key)
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

    if pg_catalog.jsonb_typeof(payload -> 'delay_seconds') is null
       or pg_catalog.jsonb_typeof(payload -> 'delay_seconds') = 'null' then
        v_delay := 0;
    elsif pg_catalog.jsonb_typeof(payload -> 'delay_seconds') <> 'number' then
        raise exception using
            errcode = '22023',
            message = 'queue_job: delay_seconds must be an integer between 0 and 86400';
    else
        v_delay := (payload ->> 'delay_seconds')::numeric;
        if v_delay <> pg_catalog.trunc(v_delay) or v_delay < 0 or v_delay > 86400 then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'queue_job: delay_seconds must be an integer between 0 and 86400 (got %s)',
                    payload ->> 'delay_seconds'
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

    -- 2. Claim the key. The primary key makes a concurrent enqueue of the same key wait
    --    until this transaction ends; it then finds the row (committed) or inserts its own
    --    (this one rolled back). msg_id 0 is a placeholder no other transaction can see.
    insert into dragonfly.enqueued_jobs (kind, idempotency_key, msg_id, enqueued_at, enqueued_by)
    values (v_kind, v_key, 0, v_now, v_requested_by)
    on conflict (kind, idempotency_key) do nothing;
    get diagnostics v_inserted = row_count;

    if v_inserted = 0 then
        select j.msg_id
          into v_msg_id
          from dragonfly.enqueued_jobs as j
         where j.kind = v_kind and j.idempotency_key = v_key;
        if v_msg_id is null then
            -- The record was pruned between our insert attempt and this read.
            raise exception using
                errcode = '40001',
                message = pg_catalog.format(
                    'queue_job: enqueue record for (%s, %s) changed concurrently; retry',
                    v_kind, v_key
                );
        end if;
        return v_msg_id;
    end if;

    -- 3. First time for this key: send, then record the message id.
    select pgmq.send(
        v_kind,
        pg_catalog.jsonb_build_object(
            'kind', v_kind,
            'idempotency_key', v_key,
            'payload', v_job,
            'requested_by', v_requested_by,
            'enqueued_at',
            pg_catalog.to_char(pg_catalog.timezone('UTC', v_now), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        ),
        v_delay::integer
    )
      into v_msg_id;

    update dragonfly.enqueued_jobs as j
       set msg_id = v_msg_id
     where j.kind = v_kind and j.idempotency_key = v_key;

    return v_msg_id;
end;
$$;

comment on function public.queue_job(jsonb) is
    'Enqueue a job: {"kind": enrich|outreach|enforce|case_copilot, "idempotency_key": text, '
    '"payload": {...}, "delay_seconds": 0-86400, "requested_by": text}. Sends the envelope '
    '{kind, idempotency_key, payload, requested_by, enqueued_at} to the PGMQ queue named kind and '
    'returns its msg_id; the same (kind, idempotency_key) again returns the first msg_id and sends '
    'nothing. 22023 on invalid input.';

revoke execute on function public.queue_job(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.queue_job(jsonb)
    to anon, authenticated, service_role, enforcement_operator, dragonfly_worker;

-- The job queues, named once: every function taking a queue name checks it here. The
-- dragonfly schema (the fleet's internals, never exposed over the API) is created here for
-- it; the worker-runtime migration documents and grants it.
create schema if not exists dragonfly;

create function dragonfly.check_job_queue(p_what text, p_queue text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
    if p_queue is null or p_queue <> all (array['enrich', 'outreach', 'enforce', 'case_copilot']) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s must be one of enrich, outreach, enforce, case_copilot (got %s)',
                p_what,
                coalesce(pg_catalog.quote_literal(p_queue), 'null')
            );
    end if;
end
$$;

comment on function dragonfly.check_job_queue(text, text) is
    'Internal: 22023 "<p_what> must be one of enrich, outreach, enforce, case_copilot (got ...)" '
    'unless p_queue names one of the four job queues.';

revoke execute on function dragonfly.check_job_queue(text, text) from public;

-- The PGMQ wrappers. Only service_role and the fleet (dragonfly_worker) may call them.

create or replace function public.pgmq_read(queue_name text, sleep_seconds integer, n integer)
returns table (
    msg_id bigint,
    read_ct integer,
    enqueued_at timestamptz,
    last_read_at timestamptz,
    vt timestamptz,
    message jsonb,
    headers jsonb
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    perform dragonfly.check_job_queue('pgmq_read: queue_name', queue_name);
    if sleep_seconds is null or sleep_seconds < 0 or sleep_seconds > 86400 then
        raise exception using
            errcode = '22023',
            message = 'pgmq_read: sleep_seconds (visibility timeout) must be between 0 and 86400';
    end if;
    if n is null or n < 1 or n > 1000 then
        raise exception using
            errcode = '22023',
            message = 'pgmq_read: n must be between 1 and 1000';
    end if;

    return query
        select r.msg_id, r.read_ct, r.enqueued_at, r.last_read_at, r.vt, r.message, r.headers
          from pgmq.read(queue_name, sleep_seconds, n) as r;
end;
$$;

comment on function public.pgmq_read(text, integer, integer) is
    'Read up to n messages from a job queue, hiding them for sleep_seconds (the visibility '
    'timeout, as in Supabase''s pgmq_public.read). Locked rows are skipped, so consumers never '
    'share a message. Service role and fleet only; 22023 on an unknown queue or bad bounds.';

revoke execute on function public.pgmq_read(text, integer, integer)
    from public, anon, authenticated, service_role;
grant execute on function public.pgmq_read(text, integer, integer) to service_role, dragonfly_worker;

create or replace function public.pgmq_delete(queue_name text, msg_id bigint)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    perform dragonfly.check_job_queue('pgmq_delete: queue_name', queue_name);
    if msg_id is null then
        raise exception using errcode = '22023', message = 'pgmq_delete: msg_id is required';
    end if;

    return pgmq.delete(queue_name, msg_id);
end;
$$;

comment on function public.pgmq_delete(text, bigint) is
    'Acknowledge a job: delete message msg_id from a job queue. True when it existed. Workers call it '
    'in the same transaction as the job''s effects (it replaces the retired ack_job). Service role '
    'and fleet only; 22023 on an unknown queue.';

revoke execute on function public.pgmq_delete(text, bigint)
    from public, anon, authenticated, service_role;
grant execute on function public.pgmq_delete(text, bigint) to service_role, dragonfly_worker;

create or replace function public.pgmq_archive(queue_name text, msg_id bigint)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    perform dragonfly.check_job_queue('pgmq_archive: queue_name', queue_name);
    if msg_id is null then
        raise exception using errcode = '22023', message = 'pgmq_archive: msg_id is required';
    end if;

    return pgmq.archive(queue_name, msg_id);
end;
$$;

comment on function public.pgmq_archive(text, bigint) is
    'Move message msg_id from a job queue to its archive table (pgmq.a_<queue>). True when it '
    'existed. Service role and fleet only; 22023 on an unknown queue.';

revoke execute on function public.pgmq_archive(text, bigint)
    from public, anon, authenticated, service_role;
grant execute on function public.pgmq_archive(text, bigint) to service_role, dragonfly_worker;

create or replace function public.pgmq_set_vt(queue_name text, msg_id bigint, vt_offset integer)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_found bigint;
begin
    perform dragonfly.check_job_queue('pgmq_set_vt: queue_name', queue_name);
    if msg_id is null then
        raise exception using errcode = '22023', message = 'pgmq_set_vt: msg_id is required';
    end if;
    if vt_offset is null or vt_offset < 0 or vt_offset > 604800 then
        raise exception using
            errcode = '22023',
            message = 'pgmq_set_vt: vt_offset must be between 0 and 604800 seconds';
    end if;

    select r.msg_id into v_found from pgmq.set_vt(queue_name, msg_id, vt_offset) as r;
    return v_found is not null;
end;
$$;

comment on function public.pgmq_set_vt(text, bigint, integer) is
    'Make message msg_id visible again vt_offset seconds from now (0 = immediately): the worker''s '
    'retry backoff. True when the message exists. Service role and fleet only; 22023 on bad input.';

revoke execute on function public.pgmq_set_vt(text, bigint, integer)
    from public, anon, authenticated, service_role;
grant execute on function public.pgmq_set_vt(text, bigint, integer) to service_role, dragonfly_worker;

create or replace function public.pgmq_metrics(queue_name text default null)
returns table (
    queue text,
    queue_length bigint,
    queue_visible_length bigint,
    newest_msg_age_sec integer,
    oldest_msg_age_sec integer,
    total_messages bigint,
    scrape_time timestamptz
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_queue text;
begin
    if queue_name is not null then
        perform dragonfly.check_job_queue('pgmq_metrics: queue_name', queue_name);
    end if;

    foreach v_queue in array array['enrich', 'outreach', 'enforce', 'case_copilot'] loop
        continue when queue_name is not null and v_queue <> queue_name;
        return query
            select m.queue_name, m.queue_length, m.queue_visible_length, m.newest_msg_age_sec,
                   m.oldest_msg_age_sec, m.total_messages, m.scrape_time
              from pgmq.metrics(v_queue) as m;
    end loop;
end;
$$;

comment on function public.pgmq_metrics(text) is
    'Queue depth and age for one job queue, or for all four when queue_name is null: length, '
    'visible length, newest and oldest message age in seconds, messages ever sent. Service role and '
    'fleet only; 22023 on an unknown queue.';

revoke execute on function public.pgmq_metrics(text) from public, anon, authenticated, service_role;
grant execute on function public.pgmq_metrics(text) to service_role, dragonfly_worker;
