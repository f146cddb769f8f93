-- The four job queues that queue_job() fans out to.
--
-- Why here and not in Python: the queues are schema, and schema lives in
-- migrations. PGMQ itself is installed before the first migration runs (CREATE
-- EXTENSION where the server offers it, the SQL bundled with the pgmq package
-- otherwise), because a migration cannot choose between the two.
--
-- Insert notifications are enabled with no throttle: an idle worker LISTENs on
-- pgmq.q_<queue>.INSERT and wakes the moment a job commits, instead of waiting
-- for its next poll. PGMQ releases before 1.7 have no notify support; there the
-- workers simply poll.
do $$
declare
    q text;
begin
    foreach q in array array['enrich', 'outreach', 'enforce', 'case_copilot'] loop
        if not exists (select 1 from pgmq.meta where queue_name = q) then
            perform pgmq.create(q);
        end if;

        if exists (
            select 1
            from pg_catalog.pg_proc p
            join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            where n.nspname = 'pgmq' and p.proname = 'enable_notify_insert'
        ) then
            perform pgmq.enable_notify_insert(q, 0);
        end if;
    end loop;
end
$$;
