-- The consumer's runtime functions: claim a batch, complete it, retry, release and
-- dead-letter its messages -- every write the worker loop makes to a live queue.
--
-- Why functions: the loop's SQL lives in the database, named and reviewed in one
-- place, instead of as strings in Python; and SECURITY DEFINER lets the fleet's role
-- (dragonfly_worker) act on pgmq.q_<queue> without any right on the pgmq schema.
-- Messages are read with public.pgmq_read() (the queue RPC migration).
--
-- The fence. PGMQ's read increments read_ct, so (msg_id, read_ct) names one delivery
-- of a message. Every function here takes the read_ct the worker saw and touches a
-- message only while it still equals the row's: a worker whose visibility timeout ran
-- out and whose message was read again by another worker finds its delivery gone, and
-- its delete, retry or dead letter is refused (SQLSTATE DF100, see below) instead of
-- acting over the new owner. claim_jobs() also locks the rows it returns (FOR UPDATE)
-- until the job transaction ends; pgmq.read() skips locked rows (SKIP LOCKED), so a
-- claimed message cannot be read again while its job runs, however long it runs.
--
-- Error codes (docs/worker-runtime.md):
--   22023  invalid_parameter_value  unknown queue, mismatched array lengths, bad reason.
--   DF100  delivery lost            the message is gone or was read again since this
--                                   worker read it (its read_ct moved on): the worker no
--                                   longer owns it and must not act on it.

