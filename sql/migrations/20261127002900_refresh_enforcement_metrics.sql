-- refresh_enforcement_metrics(): the nightly recalculation of tiers and next actions, and
-- its pg_cron schedule where pg_cron exists.
--
-- What it does, for open cases only:
--   * score: the court case's collectability_score (judgments.cases) is copied onto the
--     case when it differs (the case keeps the score its tier was computed from);
--   * tier: an unexpired tier_override wins (tier_reason 'override'); otherwise the band
--     of the score in enforcement_tier_lookup (tier_reason 'score>=<min>'); with no score
--     the tier is left alone;
--   * an expired override is cleared (tier_override, override_expires_at, override_note)
--     and recorded in enforcement_history (actor_type 'automation', action
--     'override_expired');
--   * a tier change is recorded in the history ('tier_recalculated', unless the override
--     row already says it) and as a tier_changed event;
--   * next_action_at, when missing, becomes stage_entered_at + the stage's SLA;
--   * a case whose next_action_at has passed gets one sla_resurfaced event (once per
--     due date);
--   * the judgments.collectability_tier mirror (v_priority_pipeline's sort key) is
--     re-synced from judgments.cases where it drifted (it should never have to);
--   * so are v_enforcement_overview's trigger-kept totals (migration 20261127002790).
-- Days in stage are not stored: the views compute them from stage_entered_at, so they are
-- always current.
--
-- Why it is idempotent and safe beside the fleet: it only writes rows whose values would
-- change, so a second run changes nothing. It locks the rows it changes with SKIP LOCKED
-- and re-checks that they still hold the values it computed from; a case an RPC is
-- working on right now is skipped (and counted) and picked up by the next run.

create or replace function public.refresh_enforcement_metrics()
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_now timestamptz := pg_catalog.now();
    v_result jsonb;
    v_resurfaced integer;
    v_mirrored integer;
    v_overview integer;
begin
    with computed as (
        select
            c.id,
            c.tier as old_tier,
            c.tier_reason as old_reason,
            c.collectability_score as old_score,
            c.tier_override as old_override,
            c.override_expires_at as old_expires_at,
            c.override_note as old_note,
            c.next_action_at as old_next_action_at,
            coalesce(cc.collectability_score, c.collectability_score) as new_score,
            coalesce(c.tier_override is not null and c.override_expires_at <= v_now, false) as override_expired,
            c.tier_override is not null
                and (c.override_expires_at is null or c.override_expires_at > v_now) as override_active,
            band.tier as band_tier,
            band.min_score as band_min_score,
            coalesce(
                c.next_action_at,
                c.stage_entered_at + pg_catalog.make_interval(days => s.sla_days)
            ) as new_next_action_at
        from public.enforcement_cases as c
        join public.enforcement_stage_lookup as s on s.stage = c.current_stage
        left join judgments.cases as cc on cc.judgment_id = c.judgment_id
        left join lateral (
            select t.tier, t.min_score
              from public.enforcement_tier_lookup as t
             where t.min_score <= coalesce(cc.collectability_score, c.collectability_score)
             order by t.min_score desc
             limit 1
        ) as band on true
        where c.closed_at is null
    ),
    target as (
        select
            x.*,
            case
                when x.override_active then x.old_override
                else coalesce(x.band_tier, x.old_tier)
            end as new_tier,
            case
                when x.override_active then 'override'
                when x.band_tier is not null then 'score>=' || pg_catalog.trim_scale(x.band_min_score)::text
                else x.old_reason
            end as new_reason,
            case when x.override_expired then null else x.old_override end as new_override,
            case when x.override_expired then null else x.old_expires_at end as new_expires_at,
            case when x.override_expired then null else x.old_note end as new_note
        from computed as x
    ),
    changed as (
        select t.*
          from target as t
         where (t.new_tier, t.new_reason, t.new_score, t.new_override, t.new_expires_at, t.new_note,
                t.new_next_action_at)
               is distinct from
               (t.old_tier, t.old_reason, t.old_score, t.old_override, t.old_expires_at, t.old_note,
                t.old_next_action_at)
    ),
    locked as (
        -- Lock only what changes, skip what an RPC holds, and make sure the row still has the
        -- values the new ones were computed from (it may have changed since the snapshot).
        select c.id
          from public.enforcement_cases as c
          join changed as ch on ch.id = c.id
         where c.closed_at is null
           and (c.tier, c.tier_reason, c.collectability_score, c.tier_override, c.override_expires_at,
                c.override_note, c.next_action_at)
               is not distinct from
               (ch.old_tier, ch.old_reason, ch.old_score, ch.old_override, ch.old_expires_at, ch.old_note,
                ch.old_next_action_at)
           for no key update of c skip locked
    ),
    updated as (
        update public.enforcement_cases as c
           set tier = ch.new_tier,
               tier_reason = ch.new_reason,
               tier_as_of = case
                   when (ch.new_tier, ch.new_reason) is distinct from (ch.old_tier, ch.old_reason) then v_now
                   else c.tier_as_of
               end,
               collectability_score = ch.new_score,
               tier_override = ch.new_override,
               override_expires_at = ch.new_expires_at,
               override_note = ch.new_note,
               next_action_at = ch.new_next_action_at
          from changed as ch
         where ch.id = c.id
           and c.id in (select l.id from locked as l)
        returning c.id
    ),
    done as (
        select ch.*
          from changed as ch
          join updated as u on u.id = ch.id
    ),
    history as (
        insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta, note)
        select
            d.id,
            'refresh_enforcement_metrics',
            'automation',
            case when d.override_expired then 'override_expired' else 'tier_recalculated' end,
            pg_catalog.jsonb_build_object(
                'tier', pg_catalog.jsonb_build_object('from', d.old_tier, 'to', d.new_tier),
                'tier_reason', pg_catalog.jsonb_build_object('from', d.old_reason, 'to', d.new_reason),
                'collectability_score', pg_catalog.jsonb_build_object('from', d.old_score, 'to', d.new_score)
            ) || case
                when d.override_expired then pg_catalog.jsonb_build_object(
                    'tier_override', pg_catalog.jsonb_build_object('from', d.old_override, 'to', null),
                    'override_expires_at', d.old_expires_at,
                    'override_note', d.old_note
                )
                else '{}'::jsonb
            end,
            case when d.override_expired then 'tier override expired' end
        from done as d
        where d.override_expired or d.new_tier is distinct from d.old_tier
        returning 1
    ),
    events as (
        insert into public.enforcement_events (enforcement_case_id, event_kind, occurred_at, payload, actor, created_at)
        select
            d.id,
            'tier_changed',
            v_now,
            pg_catalog.jsonb_build_object(
                'from', d.old_tier, 'to', d.new_tier, 'reason', d.new_reason,
                'override_expired', d.override_expired
            ),
            'refresh_enforcement_metrics',
            pg_catalog.clock_timestamp()
        from done as d
        where d.new_tier is distinct from d.old_tier
        returning 1
    )
    select pg_catalog.jsonb_build_object(
        'cases_changed', (select pg_catalog.count(*) from done),
        'tiers_changed', (select pg_catalog.count(*) from done as d where d.new_tier is distinct from d.old_tier),
        'overrides_expired', (select pg_catalog.count(*) from done as d where d.override_expired),
        'next_actions_set',
            (select pg_catalog.count(*) from done as d where d.old_next_action_at is null and d.new_next_action_at is not null),
        'skipped_locked', (select pg_catalog.count(*) from changed) - (select pg_catalog.count(*) from done),
        'history_rows', (select pg_catalog.count(*) from history),
        'tier_events', (select pg_catalog.count(*) from events)
    )
    into v_result;

    -- Cases past their next action resurface once per due date.
    insert into public.enforcement_events (enforcement_case_id, event_kind, occurred_at, payload, actor, created_at)
    select
        c.id,
        'sla_resurfaced',
        v_now,
        pg_catalog.jsonb_build_object(
            'next_action_at', c.next_action_at,
            'stage', c.current_stage,
            'days_in_stage', pg_catalog.floor(extract(epoch from v_now - c.stage_entered_at) / 86400)::integer
        ),
        'refresh_enforcement_metrics',
        pg_catalog.clock_timestamp()
    from public.enforcement_cases as c
    where c.closed_at is null
      and c.next_action_at <= v_now
      -- A scalar subquery (one probe of enforcement_events_sla_resurfaced_idx per due case)
      -- rather than NOT EXISTS: right after a night that wrote many of these events the
      -- statistics do not know them yet, and an anti-join planned on that would compare
      -- every due case with every event.
      and coalesce(
          (
              select pg_catalog.max(e.occurred_at)
                from public.enforcement_events as e
               where e.enforcement_case_id = c.id
                 and e.event_kind = 'sla_resurfaced'
          ),
          '-infinity'::timestamptz
      ) < c.next_action_at;
    get diagnostics v_resurfaced = row_count;

    -- Safety net for v_priority_pipeline's sort key: the judgments.collectability_tier mirror
    -- (kept by a trigger on judgments.cases) must equal the court case's tier.
    with drifted as (
        select j.id, cc.collectability_tier
          from public.judgments as j
          left join judgments.cases as cc on cc.judgment_id = j.id
         where j.collectability_tier is distinct from cc.collectability_tier
           for no key update of j skip locked
    )
    update public.judgments as j
       set collectability_tier = d.collectability_tier
      from drifted as d
     where d.id = j.id;
    get diagnostics v_mirrored = row_count;

    -- Safety net for v_enforcement_overview's totals (kept by triggers on enforcement_cases).
    v_overview := enforcement_private.resync_overview_rollup();

    return v_result || pg_catalog.jsonb_build_object(
        'resurfaced', v_resurfaced, 'pipeline_tiers_resynced', v_mirrored,
        'overview_totals_resynced', v_overview, 'ran_at', v_now
    );
