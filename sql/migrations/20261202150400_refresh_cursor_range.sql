-- refresh_enforcement_metrics() steps: each starts at its cursor through the index, and
-- the default chunk is 250 cases.
--
-- Why: the cursor predicate of 20261202150000 was "p_after is null or id > p_after". After
-- five calls PL/pgSQL may switch a statement to a generic plan, and a generic plan cannot
-- turn that OR into an index range: every step then read the book from its first id up to
-- the cursor, so a pass cost grew with the square of the book (161 s at 100k cases, when
-- the first steps had cost a few milliseconds). "id > coalesce(p_after, <the nil uuid>)" is
-- one range in any plan. (The nil uuid sorts first; no row has it: ids are random v4.)
--
-- The chunk default drops from 1000 to 250 because a step's row locks are held until its
-- commit: on a loaded 2-core machine a 1000-case step that rewrote every case took about 2 s,
-- over the 1 s the console may wait; 250 keeps it well under, and the per-step overhead (the
-- cursor row, one function call) stays small beside the chunk's reads.

create or replace function enforcement_private.refresh_cases_chunk(
    p_after uuid,
    p_limit integer,
    p_now timestamptz,
    out scanned integer,
    out last_id uuid,
    out counts jsonb
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_ids uuid[];
    v_changing uuid[];
    v_wanted uuid[];
    v_locked uuid[];
begin
    v_ids := array(
        select c.id from public.enforcement_cases as c
         where c.closed_at is null
           and c.id > coalesce(p_after, '00000000-0000-0000-0000-000000000000'::uuid)
         order by c.id
         limit p_limit
    );
    scanned := pg_catalog.cardinality(v_ids);
    last_id := v_ids[scanned];
    if scanned = 0 then
        counts := '{}'::jsonb;
        return;
    end if;

    -- Only rows that would change (or resurface) are locked and written.
    select array_agg(t.id order by t.id) filter (where t.changes),
           array_agg(t.id order by t.id) filter (where t.changes or t.resurfaces)
      into v_changing, v_wanted
      from enforcement_private.refresh_case_targets(v_ids, p_now) as t;
    v_locked := enforcement_private.lock_cases_in_id_order(coalesce(v_wanted, '{}'));

    -- Computed again from the locked rows, which no one else can change now.
    with target as (
        select t.* from enforcement_private.refresh_case_targets(v_locked, p_now) as t
    ),
    updated as (
        update public.enforcement_cases as c
           set tier = t.new_tier,
               tier_reason = t.new_reason,
               tier_as_of = case
                   when (t.new_tier, t.new_reason) is distinct from (t.old_tier, t.old_reason) then p_now
                   else c.tier_as_of
               end,
               collectability_score = t.new_score,
               tier_override = t.new_override,
               override_expires_at = t.new_expires_at,
               override_note = t.new_note,
               next_action_at = t.new_next_action_at
          from target as t
         where t.id = c.id and t.changes
        returning c.id
    ),
    done as (
        select t.* from target as t join updated as u on u.id = t.id
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
            p_now,
            pg_catalog.jsonb_build_object(
                'from', d.old_tier, 'to', d.new_tier, 'reason', d.new_reason,
                'override_expired', d.override_expired
            ),
            'refresh_enforcement_metrics',
            pg_catalog.clock_timestamp()
        from done as d
        where d.new_tier is distinct from d.old_tier
        returning 1
    ),
    resurfaced as (
        -- Cases past their next action resurface once per due date.
        insert into public.enforcement_events (enforcement_case_id, event_kind, occurred_at, payload, actor, created_at)
        select
            t.id,
            'sla_resurfaced',
            p_now,
            pg_catalog.jsonb_build_object(
                'next_action_at', t.new_next_action_at,
                'stage', c.current_stage,
                'days_in_stage', pg_catalog.floor(extract(epoch from p_now - c.stage_entered_at) / 86400)::integer
            ),
            'refresh_enforcement_metrics',
            pg_catalog.clock_timestamp()
        from target as t
        join public.enforcement_cases as c on c.id = t.id
        where t.resurfaces
        returning 1
    )
    select pg_catalog.jsonb_build_object(
        'cases_changed', (select pg_catalog.count(*) from done),
        'tiers_changed', (select pg_catalog.count(*) from done as d where d.new_tier is distinct from d.old_tier),
        'overrides_expired', (select pg_catalog.count(*) from done as d where d.override_expired),
        'next_actions_set',
            (select pg_catalog.count(*) from done as d
              where d.old_next_action_at is null and d.new_next_action_at is not null),
        'skipped_locked',
            (select pg_catalog.count(*) from pg_catalog.unnest(coalesce(v_changing, '{}')) as w(id)
              where w.id <> all (v_locked)),
        'history_rows', (select pg_catalog.count(*) from history),
        'tier_events', (select pg_catalog.count(*) from events),
        'resurfaced', (select pg_catalog.count(*) from resurfaced)
    )
    into counts;
end;
$$;

comment on function enforcement_private.refresh_cases_chunk(uuid, integer, timestamptz) is
    'One cases step of refresh_enforcement_metrics(): the next p_limit open cases after p_after in id order; '
    'locks (in id order) and writes those whose tier, score, override or next action would change at p_now, '
    'with their history rows and tier_changed events, and resurfaces the overdue ones. Returns how many cases '
    'it read, the last id and its counts. Not callable over the API.';

revoke execute on function enforcement_private.refresh_cases_chunk(uuid, integer, timestamptz) from public;

create or replace function enforcement_private.refresh_pipeline_mirror_chunk(
    p_after uuid,
    p_limit integer,
    out scanned integer,
    out last_id uuid,
    out resynced integer
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_ids uuid[];
begin
    v_ids := array(
        select j.id from public.judgments as j
         where j.id > coalesce(p_after, '00000000-0000-0000-0000-000000000000'::uuid)
         order by j.id
         limit p_limit
    );
    scanned := pg_catalog.cardinality(v_ids);
    last_id := v_ids[scanned];
    -- Safety net for v_priority_pipeline's sort key: the judgments.collectability_tier mirror
    -- (kept by a trigger on judgments.cases) must equal the court case's tier.
    with drifted as (
        select j.id, cc.collectability_tier
          from public.judgments as j
          left join judgments.cases as cc on cc.judgment_id = j.id
         where j.id = any (v_ids)
           and j.collectability_tier is distinct from cc.collectability_tier
         order by j.id
           for no key update of j skip locked
    )
    update public.judgments as j
       set collectability_tier = d.collectability_tier
      from drifted as d
     where d.id = j.id;
    get diagnostics resynced = row_count;
end;
$$;

comment on function enforcement_private.refresh_pipeline_mirror_chunk(uuid, integer) is
    'One judgments step of refresh_enforcement_metrics(): re-syncs the pipeline tier mirror of the next '
    'p_limit judgments after p_after (id order, SKIP LOCKED) where it drifted from judgments.cases. Returns '
    'how many it read, the last id and how many it fixed. Not callable over the API.';

revoke execute on function enforcement_private.refresh_pipeline_mirror_chunk(uuid, integer) from public;

create or replace function public.refresh_enforcement_metrics()
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_now timestamptz := pg_catalog.now();
    v_budget integer;
    v_zero constant jsonb := pg_catalog.jsonb_build_object(
        'cases_changed', 0, 'tiers_changed', 0, 'overrides_expired', 0, 'next_actions_set', 0,
        'skipped_locked', 0, 'history_rows', 0, 'tier_events', 0, 'resurfaced', 0,
        'pipeline_tiers_resynced', 0, 'overview_totals_resynced', 0
    );
    v_progress enforcement_private.refresh_progress%rowtype;
    v_counts jsonb;
    v_scanned integer;
    v_last uuid;
    v_fixed integer;
begin
    begin
        v_budget := coalesce(nullif(pg_catalog.current_setting('dragonfly.refresh_chunk_size', true), ''), '250')::integer;
    exception when invalid_text_representation or numeric_value_out_of_range then
        v_budget := 0;
    end;
    if v_budget < 1 then
        raise exception 'refresh_enforcement_metrics: dragonfly.refresh_chunk_size must be a positive integer, got %',
            pg_catalog.current_setting('dragonfly.refresh_chunk_size', true)
            using errcode = '22023';
    end if;

    -- One step at a time: a second runner waits here for the step in flight (short), then
    -- continues the same pass.
    insert into enforcement_private.refresh_progress (pass_started_at, phase, totals, finished_at)
    values (v_now, 'finished', v_zero, v_now)
    on conflict (singleton) do nothing;
    select * into strict v_progress from enforcement_private.refresh_progress for update;
    if v_progress.phase = 'finished' then
        v_progress.pass_started_at := v_now;
        v_progress.phase := 'cases';
        v_progress.after_id := null;
        v_progress.totals := v_zero;
        v_progress.steps := 0;
        v_progress.finished_at := null;
    end if;

    while v_budget > 0 and v_progress.phase <> 'finished' loop
        if v_progress.phase = 'cases' then
            select c.scanned, c.last_id, c.counts into v_scanned, v_last, v_counts
              from enforcement_private.refresh_cases_chunk(v_progress.after_id, v_budget, v_now) as c;
            select pg_catalog.jsonb_object_agg(t.key, t.value::bigint + coalesce((v_counts ->> t.key)::bigint, 0))
              into v_progress.totals
              from pg_catalog.jsonb_each_text(v_progress.totals) as t;
        elsif v_progress.phase = 'judgments' then
            select m.scanned, m.last_id, m.resynced into v_scanned, v_last, v_fixed
              from enforcement_private.refresh_pipeline_mirror_chunk(v_progress.after_id, v_budget) as m;
            v_progress.totals := v_progress.totals || pg_catalog.jsonb_build_object(
                'pipeline_tiers_resynced', (v_progress.totals ->> 'pipeline_tiers_resynced')::bigint + v_fixed
            );
        else
            -- Safety net for v_enforcement_overview's totals: lock-free, one statement.
            v_progress.totals := v_progress.totals || pg_catalog.jsonb_build_object(
                'overview_totals_resynced', enforcement_private.resync_overview_rollup()
            );
            v_scanned := 1;
        end if;
        if v_progress.phase = 'totals' then
            v_progress.phase := 'finished';
            v_progress.finished_at := pg_catalog.clock_timestamp();
        elsif v_scanned < v_budget then
            -- The chunk came up short of what was asked: this phase is done.
            v_progress.phase := case v_progress.phase when 'cases' then 'judgments' else 'totals' end;
            v_progress.after_id := null;
        else
            v_progress.after_id := v_last;
        end if;
        v_budget := v_budget - greatest(v_scanned, 1);
    end loop;

    update enforcement_private.refresh_progress as p
       set pass_started_at = v_progress.pass_started_at,
           phase = v_progress.phase,
           after_id = v_progress.after_id,
           totals = v_progress.totals,
           steps = v_progress.steps + 1,
           finished_at = v_progress.finished_at,
           updated_at = pg_catalog.clock_timestamp()
     where p.singleton;

    return v_progress.totals || pg_catalog.jsonb_build_object('ran_at', v_progress.pass_started_at);
end;
$$;

comment on function public.refresh_enforcement_metrics() is
    'One step of the nightly maintenance pass over open cases (at most dragonfly.refresh_chunk_size cases or '
    'judgments, default 250): syncs collectability_score from judgments.cases, recalculates tier (unexpired '
    'override wins; else the score band), clears expired overrides with a history row, records tier changes '
    '(history + tier_changed event), fills missing next_action_at from the stage SLA, emits one sla_resurfaced '
    'event per passed due date; then re-syncs the pipeline tier mirror and the overview totals. Locks cases in '
    'id order, waiting at most dragonfly.refresh_lock_wait, else skips them. Resumes the pass where the last '
    'committed step stopped; returns the pass''s running counts (ran_at = when the pass began). Call until '
    'refresh_enforcement_metrics_progress() says finished, committing between calls '
    '(run_refresh_enforcement_metrics() does). Idempotent. Callable by dragonfly_worker and service_role.';

revoke execute on function public.refresh_enforcement_metrics() from public, anon, authenticated;
grant execute on function public.refresh_enforcement_metrics() to dragonfly_worker, service_role;