-- Internal: the queue's table name, for the four job queues only. Checking the name
-- against the fixed list before it is formatted into any statement keeps every
-- dynamic query below on a pgmq.q_ table of ours.
create function dragonfly.job_queue_table(p_queue text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
    perform dragonfly.check_job_queue('queue', p_queue);
    return 'q_' || p_queue;
end
$$;

comment on function dragonfly.job_queue_table(text) is
    'Internal: the PGMQ table (q_<queue>) of one of the four job queues; 22023 for any other name.';

revoke execute on function dragonfly.job_queue_table(text) from public;

-- Internal: one delivery per (msg_id, read_ct) pair, arrays of equal length.
create function dragonfly.check_deliveries(p_fn text, p_msg_ids bigint[], p_read_cts integer[])
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
    if p_msg_ids is null or p_read_cts is null
       or pg_catalog.cardinality(p_msg_ids) <> pg_catalog.cardinality(p_read_cts) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: msg_ids and read_cts must be arrays of equal length', p_fn);
    end if;
end
$$;

comment on function dragonfly.check_deliveries(text, bigint[], integer[]) is
    'Internal: 22023 unless msg_ids and read_cts are non-null arrays of equal length.';

revoke execute on function dragonfly.check_deliveries(text, bigint[], integer[]) from public;

-- Start of a job transaction. Locks the deliveries that are still current and returns a
-- row for each one NOT to run: 'lost' (read again by someone else, or deleted: leave it
-- alone) or 'done' (its (kind, idempotency_key) already has a completed-job record:
-- acknowledge it without running it again). Every delivery without a row is owned:
-- locked for this transaction, to be run. A job's kind is its queue's name; its key is
-- read from the message itself.
create function dragonfly.claim_jobs(p_queue text, p_msg_ids bigint[], p_read_cts integer[])
returns table (msg_id bigint, state text)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
begin
    perform dragonfly.check_deliveries('claim_jobs', p_msg_ids, p_read_cts);
    -- 1. Lock. FOR UPDATE waits for a row another transaction holds: a concurrent
    --    pgmq.read() keeps rows it looked at and skipped locked until it commits
    --    (milliseconds), and skipping them here would leave them unrun until their
    --    visibility timeout. After the wait the read_ct comparison is made again on the
    --    row as it is then. Rows are locked in msg_id order; msg_id = any() keeps the
    --    lookup on the primary key.
    -- 2. Then, in a separate statement (a join against the locking query is planned as a
    --    nested loop over it), one probe of completed_jobs' primary key per locked row
    --    (LATERAL ... LIMIT 1). Both are EXECUTEd, so planned afresh on every call: a plan
    --    cached for the session while completed_jobs was small would keep scanning it
    --    once it has grown (seconds per batch at a few hundred thousand rows).
    return query execute pg_catalog.format(
        $q$
        with locked as materialized (
            select q.msg_id, q.message ->> 'idempotency_key' as idempotency_key
            from pgmq.%I as q
            join rows from (pg_catalog.unnest($1), pg_catalog.unnest($2)) as w (msg_id, read_ct)
                on w.msg_id = q.msg_id and w.read_ct = q.read_ct
            where q.msg_id = any ($1)
            order by q.msg_id
            for update of q
        ),
        owned as (
            select pg_catalog.array_agg(l.msg_id) as ids from locked as l
        )
        select w.msg_id, 'lost'::text
        from pg_catalog.unnest($1) as w (msg_id), owned as o
        where o.ids is null or not (w.msg_id = any (o.ids))
        union all
        select l.msg_id, 'done'::text
        from locked as l
        cross join lateral (
            select 1
            from dragonfly.completed_jobs as d
            where d.kind = $3 and d.idempotency_key = l.idempotency_key
            limit 1
        ) as c
        $q$,
        v_table
    ) using p_msg_ids, p_read_cts, p_queue;
end
$$;

comment on function dragonfly.claim_jobs(text, bigint[], integer[]) is
    'Start of a job transaction: locks the deliveries (msg_id, read_ct) still current, until '
    'the transaction ends, and returns the ones not to run: lost (no longer current) or done '
    '(their kind and key already completed: acknowledge them unrun). The others are owned.';

-- Acknowledge deliveries: delete them from the live queue, fenced on read_ct.
create function dragonfly.ack_jobs(p_queue text, p_msg_ids bigint[], p_read_cts integer[])
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
    v_deleted integer;
begin
    perform dragonfly.check_deliveries('ack_jobs', p_msg_ids, p_read_cts);
    execute pg_catalog.format(
        $q$
        delete from pgmq.%I as q
        using rows from (pg_catalog.unnest($1), pg_catalog.unnest($2)) as d (msg_id, read_ct)
        where q.msg_id = d.msg_id and q.read_ct = d.read_ct and q.msg_id = any ($1)
        $q$,
        v_table
    ) using p_msg_ids, p_read_cts;
    get diagnostics v_deleted = row_count;
    if v_deleted <> pg_catalog.cardinality(p_msg_ids) then
        raise exception using
            errcode = 'DF100',
            message = pg_catalog.format(
                'ack_jobs: %s of %s deliveries on queue %s are no longer this worker''s '
                '(read again by another worker, or deleted)',
                pg_catalog.cardinality(p_msg_ids) - v_deleted,
                pg_catalog.cardinality(p_msg_ids),
                p_queue
            );
    end if;
    return v_deleted;
end
$$;

comment on function dragonfly.ack_jobs(text, bigint[], integer[]) is
    'Deletes the deliveries (msg_id, read_ct) from the live queue; DF100, deleting nothing, '
    'when any of them is gone or was read again since (the fenced delete).';

-- End of a job transaction: acknowledge the jobs done (fenced delete) and record them,
-- in the same transaction as the handlers' effects; their keys are read from the deleted
-- messages. A (kind, idempotency_key) completed concurrently by another transaction
-- makes the insert fail with 23505, rolling back the whole batch (the worker then
-- releases it; the next read finds the key done).
create function dragonfly.complete_jobs(
    p_queue text,
    p_worker text,
    p_msg_ids bigint[],
    p_read_cts integer[],
    p_durations_ms integer[]
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
    v_done integer;
begin
    perform dragonfly.check_deliveries('complete_jobs', p_msg_ids, p_read_cts);
    if pg_catalog.cardinality(p_durations_ms) is distinct from pg_catalog.cardinality(p_msg_ids)
    then
        raise exception using
            errcode = '22023',
            message = 'complete_jobs: durations must be an array as long as msg_ids';
    end if;
    execute pg_catalog.format(
        $q$
        with gone as (
            delete from pgmq.%I as q
            using rows from (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3))
                as d (msg_id, read_ct, duration_ms)
            where q.msg_id = d.msg_id and q.read_ct = d.read_ct and q.msg_id = any ($1)
            returning q.msg_id, q.read_ct, q.message ->> 'idempotency_key' as idempotency_key,
                      d.duration_ms
        ),
        recorded as (
            insert into dragonfly.completed_jobs
                (kind, idempotency_key, queue, msg_id, attempts, duration_ms, worker)
            select $4, g.idempotency_key, $4, g.msg_id, g.read_ct, g.duration_ms, $5
            from gone as g
            returning 1
        )
        select pg_catalog.count(*)::integer from recorded
        $q$,
        v_table
    ) into v_done using p_msg_ids, p_read_cts, p_durations_ms, p_queue, p_worker;
    if v_done <> pg_catalog.cardinality(p_msg_ids) then
        raise exception using
            errcode = 'DF100',
            message = pg_catalog.format(
                'complete_jobs: %s of %s deliveries on queue %s are no longer this worker''s '
                '(read again by another worker, or deleted)',
                pg_catalog.cardinality(p_msg_ids) - v_done,
                pg_catalog.cardinality(p_msg_ids),
                p_queue
            );
    end if;
    return v_done;
end
$$;

comment on function dragonfly.complete_jobs(text, text, bigint[], integer[], integer[]) is
    'End of a job transaction: deletes the deliveries (msg_id, read_ct) from the live queue '
    '(fenced: DF100, nothing deleted, when any is no longer current) and inserts one '
    'dragonfly.completed_jobs row per job (kind = queue, key from the message, attempts = '
    'read_ct). 23505 when a key was completed concurrently.';

-- A failed attempt that will be retried: the message stays, invisible for the backoff.
create function dragonfly.retry_job(
    p_queue text,
    p_msg_id bigint,
    p_read_ct integer,
    p_delay_seconds double precision
)
returns timestamptz
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
    v_vt timestamptz;
begin
    if p_delay_seconds is null or p_delay_seconds < 0 or p_delay_seconds > 604800 then
        raise exception using
            errcode = '22023',
            message = 'retry_job: delay_seconds must be between 0 and 604800';
    end if;
    execute pg_catalog.format(
        $q$
        update pgmq.%I as q
        set vt = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $3)
        where q.msg_id = $1 and q.read_ct = $2
        returning q.vt
        $q$,
        v_table
    ) into v_vt using p_msg_id, p_read_ct, p_delay_seconds;
    if v_vt is null then
        raise exception using
            errcode = 'DF100',
            message = pg_catalog.format(
                'retry_job: message %s on queue %s is no longer this worker''s (read_ct %s)',
                p_msg_id, p_queue, p_read_ct
            );
    end if;
    return v_vt;
