-- The job queues' insert notifications, without PGMQ's throttle row.
--
-- Why: PGMQ's notify trigger (pgmq.notify_queue_listeners, enabled per queue by
-- 20261127000100_job_queues.sql) updates its queue's row in pgmq.notify_insert_throttle on
-- every insert. That row lock is held until the inserting transaction ends, so a batch that
-- enqueued early blocked every other enqueuer of the queue until it committed.
-- 20261127005020_defer_queue_notify.sql worked around it by deferring the trigger to commit,
-- where it runs as the login role: a fleet logged in as a member of dragonfly_worker (the
-- documented deployment) has no right on schema pgmq, so every such commit failed with
-- 42501 "permission denied for schema pgmq". Even where it worked, commits that enqueued on
-- two queues locked two throttle rows at commit in insert order (a deadlock between two such
-- commits in the other order), and each message left one dead row version behind.
--
-- The job queues never throttle (interval 0), so the row bought nothing: the notification
-- alone is what wakes a worker. Each job queue now has a statement-level trigger of its own
-- that only sends the same NOTIFY (channel pgmq.q_<queue>.INSERT, delivered at commit): no
-- row is written or locked, no right on schema pgmq is needed by whoever inserts, and it
-- works on PGMQ releases without insert notifications too. PGMQ's trigger and throttle row
-- are removed from the job queues with PGMQ's own disable_notify_insert().

create or replace function dragonfly.notify_queue_insert()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    -- The channel PGMQ's own trigger uses, so LISTENers need not know which one fired.
    perform pg_catalog.pg_notify('pgmq.' || tg_table_name || '.INSERT', null);
    return null;
end;
$$;

comment on function dragonfly.notify_queue_insert() is
    'Statement-level AFTER INSERT trigger on a job queue''s table: NOTIFY pgmq.q_<queue>.INSERT '
    '(delivered at commit) so idle workers wake. Writes and locks nothing.';

revoke execute on function dragonfly.notify_queue_insert() from public;

create or replace function dragonfly.enable_queue_notify(p_queue text)
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_table text := 'q_' || pg_catalog.lower(p_queue);
begin
    if p_queue is null or pg_catalog.to_regclass(pg_catalog.format('pgmq.%I', v_table)) is null then
        raise exception 'enable_queue_notify: no PGMQ queue %', coalesce(p_queue, 'null')
            using errcode = '22023';
    end if;
    if exists (
        select 1
          from pg_catalog.pg_proc as p
          join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
         where n.nspname = 'pgmq' and p.proname = 'disable_notify_insert'
    ) then
        perform pgmq.disable_notify_insert(p_queue);
    end if;
    execute pg_catalog.format(
        'drop trigger if exists dragonfly_notify_insert on pgmq.%I', v_table
    );
    execute pg_catalog.format(
        'create trigger dragonfly_notify_insert after insert on pgmq.%I'
        ' for each statement execute function dragonfly.notify_queue_insert()',
        v_table
    );
end;
$$;

comment on function dragonfly.enable_queue_notify(text) is
    'Give a PGMQ queue the project''s insert notification (dragonfly.notify_queue_insert) in '
    'place of PGMQ''s throttled one. Migrations call it for every job queue they create. '
    '22023 for a queue that does not exist. Owner only.';

revoke execute on function dragonfly.enable_queue_notify(text) from public;

do $$
declare
    q text;
begin
    foreach q in array array['enrich', 'outreach', 'enforce', 'case_copilot'] loop
        perform dragonfly.enable_queue_notify(q);
    end loop;
end
$$;

-- Nothing is deferred any more: the job queues carry no PGMQ notify trigger. Kept, with the
-- same name and signature, so callers need no change; it must not defer PGMQ triggers of
-- other queues either, which would fire at commit without rights (see above).
create or replace function dragonfly.defer_queue_notify()
returns void
language sql
volatile
set search_path = ''
as $$
    select null::void
$$;

comment on function dragonfly.defer_queue_notify() is
    'No-op kept for callers: the job queues'' insert notifications (dragonfly.notify_queue_insert, '
    'migration 20261202120000) lock nothing, so there is nothing to defer. Fleet and service_role.';

revoke execute on function dragonfly.defer_queue_notify() from public;
grant execute on function dragonfly.defer_queue_notify() to service_role, dragonfly_worker;
