-- dragonfly.queue_stats() tells deferred messages apart from messages in flight, and
-- reports the queues of the job-kind registry instead of every queue in pgmq.meta.
--
-- Why: "in flight" counted every message whose visibility time lay ahead. A message
-- enqueued with a delay (queue_job's delay_seconds: outreach held until the plaintiff's
-- quiet hours end, a scheduled follow-up) has never been read and is not being worked on,
-- yet it showed as IN_FLIGHT, aged like a stuck job. Now:
--   in_flight  read (read_ct > 0) and still invisible: a worker holds it (running, or
--              waiting out the backoff before its next attempt);
--   deferred   never read (read_ct = 0) and not due yet: held back by its enqueuer;
--   next_due_at  when the first deferred message becomes visible (null: none deferred).
-- The result gains two columns, so the function is dropped and created again.

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
    dead_letters bigint
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_queue text;
    -- The clock, as pgmq.read() compares vt with it: now() would be the start of the
    -- caller's transaction, and messages sent since would look not yet due.
    v_now timestamptz := pg_catalog.clock_timestamp();
begin
    for v_queue in select k.kind from dragonfly.job_kinds as k order by k.kind loop
        select mt.queue_length, mt.oldest_msg_age_sec, mt.newest_msg_age_sec, mt.total_messages
        into depth, oldest_age_sec, newest_age_sec, total_messages
        from pgmq.metrics(v_queue) mt;
        execute pg_catalog.format(
            $q$
            select pg_catalog.count(*) filter (where q.read_ct > 0),
                   pg_catalog.count(*) filter (where q.read_ct = 0),
                   pg_catalog.min(q.vt) filter (where q.read_ct = 0)
              from pgmq.%I as q
             where q.vt > $1
            $q$,
            'q_' || v_queue
        ) into in_flight, deferred, next_due_at using v_now;
        visible := greatest(depth - in_flight - deferred, 0);
        select pg_catalog.count(*) into dead_letters
        from dragonfly.dead_letters d
        where d.queue = v_queue and d.status = 'dead';
        queue := v_queue;
        return next;
    end loop;
end
$$;

comment on function dragonfly.queue_stats() is
    'Per job-kind queue: depth and message ages (pgmq.metrics); visible now; in flight (read, '
    'visibility timeout still running); deferred (never read, delivery delayed) and when the next '
    'deferred one is due; all-time messages sent; open dead letters.';

revoke execute on function dragonfly.queue_stats() from public;
grant execute on function dragonfly.queue_stats() to service_role, dragonfly_worker;
