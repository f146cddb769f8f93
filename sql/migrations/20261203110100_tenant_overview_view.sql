-- v_enforcement_overview per tenant: one row per (tenant_id, effective tier, stage), built from
-- the per-tenant totals (20261203110000), read per (tenant, stage) from an index that holds the
-- tenant.
--
-- Why: since tenants, every caller reads the cases of its own tenants only, and the overview
-- must never show another tenant's numbers. The view is security_invoker, so row-level
-- security already narrowed its case counts; what changes:
--   * tenant_id is a column (the last one; the spec's columns keep their places) and the
--     grouping key: a console for one tenant filters `tenant_id = ...`, a console for several
--     sums the rows by (tier, current_stage) (counts and balances add up, next_action_at is
--     the minimum, max_days_in_stage the maximum). The per-tier columns (tier_case_count,
--     tier_balance, tier_sla_breach_count) are per tenant and tier. Rows are ordered by
--     tenant_id, then tier rank and stage ordinal as before.
--   * the clock-dependent pass runs per (tenant, stage) over the tenants the caller sees in
--     public.tenants (its own policy, "Members see their tenants", is the cases' rule;
--     service_role and the owner see all of them): `c.tenant_id = vt.id and c.current_stage =
--     sc.stage` are two equalities an index can use whoever the caller is. Left to row-level
--     security alone, the caller's tenants were `tenant_id = any ($0)`, an array the planner
--     cannot see into (it assumes 10 elements and guesses the selectivity from that), and
--     service_role, which bypasses RLS, had no tenant condition at all;
--   * the exactness rule is the same, restated for the tenant key: a (tenant, tier, stage)
--     balance is taken from the totals only when the caller sees as many open cases of that
--     group as the tenant's totals count (visible rows are a subset, so equal counts mean the
--     same rows); otherwise it is summed from the visible rows. With the policies of
--     20261203110000 a caller who reads a tenant's cases reads its totals too, so the totals
--     are used; a narrower case policy (or none on the totals) falls back to the exact recount.
--     Totals of a tenant the caller does not reach are not even visible to the view. (The
--     overview covers the tenants the caller sees; a case policy wider than the tenants'
--     own, which no migration defines, would have to widen "Members see their tenants" too.)
--   * enforcement_cases_overview_idx is now (current_stage, tenant_id, tier, stage_entered_at)
--     include (next_action_at). The old key (current_stage, tier, stage_entered_at) held no
--     tenant, so the policy could not be checked in the index: the per-stage pass became a
--     heap fetch per open case, and a member of one tenant read every tenant's cases. Now each
--     (stage, tenant) is one index-only range read in tier order (a GroupAggregate, no sort),
--     and the policy's `tenant_id = any ($0)` is checked on the index tuples of that range
--     only: a tenant's read costs its own open cases, whatever the others hold. Stage first,
--     tenant second, so the policy's array is a filter rather than an index condition: as an
--     index condition on a leading column the planner prices it as ten descents, and on a
--     small or new table it then preferred a plain index with heap fetches (the equalities
--     above already bound the range). One index, not two: it serves the single-tenant case
--     the same way.

