-- refresh_enforcement_metrics() in short transactions: one bounded step per call, resumable.
--
-- Why: the refresh of 20261127002900 updated the whole book in one statement and one
-- transaction, and every case it changed stayed locked until it committed. At a million
-- cases after a re-scoring night that was close to three minutes, and every Ops Console RPC
-- on a re-scored case queued behind it.
--
-- Now a nightly pass is a sequence of steps, each its own short transaction:
--   1. cases: the open cases in id order, at most dragonfly.refresh_chunk_size (default
--      1000) per step; each step computes, locks (in id order), writes and advances the
--      pass's cursor;
--   2. judgments: the pipeline tier mirror checked and re-synced in id order, the same
--      number of judgments per step;
--   3. totals: the overview totals re-synced (lock-free, one statement).
-- The cursor (enforcement_private.refresh_progress) is written in the same transaction as
-- the step's changes, so a crash loses nothing and the next call resumes where the last
-- committed step stopped.
--
-- public.refresh_enforcement_metrics() keeps its name, signature and result (the spec's
-- nightly hook): each call runs ONE step (a book smaller than the chunk is one step, as
-- before) and returns the running totals of its pass. Whoever runs the pass calls it until
-- public.refresh_enforcement_metrics_progress() says the pass is finished, committing
-- between calls: public.run_refresh_enforcement_metrics() (a procedure, what pg_cron calls)
-- or the fleet scheduler (workers/scheduler/refresh.py, one autocommit call per step).
--
-- Lock order (docs/architecture.md, "Lock order"): a step locks the enforcement cases it
-- changes in id order, waiting at most dragonfly.refresh_lock_wait (default 200ms) for one;
-- if that runs out it skips the rows held by others instead (SKIP LOCKED; counted in
-- skipped_locked and done next night). So the refresh never holds a lock longer than one
-- step plus that wait, and never waits long on an RPC. The judgments step locks judgments in
-- id order, SKIP LOCKED; no step locks both.
--
-- No-op cost: a step only locks and writes the rows whose values would change (or that
-- resurface); the rest is one read of the chunk.

create table enforcement_private.refresh_progress (
    singleton boolean primary key default true check (singleton),
    pass_started_at timestamptz not null,
    phase text not null check (phase in ('cases', 'judgments', 'totals', 'finished')),
    after_id uuid,
    totals jsonb not null,
    steps integer not null default 0,
    finished_at timestamptz,
    updated_at timestamptz not null default pg_catalog.now()
);

comment on table enforcement_private.refresh_progress is
    'The one row of the current (or last) refresh_enforcement_metrics() pass: its phase (cases, judgments, '
    'totals, finished), the id after which the next step continues, the running totals and the step count. '
    'Written by each step in the transaction of its changes, so a pass resumes after a crash.';

revoke all on enforcement_private.refresh_progress from public;

-- ---------------------------------------------------------------------------------------
-- What a case should look like now (no locks; used to pick the rows to lock, then again on
-- the locked rows to write them).

