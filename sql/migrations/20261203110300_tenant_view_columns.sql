-- The tenant as a column of the per-case and per-judgment views: v_enforcement_recent,
-- v_collectability_snapshot and v_case_copilot_latest end with tenant_id.
--
-- Why: a console (or a service-side tool) that works for several tenants has to tell their
-- rows apart and filter on one; the views were built before tenants and said nothing about
-- them. Row-level security already decides which rows a caller gets (all three are
-- security_invoker): a signed-in member sees the cases and judgments of their tenants only
-- (20261203090000). The column adds no reach, only the label.
--   * v_enforcement_recent, v_collectability_snapshot: the case's and the judgment's tenant;
--     read by members, enforcement_operator and service_role.
--   * v_case_copilot_latest: the case's tenant. The view stays service_role only (Copilot
--     output is internal, docs/copilot.md); service_role bypasses row-level security and reads
--     every tenant's briefs, so a service-side reader acting for one tenant filters on it.
--   * v_enforcement_timeline is read for one case_id (its tenant is the case's) and keeps its
--     columns. v_enforcement_overview and v_priority_pipeline got theirs in 20261203110100 and
--     20261203110200.
-- The column is the last one, so every existing column keeps its place (`create or replace`,
-- the views' grants stay as they are). Definitions otherwise unchanged from 20261127002800
-- and 20261127005500.

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
    c.updated_at as last_changed_at,
    c.tenant_id
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
    'event; last_changed_at is the case row''s updated_at; tenant_id the case''s tenant. Readable by '
    'authenticated (members, their tenants), enforcement_operator and service_role (security_invoker).';

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
    ) as tier_overridden,
    j.tenant_id
from public.judgments as j
left join judgments.cases as cc on cc.judgment_id = j.id
left join public.enforcement_cases as ec on ec.judgment_id = j.id and ec.closed_at is null;

comment on view public.v_collectability_snapshot is
    'One row per judgment: its court case''s collectability score, tier and score breakdown, the open '
    'enforcement case''s id, stage and effective tier, and the judgment''s tenant_id. Readable by '
    'authenticated (members, their tenants), enforcement_operator and service_role (security_invoker).';

create or replace view public.v_case_copilot_latest
with (security_invoker = true)
as
select distinct on (o.enforcement_case_id)
    o.enforcement_case_id as case_id,
    jc.case_number,
    o.id as output_id,
    o.backend,
    o.model,
    o.version,
    o.latency_ms,
    o.brief ->> 'summary' as summary,
    o.brief,
    o.requested_by,
    o.created_at,
    ec.tenant_id
from public.case_copilot_outputs as o
join public.enforcement_cases as ec on ec.id = o.enforcement_case_id
left join judgments.cases as jc on jc.judgment_id = ec.judgment_id
order by o.enforcement_case_id, o.created_at desc, o.id desc;

comment on view public.v_case_copilot_latest is
    'The newest Case Copilot brief per enforcement case (case_id), with its case number, backend, '
    'model, version, latency and the case''s tenant_id. service_role only: Copilot output stays internal '
    '(service_role reads every tenant; filter on tenant_id to act for one).';