end;
$$;

-- "Has this case already resurfaced for its current due date?" in one index probe.
create index enforcement_events_sla_resurfaced_idx
    on public.enforcement_events (enforcement_case_id, occurred_at)
    where event_kind = 'sla_resurfaced';

comment on function public.refresh_enforcement_metrics() is
    'Nightly maintenance of open cases: syncs collectability_score from judgments.cases, recalculates tier '
    '(unexpired override wins; else the score band), clears expired overrides with a history row, records '
    'tier changes (history + tier_changed event), fills missing next_action_at from the stage SLA, emits '
    'one sla_resurfaced event per passed due date and re-syncs the pipeline tier mirror and the overview totals. Idempotent; skips '
    'rows locked by RPCs. Returns counts. Scheduled by pg_cron where present, else by the fleet scheduler. Callable by dragonfly_worker and '
    'service_role.';

revoke execute on function public.refresh_enforcement_metrics() from public, anon, authenticated;
grant execute on function public.refresh_enforcement_metrics() to dragonfly_worker, service_role;

-- pg_cron where the extension exists (Supabase); elsewhere the fleet's scheduler runs the
-- same call at DRAGONFLY_SCHEDULER_REFRESH_AT (02:30 UTC by default) and stands aside when
-- it sees this job. cron.schedule() with an existing job name updates that job, so
-- re-running the migration elsewhere is harmless.
do $$
begin
    if exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
        perform cron.schedule(
            'dragonfly_refresh_enforcement_metrics',
            '30 2 * * *',
            'select public.refresh_enforcement_metrics()'
        );
    end if;
end
$$;