create or replace function enforcement_private.refresh_case_targets(p_ids uuid[], p_now timestamptz)
returns table (
    id uuid,
    old_tier text,
    old_reason text,
    old_score numeric,
    old_override text,
    old_expires_at timestamptz,
    old_note text,
    old_next_action_at timestamptz,
    new_tier text,
    new_reason text,
    new_score numeric,
    new_override text,
    new_expires_at timestamptz,
    new_note text,
    new_next_action_at timestamptz,
    override_expired boolean,
    changes boolean,
    resurfaces boolean
)
language sql
stable
set search_path = ''
as $$
    with bands as (
        -- Each tier's score range, so a case finds its band with one range test.
        select t.tier, t.min_score, pg_catalog.lead(t.min_score) over (order by t.min_score) as below
          from public.enforcement_tier_lookup as t
         where t.min_score is not null
    ),
    computed as (
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
            coalesce(c.tier_override is not null and c.override_expires_at <= p_now, false) as override_expired,
            c.tier_override is not null
                and (c.override_expires_at is null or c.override_expires_at > p_now) as override_active,
            b.tier as band_tier,
            b.min_score as band_min_score,
            coalesce(
                c.next_action_at,
                c.stage_entered_at + pg_catalog.make_interval(days => s.sla_days)
            ) as new_next_action_at
        from public.enforcement_cases as c
        join public.enforcement_stage_lookup as s on s.stage = c.current_stage
        left join judgments.cases as cc on cc.judgment_id = c.judgment_id
        left join bands as b
          on coalesce(cc.collectability_score, c.collectability_score) >= b.min_score
         and (b.below is null or coalesce(cc.collectability_score, c.collectability_score) < b.below)
        where c.id = any (p_ids) and c.closed_at is null
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
    )
    select
        t.id,
        t.old_tier, t.old_reason, t.old_score, t.old_override, t.old_expires_at, t.old_note,
        t.old_next_action_at,
        t.new_tier, t.new_reason, t.new_score, t.new_override, t.new_expires_at, t.new_note,
        t.new_next_action_at,
        t.override_expired,
        (t.new_tier, t.new_reason, t.new_score, t.new_override, t.new_expires_at, t.new_note,
         t.new_next_action_at)
            is distinct from
        (t.old_tier, t.old_reason, t.old_score, t.old_override, t.old_expires_at, t.old_note,
         t.old_next_action_at) as changes,
        -- Past its next action and not resurfaced since that due date. A scalar subquery (one
        -- probe of enforcement_events_sla_resurfaced_idx per due case), not an anti-join the
        -- statistics of a busy night could mis-plan.
        t.new_next_action_at <= p_now
            and coalesce(
                (
                    select pg_catalog.max(e.occurred_at)
                      from public.enforcement_events as e
                     where e.enforcement_case_id = t.id
                       and e.event_kind = 'sla_resurfaced'
                ),
                '-infinity'::timestamptz
            ) < t.new_next_action_at as resurfaces
    from target as t
$$;

comment on function enforcement_private.refresh_case_targets(uuid[], timestamptz) is
    'For the given open cases: their refresh-relevant columns now, what refresh_enforcement_metrics() would '
    'set them to at p_now, whether that changes the row and whether the case resurfaces (past next_action_at, '
    'no sla_resurfaced event since). Reads only. Not callable over the API.';

revoke execute on function enforcement_private.refresh_case_targets(uuid[], timestamptz) from public;

-- ---------------------------------------------------------------------------------------
-- Locking in the documented order.

create or replace function enforcement_private.lock_cases_in_id_order(p_ids uuid[])
returns uuid[]
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_wait text := coalesce(nullif(pg_catalog.current_setting('dragonfly.refresh_lock_wait', true), ''), '200ms');
    v_lock_timeout text := pg_catalog.current_setting('lock_timeout');
    v_locked uuid[];
begin
    -- Wait a little for a row an RPC holds (RPCs are short), never long: the rows locked so
    -- far stay locked while waiting, and an RPC on one of them waits too.
    perform pg_catalog.set_config('lock_timeout', v_wait, true);
    begin
        v_locked := array(
            select c.id from public.enforcement_cases as c
             where c.id = any (p_ids)
             order by c.id
               for no key update
        );
    exception when lock_not_available then
        v_locked := null;  -- the locks of the attempt are released with its subtransaction
    end;
    perform pg_catalog.set_config('lock_timeout', v_lock_timeout, true);
    if v_locked is null then
        v_locked := array(
            select c.id from public.enforcement_cases as c
             where c.id = any (p_ids)
             order by c.id
               for no key update skip locked
        );
    end if;
    return v_locked;
end;
$$;

comment on function enforcement_private.lock_cases_in_id_order(uuid[]) is
    'Locks the given enforcement cases FOR NO KEY UPDATE in id order, waiting at most '
    'dragonfly.refresh_lock_wait (default 200ms) for a held row; if that runs out, locks only the free ones '
    '(SKIP LOCKED). Returns the ids locked. Not callable over the API.';