create or replace view public.v_enforcement_overview
with (security_invoker = true)
as
-- Three sources, so a read never sums every open case's balance (docs/rpc.md, "Views"):
--   * counts and balances of open cases without a tier override: the trigger-kept totals per
--     (tenant, tier, stage) (folded rows plus pending deltas), as far as the caller's policies
--     show them;
--   * what depends on the clock (SLA breaches, due cases, earliest next action, oldest stage
--     entry) and the caller's own count of those cases: one index-only range of
--     enforcement_cases_overview_idx per (visible tenant, stage), with the caller's row-level
--     security;
--   * open cases with a tier override (their effective tier expires with the clock):
--     aggregated directly, there are few.
-- A (tenant, tier, stage) balance comes from the totals only when the caller sees as many
-- open cases of the group as the totals count; otherwise it is summed from the visible rows
-- (exact for any case policy, just slower). That recount joins an empty set in the normal
-- case and costs nothing.
with stage_clock as (
    -- Per stage, the stage_entered_at before which an open case is past its SLA, so the
    -- per-row test below is one timestamp comparison.
    select
        s.stage,
        pg_catalog.now() - pg_catalog.make_interval(days => s.sla_days) as breached_if_entered_before
    from public.enforcement_stage_lookup as s
),
totals as (
    select
        t.tenant_id,
        t.tier,
        t.current_stage,
        pg_catalog.sum(t.case_count) as case_count,
        pg_catalog.sum(t.balance) as balance
    from (
        select r.tenant_id, r.tier, r.current_stage, r.case_count, r.balance
        from public.enforcement_overview_rollup as r
        union all
        select d.tenant_id, d.tier, d.current_stage, d.case_count, d.balance
        from public.enforcement_overview_rollup_deltas as d
    ) as t
    group by t.tenant_id, t.tier, t.current_stage
),
visible as (
    -- Open cases without an override, as the caller sees them, per tenant, stage and tier.
    select
        vt.id as tenant_id,
        l.tier,
        sc.stage as current_stage,
        l.case_count,
        l.sla_breach_count,
        l.due_count,
        l.next_action_at,
        l.oldest_stage_entered_at,
        t.case_count as total_case_count,
        t.balance as total_balance
    from public.tenants as vt
    cross join stage_clock as sc
    cross join lateral (
        select
            c.tier,
            pg_catalog.count(*) as case_count,
            pg_catalog.count(*) filter (where c.stage_entered_at < sc.breached_if_entered_before) as sla_breach_count,
            pg_catalog.count(*) filter (where c.next_action_at <= pg_catalog.now()) as due_count,
            pg_catalog.min(c.next_action_at) as next_action_at,
            pg_catalog.min(c.stage_entered_at) as oldest_stage_entered_at
        from public.enforcement_cases as c
        where c.closed_at is null
          and c.tier_override is null
          and c.current_stage = sc.stage
          and c.tenant_id = vt.id
        group by c.tier
    ) as l
    left join totals as t
      on t.tenant_id = vt.id and t.current_stage = sc.stage and t.tier is not distinct from l.tier
),
recounted as (
    -- Balances of the groups the totals cannot vouch for (normally none).
    select c.tenant_id, c.tier, c.current_stage, pg_catalog.sum(c.current_balance) as balance
    from public.enforcement_cases as c
    join visible as v
      on v.tenant_id = c.tenant_id
     and v.current_stage = c.current_stage
     and v.tier is not distinct from c.tier
     and v.total_case_count is distinct from v.case_count
    where c.closed_at is null and c.tier_override is null
    group by c.tenant_id, c.tier, c.current_stage
),
overridden as (
    -- Open cases with an override, grouped by tenant and their effective tier now.
    select
        c.tenant_id,
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
    group by 1, 2, 3
),
per_stage as (
    select
        g.tenant_id,
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
            v.tenant_id,
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
          on rc.tenant_id = v.tenant_id and rc.current_stage = v.current_stage and rc.tier is not distinct from v.tier
        union all
        select
            o.tenant_id,
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
    group by g.tenant_id, g.tier, g.current_stage
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
    pg_catalog.sum(ps.case_count) over (partition by ps.tenant_id, ps.tier)::bigint as tier_case_count,
    pg_catalog.sum(ps.stage_balance) over (partition by ps.tenant_id, ps.tier) as tier_balance,
    pg_catalog.sum(ps.sla_breach_count) over (partition by ps.tenant_id, ps.tier)::bigint as tier_sla_breach_count,
    ps.tenant_id
from per_stage as ps
join public.enforcement_stage_lookup as st on st.stage = ps.current_stage
left join public.enforcement_tier_lookup as t on t.tier = ps.tier
order by ps.tenant_id, t.rank nulls last, st.ordinal;

comment on view public.v_enforcement_overview is
    'Open enforcement cases per (tenant_id, effective tier, stage), of the tenants the caller reads: '
    'case_count, stage_balance (sum of current_balance), sla_breach_count (past stage SLA), due_count '
    '(next_action_at passed), earliest next_action_at, max_days_in_stage, and per-tenant, per-tier totals '
    '(tier_case_count, tier_balance, tier_sla_breach_count). Ordered by tenant_id, tier rank, stage ordinal; '
    'filter on tenant_id for one tenant, or sum the rows by (tier, current_stage) across tenants. Balances '
    'come from the trigger-kept enforcement_overview_rollup where the caller sees every case the tenant''s '
    'totals count, else from the visible rows. Readable by authenticated (members), enforcement_operator and '
    'service_role (security_invoker).';

-- The index with the tenant (see the header). Same name, so what refers to it by name (docs,
-- plan tests) keeps meaning the overview's index.
drop index public.enforcement_cases_overview_idx;

create index enforcement_cases_overview_idx
    on public.enforcement_cases (current_stage, tenant_id, tier, stage_entered_at)
    include (next_action_at)
    where closed_at is null and tier_override is null;
