-- queue_jobs(): many queue_job() envelopes in one call, set-based, through the check
-- queue_job() uses.
--
-- Why:
--   * queue_job() costs one round trip, one policy lookup, one claim, one send and one update
--     per job. Producers of many jobs (the SLA sweep, the demo, dragonfly enqueue --file) send
--     them as one array instead: each element is checked exactly as queue_job() checks it, then
--     the new ones are counted against the rate limits once per scope, sent with one
--     pgmq.send_batch() per (kind, delay) and claimed with one insert into enqueued_jobs.
--   * One element refused does not refuse the others: the result has one row per element, in
--     order, with its msg_id or the SQLSTATE and message queue_job() would have raised for it
--     (docs/rpc.md, "queue_jobs"). Only an argument that is not an array, or one longer than
--     1000 elements (54000), fails the whole call.
--   * Each element goes through dragonfly.check_queue_job(), the door queue_job() itself
--     uses (20261202170100_queue_job_policy.sql), so the two cannot drift apart; like check_queue_job and
--     send_job, queue_jobs runs with enable_seqscan off, so its key lookups use the primary key
--     whatever the table statistics say.
--
-- queue_jobs() claims after sending: the new messages are sent, then one insert ... on conflict
-- do nothing records their keys. A key another transaction committed after this one's probe
-- loses the insert; its message is deleted again before this transaction commits (no worker
-- can have seen it) and the element gets the other transaction's msg_id, as queue_job() would
-- have given it. The primary key still makes two concurrent enqueues of one key wait for each
-- other, so exactly one message survives.

create function public.queue_jobs(jobs jsonb)
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
              from unnest(n_ord, n_job) as n(ord, kind, idempotency_key, payload, delay_seconds, requested_by, msg_id, limits)) as d
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
        with scopes as (
            select distinct v_level || ':' || n.kind as scope, interval '1 minute' as win
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
            v_scope := v_level || ':' || v_job.kind;
            v_tscope := case when v_limits ->> 'target_rate_per_hour' is not null
                              and v_limits ->> 'target' is not null
                             then v_scope || ':' || (v_limits ->> 'target') end;
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
                   case when c.key = any (select v_level || ':' || n.kind from unnest(n_job) as n)
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
                       case when v_scope = any (select v_level || ':' || n.kind from unnest(n_job) as n)
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
                       'enqueued_at',
                       pg_catalog.to_char(pg_catalog.timezone('UTC', v_now), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                   )
                   order by n.ord
               ) as msgs
          from unnest(n_ord, n_job) as n(ord, kind, idempotency_key, payload, delay_seconds, requested_by, msg_id, limits)
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
              from unnest(n_ord, n_job) as n(ord, kind, idempotency_key, payload, delay_seconds, requested_by, msg_id, limits)
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
                from unnest(n_ord, n_job) as n(ord, kind, idempotency_key, payload, delay_seconds, requested_by, msg_id, limits)
          ) as f on f.ord = o.ord
         order by o.ord;
end;
$$;

comment on function public.queue_jobs(jsonb) is
    'Enqueue up to 1000 jobs: a JSON array of queue_job() envelopes, each checked as queue_job() '
    'checks it. One row per element, in order: (ordinality, msg_id, sent, null, null) for a job '
    'enqueued, sent true when this call sent its message and false for a key enqueued before or '
    'earlier in the array (its first msg_id); (ordinality, null, null, sqlstate, message) for one '
    'refused with what queue_job() would have raised. A refused element does not stop the others. '
    'New jobs are sent with one pgmq.send_batch() per kind and delay. 22023 when jobs is not an '
    'array; 54000 above 1000 elements. docs/rpc.md.';

-- Not granted to anon or authenticated: the spec's public surface is three RPCs, and a bulk
-- call would let one request make the server check a thousand envelopes. Public callers
-- enqueue one job at a time through queue_job().
revoke execute on function public.queue_jobs(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.queue_jobs(jsonb)
    to service_role, enforcement_operator, dragonfly_worker;
