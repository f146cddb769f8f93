-- Every function pins its search_path (Supabase's linter, lint 0011), so the whole-pass
-- procedure goes and a DO block takes its place.
--
-- Why: public.run_refresh_enforcement_metrics() (migration 20261202150000) committed
-- between steps, and PostgreSQL refuses COMMIT in a procedure that has a SET clause, so it
-- could not pin search_path. A DO block run outside a transaction block may commit and is
-- not a stored function; it is what pg_cron now runs (and what to run by hand), the same
-- loop: one step, commit, until refresh_enforcement_metrics_progress() says finished
-- (workers/scheduler/refresh.py, WHOLE_PASS, holds the same text). The fleet scheduler
-- never used the procedure.
--
-- public.judgment_priority_of() pins search_path too (a few microseconds per call, paid on
-- judgments writes through judgments_pipeline_order_idx).

drop procedure public.run_refresh_enforcement_metrics(jsonb);

alter function public.judgment_priority_of(text) set search_path = '';

comment on function public.refresh_enforcement_metrics() is
    'One step of the nightly maintenance pass over open cases (at most dragonfly.refresh_chunk_size cases or '
    'judgments, default 250): syncs collectability_score from judgments.cases, recalculates tier (unexpired '
    'override wins; else the score band), clears expired overrides with a history row, records tier changes '
    '(history + tier_changed event), fills missing next_action_at from the stage SLA, emits one sla_resurfaced '
    'event per passed due date; then re-syncs the pipeline tier mirror and the overview totals. Locks cases in '
    'id order, waiting at most dragonfly.refresh_lock_wait, else skips them. Resumes the pass where the last '
    'committed step stopped; returns the pass''s running counts (ran_at = when the pass began). Call until '
    'refresh_enforcement_metrics_progress() says finished, committing between calls (the scheduler and the '
    'pg_cron job do; docs/rpc.md). Idempotent. Callable by dragonfly_worker and service_role.';

do $$
begin
    if exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
        perform cron.schedule(
            'dragonfly_refresh_enforcement_metrics',
            '30 2 * * *',
            'do $pass$ begin loop perform public.refresh_enforcement_metrics(); commit; '
            'exit when (public.refresh_enforcement_metrics_progress() ->> ''finished'')::boolean; '
            'end loop; end $pass$'
        );
    end if;
end
$$;
