-- The Ops Console's read models: overview, recent cases, the per-case timeline, the
-- collectability snapshot and the ranked priority pipeline.
--
-- Why security_invoker: every view reads protected tables, so it must apply the caller's
-- rights and row-level security, not its owner's; a view that ran as its owner would hand
-- every row to whoever may select from it.
--
-- Shared definitions (docs/rpc-enforcement.md):
--   effective tier   tier_override while set and not past override_expires_at, else tier.
--   days_in_stage    whole days since stage_entered_at.
--   sla_due_at       stage_entered_at + the stage's sla_days (null for terminal stages).
--   SLA breach       an open case whose sla_due_at has passed.
--   priority order   urgent, high, normal, low, on_hold.

create or replace view public.v_enforcement_overview
with (security_invoker = true)
as
-- Three sources, so a read never sums every open case's balance (docs/rpc-enforcement.md,
-- "Performance"):
--   * counts and balances of open cases without a tier override: the trigger-kept totals
--     of migration 20261127002790 (folded rows plus pending deltas);
--   * what depends on the clock (SLA breaches, due cases, earliest next action, oldest
--     stage entry) and the caller's own count of those cases: one index-only pass per
--     stage over enforcement_cases_overview_idx, with the caller's row-level security;
--   * open cases with a tier override (their effective tier expires with the clock):
--     aggregated directly, there are few.
-- A (tier, stage) balance comes from the totals only when the caller sees as many open
-- cases of the group as the totals count (the visible rows are a subset, so then they are
-- the same rows); otherwise it is summed from the visible rows (exact for any case policy,
-- just slower). That recount joins an empty set in the normal case and costs nothing.
with stage_clock as (
    -- Per stage, the stage_entered_at before which an open case is past its SLA, so the
    -- per-row test below is one timestamp comparison.
    select
        s.stage,
        pg_catalog.now() - pg_catalog.make_interval(days => s.sla_days) as breached_if_entered_before
    from public.enforcement_stage_lookup as s
),
totals as (
    select t.tier, t.current_stage, pg_catalog.sum(t.case_count) as case_count, pg_catalog.sum(t.balance) as balance
    from (
        select r.tier, r.current_stage, r.case_count, r.balance
        from public.enforcement_overview_rollup as r
        union all
        select d.tier, d.current_stage, d.case_count, d.balance
        from public.enforcement_overview_rollup_deltas as d
    ) as t
    group by t.tier, t.current_stage
),
visible as (
    -- Open cases without an override, as the caller sees them, per stage and tier.
    select
        l.tier,
        sc.stage as current_stage,
        l.case_count,
        l.sla_breach_count,
        l.due_count,
        l.next_action_at,
        l.oldest_stage_entered_at,
        t.case_count as total_case_count,
        t.balance as total_balance
    from stage_clock as sc
    cross join lateral (
        select
            c.tier,
            pg_catalog.count(*) as case_count,
            pg_catalog.count(*) filter (where c.stage_entered_at < sc.breached_if_entered_before) as sla_breach_count,
            pg_catalog.count(*) filter (where c.next_action_at <= pg_catalog.now()) as due_count,
            pg_catalog.min(c.next_action_at) as next_action_at,
            pg_catalog.min(c.stage_entered_at) as oldest_stage_entered_at
        from public.enforcement_cases as c
        where c.closed_at is null and c.tier_override is null and c.current_stage = sc.stage
        group by c.tier
    ) as l
    left join totals as t on t.current_stage = sc.stage and t.tier is not distinct from l.tier
),
recounted as (
    -- Balances of the groups the totals cannot vouch for (normally none).
    select c.tier, c.current_stage, pg_catalog.sum(c.current_balance) as balance
    from public.enforcement_cases as c
    join visible as v
      on v.current_stage = c.current_stage
     and v.tier is not distinct from c.tier
     and v.total_case_count is distinct from v.case_count
    where c.closed_at is null and c.tier_override is null
    group by c.tier, c.current_stage
),
overridden as (
    -- Open cases with an override, grouped by their effective tier now.
    select
        case
            when c.override_expires_at is null or c.override_expires_at > pg_catalog.now()
                then c.tier_override
            else c.tier
        end as tier,
        c.current_stage,
        pg_catalog.count(*) as case_count,
        pg_catalog.sum(c.current_balance) as stage_balance,
        pg_catalog.count(*) filter (where c.stage_entered_at < sc.breached_if_entered_before) as sla_breach_count,
        pg_catalog.count(*) filter (where c.next_action_at <= pg_catalog.now()) as due_count,
        pg_catalog.min(c.next_action_at) as next_action_at,
        pg_catalog.min(c.stage_entered_at) as oldest_stage_entered_at
    from public.enforcement_cases as c
    join stage_clock as sc on sc.stage = c.current_stage
    where c.closed_at is null and c.tier_override is not null
    group by 1, 2
),
per_stage as (
    select
        g.tier,
        g.current_stage,
        pg_catalog.sum(g.case_count)::bigint as case_count,
        pg_catalog.sum(g.stage_balance) as stage_balance,
        pg_catalog.sum(g.sla_breach_count)::bigint as sla_breach_count,
        pg_catalog.sum(g.due_count)::bigint as due_count,
        pg_catalog.min(g.next_action_at) as next_action_at,
        pg_catalog.min(g.oldest_stage_entered_at) as oldest_stage_entered_at
    from (
        select
            v.tier,
            v.current_stage,
            v.case_count,
            case when v.total_case_count = v.case_count then v.total_balance else rc.balance end as stage_balance,
            v.sla_breach_count,
            v.due_count,
            v.next_action_at,
            v.oldest_stage_entered_at
        from visible as v
        left join recounted as rc
          on rc.current_stage = v.current_stage and rc.tier is not distinct from v.tier
        union all
        select
            o.tier,
            o.current_stage,
            o.case_count,
            o.stage_balance,
            o.sla_breach_count,
            o.due_count,
            o.next_action_at,
            o.oldest_stage_entered_at
        from overridden as o
    ) as g
    group by g.tier, g.current_stage
)
select
    ps.tier,
    ps.current_stage,
    ps.case_count,
    ps.stage_balance,
    ps.sla_breach_count,
    ps.due_count,
    ps.next_action_at,
    pg_catalog.floor(
        extract(epoch from pg_catalog.now() - ps.oldest_stage_entered_at) / 86400
    )::integer as max_days_in_stage,
    pg_catalog.sum(ps.case_count) over (partition by ps.tier)::bigint as tier_case_count,
    pg_catalog.sum(ps.stage_balance) over (partition by ps.tier) as tier_balance,
    pg_catalog.sum(ps.sla_breach_count) over (partition by ps.tier)::bigint as tier_sla_breach_count
