-- queue_job() and pgmq_metrics() read the job-kind registry (dragonfly.job_kinds, the
-- previous migration) instead of their own copies of the list of kinds.
--
-- queue_job() is otherwise unchanged (fields, validation, deduplication, error codes); the
-- kind check is one primary-key lookup, and it now refuses a disabled kind with DF101
-- (docs/rpc.md). The unknown-kind message lists the enabled kinds and echoes at most 100
-- characters of what was sent. pgmq_metrics() with no queue name reports every registered
-- kind's queue, in name order.

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
    v_enabled boolean;
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

    if pg_catalog.jsonb_typeof(payload -> 'kind') = 'string' then
        select k.enabled into v_enabled from dragonfly.job_kinds as k where k.kind = payload ->> 'kind';
    end if;
    if v_enabled is null then
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
    v_kind := payload ->> 'kind';
    if not v_enabled then
        raise exception using
            errcode = 'DF101',
            message = pg_catalog.format('queue_job: job kind %s is disabled', v_kind),
            hint = 'A disabled kind takes no new jobs (dragonfly.job_kinds.enabled is false).';
    end if;

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
    'Enqueue a job: {"kind": a kind of dragonfly.job_kinds, "idempotency_key": text, '
    '"payload": {...}, "delay_seconds": 0-86400, "requested_by": text}. Sends the envelope '
    '{kind, idempotency_key, payload, requested_by, enqueued_at} to the PGMQ queue named kind and '
    'returns its msg_id; the same (kind, idempotency_key) again returns the first msg_id and sends '
    'nothing. 22023 on invalid input; DF101 when the kind is disabled.';

revoke execute on function public.queue_job(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.queue_job(jsonb)
    to anon, authenticated, service_role, enforcement_operator, dragonfly_worker;

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

    for v_queue in
        select k.kind
          from dragonfly.job_kinds as k
         where pgmq_metrics.queue_name is null or k.kind = pgmq_metrics.queue_name
         order by k.kind
    loop
        return query
            select m.queue_name, m.queue_length, m.queue_visible_length, m.newest_msg_age_sec,
                   m.oldest_msg_age_sec, m.total_messages, m.scrape_time
              from pgmq.metrics(v_queue) as m;
    end loop;
end;
$$;

comment on function public.pgmq_metrics(text) is
    'Queue depth and age for one job queue, or for every registered kind''s queue when queue_name '
    'is null: length, '
    'visible length, newest and oldest message age in seconds, messages ever sent. Service role and '
    'fleet only; 22023 on an unknown queue.';

revoke execute on function public.pgmq_metrics(text) from public, anon, authenticated, service_role;
grant execute on function public.pgmq_metrics(text) to service_role, dragonfly_worker;
