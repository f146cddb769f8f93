-- Defer PGMQ's insert notification to commit time, for handlers that enqueue.
--
-- Why: PGMQ's notify-on-insert trigger (pgmq.trigger_notify_queue_insert_listeners, a
-- DEFERRABLE INITIALLY IMMEDIATE constraint trigger on every q_<queue> table) updates one
-- row per queue in pgmq.notify_insert_throttle. Fired immediately, that row stays locked
-- from the first queue_job() of a transaction until its commit. The worker runtime commits
-- a whole batch of jobs at once, so an enrich handler that enqueues an enforce plan job
-- early in its batch made every other worker's enqueue wait for that batch to finish:
-- batches ran one after the other, and under load past their visibility timeout
-- (docs/scoring.md, "Performance"). Deferred, the trigger fires at commit and the row is
-- locked only while the transaction commits. The notification itself is unchanged:
-- NOTIFY is delivered at commit either way.
--
-- Does nothing where PGMQ has no insert notifications (releases before 1.7): the
-- constraint trigger does not exist there. SECURITY DEFINER because naming the trigger
-- needs USAGE on schema pgmq, which the fleet's role does not have.

create or replace function dragonfly.defer_queue_notify()
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if exists (
        select 1
          from pg_catalog.pg_constraint as c
          join pg_catalog.pg_namespace as n on n.oid = c.connamespace
         where n.nspname = 'pgmq'
           and c.conname = 'trigger_notify_queue_insert_listeners'
           and c.condeferrable
    ) then
        set constraints pgmq.trigger_notify_queue_insert_listeners deferred;
    end if;
end;
$$;

comment on function dragonfly.defer_queue_notify() is
    'For the rest of the current transaction, fire PGMQ''s insert-notification triggers at commit '
    'instead of per insert, so a long batch transaction that enqueues does not hold the per-queue '
    'notify throttle row locked (and block every other enqueuer) until it commits. Call it before '
    'queue_job() in a handler. No-op without PGMQ insert notifications. Fleet and service_role.';

revoke execute on function dragonfly.defer_queue_notify() from public;
grant execute on function dragonfly.defer_queue_notify() to service_role, dragonfly_worker;
