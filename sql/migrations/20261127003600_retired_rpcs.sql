-- The retired RPCs must not exist: ack_job, complete_plaintiff_call_task, set_updated_at.
--
-- Why a migration for functions this repository never created: databases restored from the
-- old schema freeze may still carry them, and a retired RPC that lingers is still callable.
-- Dropping them (whatever their arguments, in public) makes every migrated database agree,
-- and `dragonfly db guard` fails if one ever comes back. What replaced each one:
--   ack_job(queue_name text, msg_id bigint)        -> pgmq_delete(queue_name, msg_id)
--   complete_plaintiff_call_task(task_id uuid, actor text, payload jsonb) -> log_call_outcome(...)
--   set_updated_at()                               -> the tg_touch_updated_at() trigger function
do $$
declare
    f regprocedure;
begin
    for f in
        select p.oid::regprocedure
          from pg_catalog.pg_proc as p
          join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
         where n.nspname = 'public'
           and p.proname in ('ack_job', 'complete_plaintiff_call_task', 'set_updated_at')
    loop
        execute pg_catalog.format('drop function %s', f);
    end loop;
end
$$;