from per_stage as ps
join public.enforcement_stage_lookup as st on st.stage = ps.current_stage
left join public.enforcement_tier_lookup as t on t.tier = ps.tier
order by t.rank nulls last, st.ordinal;

comment on view public.v_enforcement_overview is
    'Open enforcement cases per (effective tier, stage): case_count, stage_balance (sum of current_balance), '
    'sla_breach_count (past stage SLA), due_count (next_action_at passed), earliest next_action_at, '
    'max_days_in_stage, and per-tier totals (tier_case_count, tier_balance, tier_sla_breach_count). Ordered by '
    'tier rank then stage ordinal. Balances come from the trigger-kept enforcement_overview_rollup where the '
    'caller sees every case the rollup counts, else from the visible rows. Readable by enforcement_operator '
    'and service_role (security_invoker).';

revoke all on public.v_enforcement_overview from public, anon, authenticated, service_role;
grant select on public.v_enforcement_overview to enforcement_operator, service_role;

create or replace view public.v_enforcement_recent
with (security_invoker = true)
as
select
    c.id as case_id,
    c.judgment_id,
    c.plaintiff_id,
    p.name as plaintiff_name,
    case
        when c.tier_override is not null
             and (c.override_expires_at is null or c.override_expires_at > pg_catalog.now())
            then c.tier_override
        else c.tier
    end as tier,
    c.tier_override is not null
        and (c.override_expires_at is null or c.override_expires_at > pg_catalog.now()) as tier_overridden,
    c.current_stage,
    c.stage_entered_at,
    pg_catalog.floor(extract(epoch from pg_catalog.now() - c.stage_entered_at) / 86400)::integer as days_in_stage,
    c.next_action_at,
    c.stage_entered_at + pg_catalog.make_interval(days => s.sla_days) as sla_due_at,
    coalesce(
        c.closed_at is null
            and c.stage_entered_at + pg_catalog.make_interval(days => s.sla_days) < pg_catalog.now(),
        false
    ) as sla_breached,
    c.current_balance,
    c.levy_status,
    c.garnishment_status,
    c.marshal_status,
    c.asset_flags,
    last_event.event_kind as last_event_kind,
    last_event.occurred_at as last_event_at,
    c.opened_at,
    c.closed_at,
    c.closure_reason,
    c.updated_at as last_changed_at
