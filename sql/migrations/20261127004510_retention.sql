-- Retention: pruning what the fleet no longer needs, in bounded batches.
--
-- Why: PGMQ archives grow forever unless something deletes from them, and so do
-- the completed-job records and resolved dead letters. The scheduler calls these
-- functions in a loop, one batch per transaction, until a call deletes nothing:
-- short transactions keep locks and WAL bursts small on a busy database. Rows
-- are taken oldest first with SKIP LOCKED, so a prune never waits on a worker.
-- SECURITY DEFINER because pgmq's archive tables belong to the migrating role.
-- The arguments every prune function takes: 22023 naming the function unless the period is
-- a positive interval and the batch limit at least 1.
create function dragonfly.check_prune_args(p_fn text, p_older_than interval, p_limit integer)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
    if p_older_than is null or p_older_than <= interval '0' then
        raise exception '%: p_older_than must be a positive interval', p_fn using errcode = '22023';
    end if;
    if p_limit is null or p_limit < 1 then
        raise exception '%: p_limit must be at least 1', p_fn using errcode = '22023';
    end if;
end
$$;

comment on function dragonfly.check_prune_args(text, interval, integer) is
    'Internal: 22023 "<p_fn>: ..." unless p_older_than is a positive interval and p_limit >= 1.';

revoke execute on function dragonfly.check_prune_args(text, interval, integer) from public;

create function dragonfly.prune_completed_jobs(p_older_than interval, p_limit integer default 5000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_deleted integer;
begin
    perform dragonfly.check_prune_args('prune_completed_jobs', p_older_than, p_limit);
    with doomed as (
        select c.kind, c.idempotency_key
        from dragonfly.completed_jobs c
        where c.completed_at < pg_catalog.now() - p_older_than
        order by c.completed_at
        limit p_limit
        for update skip locked
    )
    delete from dragonfly.completed_jobs c
    using doomed d
    where c.kind = d.kind and c.idempotency_key = d.idempotency_key;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end
$$;

comment on function dragonfly.prune_completed_jobs(interval, integer) is
    'Deletes up to p_limit completed-job records older than p_older_than (oldest first); returns how many. Called in a loop by the scheduler.';

create function dragonfly.prune_archives(p_older_than interval, p_limit integer default 5000)
returns table (queue text, deleted integer)
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_queue text;
    v_deleted integer;
begin
    perform dragonfly.check_prune_args('prune_archives', p_older_than, p_limit);
    -- Partitioned queues are left to pg_partman's own retention.
    for v_queue in
        select m.queue_name from pgmq.meta m where not m.is_partitioned order by m.queue_name
    loop
        execute pg_catalog.format(
            'delete from pgmq.%1$I a where a.msg_id in ('
            || 'select b.msg_id from pgmq.%1$I b where b.archived_at < pg_catalog.now() - $1'
            || ' order by b.archived_at limit $2 for update skip locked)',
            'a_' || v_queue
        ) using p_older_than, p_limit;
        get diagnostics v_deleted = row_count;
        queue := v_queue;
        deleted := v_deleted;
        return next;
    end loop;
end
$$;

comment on function dragonfly.prune_archives(interval, integer) is
    'Deletes up to p_limit archived messages older than p_older_than from each non-partitioned PGMQ archive (pgmq.a_<queue>); one row per queue with the count.';

create function dragonfly.prune_dead_letters(p_older_than interval, p_limit integer default 5000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_deleted integer;
begin
    perform dragonfly.check_prune_args('prune_dead_letters', p_older_than, p_limit);
    -- Only resolved rows (replayed or purged): an open dead letter waits for a person.
    with doomed as (
        select d.id
        from dragonfly.dead_letters d
        where d.status <> 'dead' and d.resolved_at < pg_catalog.now() - p_older_than
        order by d.resolved_at
        limit p_limit
        for update skip locked
    )
    delete from dragonfly.dead_letters d
    using doomed x
    where d.id = x.id;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end
$$;

comment on function dragonfly.prune_dead_letters(interval, integer) is
    'Deletes up to p_limit resolved (replayed or purged) dead letters resolved more than p_older_than ago; open dead letters are never pruned.';

revoke execute on function dragonfly.prune_completed_jobs(interval, integer),
    dragonfly.prune_archives(interval, integer),
    dragonfly.prune_dead_letters(interval, integer) from public;
grant execute on function dragonfly.prune_completed_jobs(interval, integer),
    dragonfly.prune_archives(interval, integer),
    dragonfly.prune_dead_letters(interval, integer) to service_role, dragonfly_worker;