revoke execute on function enforcement_private.lock_cases_in_id_order(uuid[]) from public;

-- ---------------------------------------------------------------------------------------
-- The steps of a pass.

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
         where c.closed_at is null and (p_after is null or c.id > p_after)
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
         where p_after is null or j.id > p_after
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

-- ---------------------------------------------------------------------------------------
-- The spec's hook: one step of the pass per call.

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
        v_budget := coalesce(nullif(pg_catalog.current_setting('dragonfly.refresh_chunk_size', true), ''), '1000')::integer;
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
    'judgments, default 1000): syncs collectability_score from judgments.cases, recalculates tier (unexpired '
    'override wins; else the score band), clears expired overrides with a history row, records tier changes '
    '(history + tier_changed event), fills missing next_action_at from the stage SLA, emits one sla_resurfaced '
    'event per passed due date; then re-syncs the pipeline tier mirror and the overview totals. Locks cases in '
    'id order, waiting at most dragonfly.refresh_lock_wait, else skips them. Resumes the pass where the last '
    'committed step stopped; returns the pass''s running counts (ran_at = when the pass began). Call until '
    'refresh_enforcement_metrics_progress() says finished, committing between calls '
    '(run_refresh_enforcement_metrics() does). Idempotent. Callable by dragonfly_worker and service_role.';

revoke execute on function public.refresh_enforcement_metrics() from public, anon, authenticated;
grant execute on function public.refresh_enforcement_metrics() to dragonfly_worker, service_role;

create or replace function public.refresh_enforcement_metrics_progress()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(
        (
            select pg_catalog.jsonb_build_object(
                'phase', p.phase, 'finished', p.phase = 'finished', 'after_id', p.after_id,
                'pass_started_at', p.pass_started_at, 'finished_at', p.finished_at, 'steps', p.steps,
                'totals', p.totals
            )
              from enforcement_private.refresh_progress as p
        ),
        pg_catalog.jsonb_build_object('phase', 'finished', 'finished', true)
    )
$$;

comment on function public.refresh_enforcement_metrics_progress() is
    'Where the refresh_enforcement_metrics() pass stands: phase (cases, judgments, totals, finished), finished, '
    'after_id (the cursor), pass_started_at, finished_at, steps and the running totals. Callable by '
    'dragonfly_worker and service_role.';

revoke execute on function public.refresh_enforcement_metrics_progress() from public, anon, authenticated;
grant execute on function public.refresh_enforcement_metrics_progress() to dragonfly_worker, service_role;

-- A procedure, because only a procedure can commit between steps. SECURITY INVOKER and no
-- SET clause, because PostgreSQL refuses COMMIT in a procedure with either; every name is
-- qualified, and the work runs inside the SECURITY DEFINER function it calls.
create or replace procedure public.run_refresh_enforcement_metrics(inout result jsonb default null)
language plpgsql
as $$
begin
    loop
        result := public.refresh_enforcement_metrics();
        commit;
        exit when (public.refresh_enforcement_metrics_progress() ->> 'finished')::boolean;
    end loop;
end;
$$;

comment on procedure public.run_refresh_enforcement_metrics(jsonb) is
    'Runs a whole refresh_enforcement_metrics() pass, committing after every step (so no lock is held for '
    'longer than one step); returns the pass''s counts. CALL it outside a transaction block. What pg_cron '
    'schedules. Callable by dragonfly_worker and service_role.';

revoke execute on procedure public.run_refresh_enforcement_metrics(jsonb) from public, anon, authenticated;
grant execute on procedure public.run_refresh_enforcement_metrics(jsonb) to dragonfly_worker, service_role;

-- pg_cron (Supabase) runs the whole pass with commits between steps; same job name, so this
-- replaces the single-call schedule of 20261127002900.
do $$
begin
    if exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
        perform cron.schedule(
            'dragonfly_refresh_enforcement_metrics',
            '30 2 * * *',
            'call public.run_refresh_enforcement_metrics()'
        );
    end if;
end
$$;