from public.enforcement_cases as c
join public.enforcement_stage_lookup as s on s.stage = c.current_stage
join public.plaintiffs as p on p.id = c.plaintiff_id
left join lateral (
    select e.event_kind, e.occurred_at
      from public.enforcement_events as e
     where e.enforcement_case_id = c.id
     order by e.occurred_at desc, e.created_at desc
     limit 1
) as last_event on true
order by c.updated_at desc, c.id;

comment on view public.v_enforcement_recent is
    'Enforcement cases, most recently changed first: effective tier, current_stage, days_in_stage, '
    'next_action_at, sla_due_at / sla_breached, balance, workflow statuses, asset flags and the latest '
    'event; last_changed_at is the case row''s updated_at. Readable by enforcement_operator and '
    'service_role (security_invoker).';

revoke all on public.v_enforcement_recent from public, anon, authenticated, service_role;
grant select on public.v_enforcement_recent to enforcement_operator, service_role;

create or replace view public.v_enforcement_timeline
with (security_invoker = true)
as
select
    h.enforcement_case_id as case_id,
    h.created_at as occurred_at,
    h.created_at as recorded_at,
    'history'::text as entry_type,
    h.id as entry_id,
    h.action as kind,
    null::text as status,
    h.actor,
    null::text as document_path,
    null::uuid as related_task_id,
    pg_catalog.jsonb_build_object('actor_type', h.actor_type, 'delta', h.delta, 'note', h.note) as details
from public.enforcement_history as h
union all
select
    e.enforcement_case_id,
    e.occurred_at,
    e.created_at,
    'event',
    e.id,
    e.event_kind::text,
    null,
    e.actor,
    e.document_path,
    e.related_task_id,
    e.payload
from public.enforcement_events as e
union all
select
    t.enforcement_case_id,
    t.created_at,
    t.created_at,
    'task',
    t.id,
    t.kind,
    t.status,
    t.created_by,
    null,
    null,
    pg_catalog.jsonb_build_object(
        'due_at', t.due_at, 'closed_at', t.closed_at, 'closed_by', t.closed_by,
        'assigned_to', t.assigned_to, 'metadata', t.metadata, 'result', t.result
    )
from public.plaintiff_tasks as t
where t.enforcement_case_id is not null
union all
select
    a.enforcement_case_id,
    a.opened_at,
    a.opened_at,
    'action',
    a.id,
    a.action_type,
    a.status,
    a.created_by,
    null,
    null,
    pg_catalog.jsonb_build_object(
        'status_reason', a.status_reason, 'closed_at', a.closed_at, 'updated_by', a.updated_by,
        'metadata', a.metadata
    )
from public.enforcement_actions as a
-- Within one instant (one transaction), events keep their recording order (clock time).
order by case_id, occurred_at, recorded_at, entry_type, entry_id;

comment on view public.v_enforcement_timeline is
    'One chronological stream per case: history rows, events, the case''s tasks (at creation, with current '
    'status) and actions (at opening, with current status). Columns: case_id, occurred_at, recorded_at, '
    'entry_type (history | event | task | action), entry_id, kind, status, actor, document_path, '
    'related_task_id, details. Filter on case_id. Readable by enforcement_operator and service_role (security_invoker).';