end
$$;

comment on function dragonfly.retry_job(text, bigint, integer, double precision) is
    'Schedules the next attempt of a delivery: its visibility timeout becomes now + '
    'delay_seconds; returns the new vt. DF100 when the delivery is no longer current.';

-- Give deliveries back unrun (shutdown, a batch rolled back): visible at once, and the
-- read undone (read_ct - 1) so that a read which never ran the job does not count as
-- an attempt. Best effort: deliveries no longer current are skipped, not an error.
create function dragonfly.release_jobs(p_queue text, p_msg_ids bigint[], p_read_cts integer[])
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
    v_released integer;
begin
    perform dragonfly.check_deliveries('release_jobs', p_msg_ids, p_read_cts);
    execute pg_catalog.format(
        $q$
        update pgmq.%I as q
        set vt = pg_catalog.clock_timestamp(), read_ct = q.read_ct - 1
        from rows from (pg_catalog.unnest($1), pg_catalog.unnest($2)) as d (msg_id, read_ct)
        where q.msg_id = d.msg_id and q.read_ct = d.read_ct and q.msg_id = any ($1)
        $q$,
        v_table
    ) using p_msg_ids, p_read_cts;
    get diagnostics v_released = row_count;
    return v_released;
end
$$;

comment on function dragonfly.release_jobs(text, bigint[], integer[]) is
    'Makes unrun deliveries visible again at once and undoes their read (read_ct - 1), so they '
    'do not count as attempts; deliveries no longer current are skipped. Returns how many.';

