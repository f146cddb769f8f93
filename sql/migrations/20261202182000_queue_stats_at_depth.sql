-- dragonfly.queue_stats() stays fast however deep a queue is.
--
-- Why: it counted every message of every queue on each call (pgmq.metrics() and a scan for
-- min/max enqueued_at), and the fleet's /metrics calls it on every Prometheus scrape. With a
-- million messages queued a call took 190 ms to 1.7 s, growing with the depth. Now each queue
-- costs a few index probes plus work bounded by what is *not* plain backlog:
--   * depth is counted exactly up to 10,000 messages. Deeper than that it is estimated from
--     the span of message ids (max - min + 1, two primary-key probes): an upper bound that is
--     exact while messages leave roughly in the order they came, as a backlog does; the
--     column depth_estimated says which. visible follows from depth;
--   * the oldest and newest ages (now() - enqueued_at, as pgmq.metrics() computes them) come
--     from the first and last message by id (the order they were sent in), not from a scan;
--   * total_messages is the id sequence's last value, as pgmq.metrics() reads it;
--   * in flight and deferred (visibility time ahead) are counted through the vt index, as
--     before: they are bounded by the fleet's concurrency and by what enqueuers delayed;
--   * open dead letters through their partial index, as before.
-- The result gains a column (depth_estimated), so the function is dropped and created again.

drop function dragonfly.queue_stats();

create function dragonfly.queue_stats()
returns table (
    queue text,
    depth bigint,
    visible bigint,
    in_flight bigint,
    deferred bigint,
    next_due_at timestamptz,
    oldest_age_sec integer,
    newest_age_sec integer,
    total_messages bigint,
    dead_letters bigint,
    depth_estimated boolean
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    -- Counted exactly up to here; estimated beyond.
    c_exact_up_to constant integer := 10000;
    v_queue text;
    v_first bigint;
    v_last bigint;
    -- The clock, as pgmq.read() compares vt with it: now() would be the start of the
    -- caller's transaction, and messages sent since would look not yet due.
    v_now timestamptz := pg_catalog.clock_timestamp();
begin
    for v_queue in select k.kind from dragonfly.job_kinds as k order by k.kind loop
        execute pg_catalog.format(
            $q$
            select (select pg_catalog.count(*) from (select 1 from pgmq.%1$I limit $1) as s),
                   (select q.msg_id from pgmq.%1$I as q order by q.msg_id limit 1),
                   (select q.msg_id from pgmq.%1$I as q order by q.msg_id desc limit 1)
            $q$,
            'q_' || v_queue
        ) into depth, v_first, v_last using c_exact_up_to + 1;
        depth_estimated := depth > c_exact_up_to;
        if depth_estimated then
            depth := v_last - v_first + 1;
        end if;

        execute pg_catalog.format(
            $q$
            select (select extract(epoch from (pg_catalog.now() - q.enqueued_at))::integer
                      from pgmq.%1$I as q where q.msg_id = $2),
                   (select extract(epoch from (pg_catalog.now() - q.enqueued_at))::integer
                      from pgmq.%1$I as q where q.msg_id = $3),
                   pg_catalog.count(*) filter (where d.read_ct > 0),
                   pg_catalog.count(*) filter (where d.read_ct = 0),
                   pg_catalog.min(d.vt) filter (where d.read_ct = 0)
              from pgmq.%1$I as d
             where d.vt > $1
            $q$,
            'q_' || v_queue
        ) into oldest_age_sec, newest_age_sec, in_flight, deferred, next_due_at
          using v_now, v_first, v_last;
        visible := greatest(depth - in_flight - deferred, 0);

        execute pg_catalog.format(
            'select case when s.is_called then s.last_value else 0 end from pgmq.%I as s',
            'q_' || v_queue || '_msg_id_seq'
        ) into total_messages;

        select pg_catalog.count(*) into dead_letters
          from dragonfly.dead_letters as d
         where d.queue = v_queue and d.status = 'dead';
        queue := v_queue;
        return next;
    end loop;
end
$$;

comment on function dragonfly.queue_stats() is
    'Per job-kind queue: depth (exact up to 10,000 messages, else estimated from the span of '
    'message ids: depth_estimated), visible now, in flight (read, visibility timeout still '
    'running), deferred (never read, delivery delayed) and when the next deferred one is due, '
    'oldest and newest message age (first and last by id), all-time messages sent, open dead '
    'letters. A few index probes per queue, whatever the depth.';

revoke execute on function dragonfly.queue_stats() from public;
grant execute on function dragonfly.queue_stats() to service_role, dragonfly_worker;