revoke all on public.v_enforcement_timeline from public, anon, authenticated, service_role;
grant select on public.v_enforcement_timeline to enforcement_operator, service_role;

create or replace view public.v_collectability_snapshot
with (security_invoker = true)
as
select
    j.id as judgment_id,
    cc.id as court_case_id,
    cc.case_number,
    cc.collectability_score,
    cc.collectability_tier,
    cc.identity_score,
    cc.contactability_score,
    cc.asset_score,
    cc.recency_amount_score,
    cc.adverse_penalty,
    cc.last_scored_at,
    cc.last_enriched_at,
    ec.id as enforcement_case_id,
    ec.current_stage as enforcement_stage,
    case
        when ec.tier_override is not null
             and (ec.override_expires_at is null or ec.override_expires_at > pg_catalog.now())
            then ec.tier_override
        else ec.tier
    end as enforcement_tier,
    coalesce(
        ec.tier_override is not null
            and (ec.override_expires_at is null or ec.override_expires_at > pg_catalog.now()),
        false
    ) as tier_overridden
from public.judgments as j
left join judgments.cases as cc on cc.judgment_id = j.id
left join public.enforcement_cases as ec on ec.judgment_id = j.id and ec.closed_at is null;

comment on view public.v_collectability_snapshot is
    'One row per judgment: its court case''s collectability score, tier and score breakdown, and the open enforcement case''s id, stage and effective tier. Readable by '
    'enforcement_operator and service_role (security_invoker).';

revoke all on public.v_collectability_snapshot from public, anon, authenticated, service_role;
grant select on public.v_collectability_snapshot to enforcement_operator, service_role;

create or replace view public.v_priority_pipeline
with (security_invoker = true)
as
select
    p.name as plaintiff_name,
    j.id as judgment_id,
    j.collectability_tier,
    j.priority_level,
    j.judgment_amount,
    j.county,
    j.state,
    s.enforcement_stage as stage,
    p.status::text as plaintiff_status,
    pg_catalog.row_number() over (
        partition by j.collectability_tier
        order by
            case j.priority_level
                when 'urgent' then 0 when 'high' then 1 when 'normal' then 2 when 'low' then 3 else 4
            end,
            j.judgment_amount desc,
            j.id
    ) as tier_rank
from public.judgments as j
join public.plaintiffs as p on p.id = j.plaintiff_id
join public.v_collectability_snapshot as s on s.judgment_id = j.id
where j.status = 'active'
-- The window's own keys, which is the same order as (collectability_tier, tier_rank) and
-- lets judgments_priority_pipeline_idx feed the window and the LIMIT without a sort.
order by
    j.collectability_tier,
    case j.priority_level
        when 'urgent' then 0 when 'high' then 1 when 'normal' then 2 when 'low' then 3 else 4
    end,
    j.judgment_amount desc,
    j.id;

comment on view public.v_priority_pipeline is
    'The ranked work list of active judgments: plaintiff_name, judgment_id, collectability_tier (the court '
    'case''s, as in v_collectability_snapshot), priority_level, judgment_amount, county, state, stage (of the '
    'open enforcement case), plaintiff_status, tier_rank (1 = first within its collectability tier, by '
    'priority urgent > high > normal > low > on_hold, then judgment_amount descending, then judgment_id). '
    'Ordered by collectability_tier (tier0 first, unscored last) then tier_rank. Readable by '
    'enforcement_operator and service_role (security_invoker).';

revoke all on public.v_priority_pipeline from public, anon, authenticated, service_role;
grant select on public.v_priority_pipeline to enforcement_operator, service_role;

-- v_enforcement_recent reads the most recently changed cases first.
create index enforcement_cases_updated_at_idx on public.enforcement_cases (updated_at desc, id);

-- v_enforcement_overview's clock-dependent figures: one index-only pass per stage over the
-- open cases without a tier override (the rows the trigger-kept totals count), grouped by
-- tier in index order, reading only stage_entered_at and next_action_at. The balances come
-- from the totals, so current_balance is not in the index.
create index enforcement_cases_overview_idx
    on public.enforcement_cases (current_stage, tier, stage_entered_at)
    include (next_action_at)
    where closed_at is null and tier_override is null;