-- Take a delivery off the live queue into dragonfly.dead_letters, in one statement pair
-- of the job transaction: nothing is lost between the two.
create function dragonfly.dead_letter_job(
    p_queue text,
    p_msg_id bigint,
    p_read_ct integer,
    p_reason text,
    p_error text,
    p_traceback text default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
    v_message jsonb;
    v_headers jsonb;
    v_enqueued_at timestamptz;
    v_id bigint;
begin
    if p_reason is null or p_reason not in ('malformed', 'permanent', 'max_attempts', 'timeout') then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'dead_letter_job: reason must be malformed, permanent, max_attempts or timeout (got %s)',
                coalesce(pg_catalog.quote_literal(p_reason), 'null')
            );
    end if;
    if p_error is null or pg_catalog.btrim(p_error) = '' then
        raise exception using errcode = '22023', message = 'dead_letter_job: error must not be blank';
    end if;
    execute pg_catalog.format(
        $q$
        delete from pgmq.%I as q
        where q.msg_id = $1 and q.read_ct = $2
        returning q.message, q.headers, q.enqueued_at
        $q$,
        v_table
    ) into v_message, v_headers, v_enqueued_at using p_msg_id, p_read_ct;
    if v_enqueued_at is null then
        raise exception using
            errcode = 'DF100',
            message = pg_catalog.format(
                'dead_letter_job: message %s on queue %s is no longer this worker''s (read_ct %s)',
                p_msg_id, p_queue, p_read_ct
            );
    end if;
    insert into dragonfly.dead_letters
        (queue, msg_id, kind, idempotency_key, message, headers, attempts, reason, last_error,
         traceback, enqueued_at)
    values (
        p_queue,
        p_msg_id,
        case when pg_catalog.jsonb_typeof(v_message -> 'kind') = 'string'
             then v_message ->> 'kind' end,
        case when pg_catalog.jsonb_typeof(v_message -> 'idempotency_key') = 'string'
             then nullif(pg_catalog.btrim(v_message ->> 'idempotency_key'), '') end,
        coalesce(v_message, 'null'::jsonb),
        v_headers,
        p_read_ct,
        p_reason,
        p_error,
        p_traceback,
        v_enqueued_at
    )
    returning id into v_id;
    return v_id;
end
$$;

comment on function dragonfly.dead_letter_job(text, bigint, integer, text, text, text) is
    'Moves a delivery from the live queue to dragonfly.dead_letters (message, headers, attempts '
    '= read_ct, reason, last error, traceback, enqueue time) and returns the dead letter''s id. '
    'DF100 when the delivery is no longer current; 22023 on a bad reason or a blank error.';

revoke execute on function
    dragonfly.claim_jobs(text, bigint[], integer[]),
    dragonfly.ack_jobs(text, bigint[], integer[]),
    dragonfly.complete_jobs(text, text, bigint[], integer[], integer[]),
    dragonfly.retry_job(text, bigint, integer, double precision),
    dragonfly.release_jobs(text, bigint[], integer[]),
    dragonfly.dead_letter_job(text, bigint, integer, text, text, text)
    from public;
grant execute on function
    dragonfly.claim_jobs(text, bigint[], integer[]),
    dragonfly.ack_jobs(text, bigint[], integer[]),
    dragonfly.complete_jobs(text, text, bigint[], integer[], integer[]),
    dragonfly.retry_job(text, bigint, integer, double precision),
    dragonfly.release_jobs(text, bigint[], integer[]),
    dragonfly.dead_letter_job(text, bigint, integer, text, text, text)
    to service_role, dragonfly_worker;
