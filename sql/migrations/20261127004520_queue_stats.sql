-- One query for "how are the queues doing": what `dragonfly queues` prints and
-- what every process exports as Prometheus gauges.
--
-- Why a function: depth and ages come from pgmq.metrics(); PGMQ has no notion of
-- "in flight" (read, visibility timeout still running) nor of our dead letters,
-- so both are counted here, in one place, for every queue in pgmq.meta.
-- SECURITY DEFINER because the pgmq tables belong to the migrating role.
create function dragonfly.queue_stats()
returns table (
    queue text,
    depth bigint,
    visible bigint,
    in_flight bigint,
    oldest_age_sec integer,
    newest_age_sec integer,
    total_messages bigint,
    dead_letters bigint
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_queue text;
begin
    for v_queue in select m.queue_name from pgmq.meta m order by m.queue_name loop
        select mt.queue_length, mt.oldest_msg_age_sec, mt.newest_msg_age_sec, mt.total_messages
        into depth, oldest_age_sec, newest_age_sec, total_messages
        from pgmq.metrics(v_queue) mt;
        execute pg_catalog.format(
            'select pg_catalog.count(*) filter (where q.vt > pg_catalog.now()) from pgmq.%I q',
            'q_' || v_queue
        ) into in_flight;
        visible := greatest(depth - in_flight, 0);
        select pg_catalog.count(*) into dead_letters
        from dragonfly.dead_letters d
        where d.queue = v_queue and d.status = 'dead';
        queue := v_queue;
        return next;
    end loop;
end
$$;

comment on function dragonfly.queue_stats() is
    'Per PGMQ queue: depth and message ages (pgmq.metrics), visible and in-flight counts (vt against now()), all-time messages sent and open dead letters.';

revoke execute on function dragonfly.queue_stats() from public;
grant execute on function dragonfly.queue_stats() to service_role, dragonfly_worker;
