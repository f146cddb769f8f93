-- claim_jobs(): the same claim, planned once per session except for one small statement.
--
-- Why: a one-message claim cost about 0.5 ms, most of it planning. The queue's table
-- (pgmq.q_<queue>) is dynamic, so the whole claim (a lock joined to the deliveries, a CTE,
-- a union and a LATERAL probe of completed_jobs) was one EXECUTEd statement, planned afresh
-- on every call. That was on purpose: a plan cached while dragonfly.completed_jobs was small
-- would keep scanning it once it has grown. The claim is split so that only what has to be
-- dynamic is:
--   * the lock stays EXECUTEd, but as the smallest statement that does it: one table, the
--     primary key on msg_id = any ($1), the fence as a filter (no join to plan), rows locked
--     in msg_id order, FOR UPDATE waiting on rows another transaction holds, the fence made
--     again on the row as it is after the wait (that is what FOR UPDATE's recheck does with
--     a filter, as it did with the join condition). The fence compares the row's delivery,
--     msg_id || ':' || read_ct, to the caller's pairs written the same way: exactly the
--     rows whose (msg_id, read_ct) is one of the pairs, as the join had it (two separate
--     "= any" would also lock a row whose read_ct belongs to another pair);
--   * everything else is static SQL, planned once for the session: the 'lost' rows (the
--     deliveries not locked), and the 'done' rows, one per (locked row, matching pair) as the
--     join gave them, with one probe of completed_jobs' primary key per row (LATERAL ...
--     LIMIT 1: a parameterized scan, so a nested loop; no hash or merge join can read the
--     whole table).
-- A plan cached for the session must not depend on completed_jobs' statistics, so the
-- function runs with
--   * enable_seqscan = off: the probe's only other plan is a sequential scan, so it is the
--     primary key whatever the statistics say (the project's rule for cached key lookups,
--     as in check_queue_job, send_job and queue_jobs);
--   * plan_cache_mode = force_generic_plan: otherwise PL/pgSQL plans the static statement
--     for each call's array values (a custom plan for a one-element array always looks
--     cheaper than the generic one), and that planning is the cost this migration removes.
-- The dynamic lock runs under the same settings, so it stays on the queue's primary key too.
-- Same signature, result, SECURITY DEFINER and search_path; CREATE OR REPLACE keeps the
-- comment and the grants (service_role, dragonfly_worker). tests/sql/test_claim_plans.py
-- checks that the probe stays a primary-key lookup once completed_jobs has grown after an
-- ANALYZE of it empty.

create or replace function dragonfly.claim_jobs(p_queue text, p_msg_ids bigint[], p_read_cts integer[])
returns table (msg_id bigint, state text)
language plpgsql
volatile
security definer
set search_path = ''
set enable_seqscan = off
set plan_cache_mode = force_generic_plan
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
    v_ids bigint[];
    v_read_cts integer[];
    v_keys text[];
begin
    perform dragonfly.check_deliveries('claim_jobs', p_msg_ids, p_read_cts);
    -- 1. Lock the deliveries still current, in msg_id order (dynamic: the queue's table).
    execute pg_catalog.format(
        $q$
        select pg_catalog.array_agg(l.msg_id), pg_catalog.array_agg(l.read_ct),
               pg_catalog.array_agg(l.idempotency_key)
        from (
            select q.msg_id, q.read_ct, q.message ->> 'idempotency_key' as idempotency_key
            from pgmq.%I as q
            where q.msg_id = any ($1) and (q.msg_id::text || ':' || q.read_ct::text) = any ($2)
            order by q.msg_id
            for update of q
        ) as l
        $q$,
        v_table
    )
    into v_ids, v_read_cts, v_keys
    using
        p_msg_ids,
        array(
            select w.msg_id::text || ':' || w.read_ct::text
            from rows from (pg_catalog.unnest(p_msg_ids), pg_catalog.unnest(p_read_cts))
                as w (msg_id, read_ct)
        );
    -- 2. Lost and done (static: planned once, the probe on completed_jobs' primary key).
    return query
        select w.msg_id, 'lost'::text
        from pg_catalog.unnest(p_msg_ids) as w (msg_id)
        where v_ids is null or not (w.msg_id = any (v_ids))
        union all
        select l.msg_id, 'done'::text
        from rows from (
            pg_catalog.unnest(v_ids), pg_catalog.unnest(v_read_cts), pg_catalog.unnest(v_keys)
        ) as l (msg_id, read_ct, idempotency_key)
        join rows from (pg_catalog.unnest(p_msg_ids), pg_catalog.unnest(p_read_cts))
            as w (msg_id, read_ct)
            on w.msg_id = l.msg_id and w.read_ct = l.read_ct
        cross join lateral (
            select 1
            from dragonfly.completed_jobs as d
            where d.kind = p_queue and d.idempotency_key = l.idempotency_key
            limit 1
        ) as c;
end
$$;
