-- v_enforcement_overview without a pass over the open cases: the clock-dependent counts come
-- from the day buckets (20261204100000), the exactness check from the policies and the
-- suspect mark (20261204100100). Same columns, same rows, same order as 20261203110100.
--
-- Why: the view read every open case of the caller's tenants once per call (an index-only
-- range per tenant and stage): 1.2 s at a million cases, worse after a night's writes. Now,
-- when tenancy.overview_totals_trusted() says the row-level security is the migrations' (so
-- a caller sees a tenant's totals and buckets exactly when it sees all its cases) and the
-- totals are not suspect (no trigger switched off since the last repair), a (tenant, tier,
-- stage) group is read from:
--   * the totals (case_count, stage_balance), as before, without the visible recount;
--   * the day buckets for SLA breaches and due cases. Both are "cases whose timestamp lies
--     before a cutoff C": breached is stage_entered_at < now() - sla_days(stage), due is
--     next_action_at <= now(), i.e. < now() + 1 µs (the timestamp's resolution), so both are
--     half-open. Every day before C's UTC day counts whole, from the buckets; of C's own day
--     only part counts, and that part is counted in the index: either [start of the day, C)
--     forward, or the whole day's bucket minus [C, end of the day) backward, whichever half of
--     the day is shorter. So a read costs the rows of the buckets (∝ days of history) plus at
--     most half a day's cases per group, whatever the book holds; on pages a night's writes
--     left unvacuumed only those index tuples need a heap fetch;
--   * one LIMIT-1 index probe per group for the earliest next action
--     (enforcement_cases_overview_action_idx) and the oldest stage entry
--     (enforcement_cases_overview_idx). Each probe and slice is an index range led by
--     (current_stage, tenant_id, tier), so the caller's tenant policy is checked on the index
--     tuples. An unscored group (tier null) cannot be reached by `tier = $1`, hence each probe
--     is written twice, `tier is null` and `tier = g.tier`; CASE runs only one of them.
-- Otherwise (any other row-level security, or suspect totals) the view takes the exact path
-- of 20261203110100 unchanged (per-row counts, totals only where the visible count matches).
-- The choice is an InitPlan: the path not taken is not executed (a one-time filter). Cases
-- with a tier override are aggregated directly on both paths, as before (few; their tier
-- follows the clock).
--
-- Days are UTC days: a bucket's day is `(ts at time zone 'UTC')::date`, the same expression
-- the triggers use, whatever the session's TimeZone. The SLA cutoff itself is computed as
-- before (`now() - make_interval(days => sla_days)`), so both paths agree to the microsecond.

create or replace view public.v_enforcement_overview
with (security_invoker = true)
as
with trusted as materialized (
    -- Asked once per read; each path below is gated on it by a one-time filter.
    select tenancy.overview_totals_trusted() as ok
),
stage_clock as (
    -- Per stage: the SLA cutoff (a case entered before it is past its SLA), and for both
    -- cutoffs (SLA and due) the UTC day it falls on and the half of that day to count in the
    -- index: forward [lo, hi) = [day start, cutoff), backward [lo, hi) = [cutoff, day end).
    select
        s.stage,
        e.cutoff as breached_if_entered_before,
        e.day as entered_day,
        e.forward as entered_forward,
        e.lo as entered_lo,
        e.hi as entered_hi,
        a.day as action_day,
        a.forward as action_forward,
        a.lo as action_lo,
        a.hi as action_hi
    from public.enforcement_stage_lookup as s
    cross join lateral (
        select
            w.cutoff,
            w.day,
            w.cutoff - w.day_start <= w.day_end - w.cutoff as forward,
            case when w.cutoff - w.day_start <= w.day_end - w.cutoff then w.day_start else w.cutoff end as lo,
            case when w.cutoff - w.day_start <= w.day_end - w.cutoff then w.cutoff else w.day_end end as hi
        from (
            select
                c.cutoff,
                (c.cutoff at time zone 'UTC')::date as day,
                ((c.cutoff at time zone 'UTC')::date)::timestamp at time zone 'UTC' as day_start,
                ((c.cutoff at time zone 'UTC')::date + 1)::timestamp at time zone 'UTC' as day_end
            from (select pg_catalog.now() - pg_catalog.make_interval(days => s.sla_days) as cutoff) as c
        ) as w
    ) as e
    cross join lateral (
        select
            w.day,
            w.cutoff - w.day_start <= w.day_end - w.cutoff as forward,
            case when w.cutoff - w.day_start <= w.day_end - w.cutoff then w.day_start else w.cutoff end as lo,
            case when w.cutoff - w.day_start <= w.day_end - w.cutoff then w.cutoff else w.day_end end as hi
        from (
            select
                c.cutoff,
                (c.cutoff at time zone 'UTC')::date as day,
                ((c.cutoff at time zone 'UTC')::date)::timestamp at time zone 'UTC' as day_start,
                ((c.cutoff at time zone 'UTC')::date + 1)::timestamp at time zone 'UTC' as day_end
            from (select pg_catalog.now() + interval '1 microsecond' as cutoff) as c
        ) as w
    ) as a
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
-- ---------------------------------------------------------------------------------------
-- The flat path: the policies are the migrations', the totals and buckets are the caller's.
flat_groups as (
    select t.tenant_id, t.tier, t.current_stage, t.case_count, t.balance
    from totals as t
    where t.case_count <> 0
      and (select tr.ok from trusted as tr)
),
flat_days as (
    -- Per group, the buckets before each cutoff's day and the cutoff's day itself.
    select
        b.tenant_id,
        b.tier,
        b.current_stage,
        pg_catalog.sum(b.entered_count) filter (where b.day < sc.entered_day) as entered_before,
        pg_catalog.sum(b.entered_count) filter (where b.day = sc.entered_day) as entered_on,
        pg_catalog.sum(b.action_count) filter (where b.day < sc.action_day) as action_before,
        pg_catalog.sum(b.action_count) filter (where b.day = sc.action_day) as action_on
    from (
        select r.tenant_id, r.tier, r.current_stage, r.day, r.entered_count, r.action_count
        from public.enforcement_overview_days as r
        union all
        select d.tenant_id, d.tier, d.current_stage, d.day, d.entered_count, d.action_count
        from public.enforcement_overview_days_deltas as d
    ) as b
    join stage_clock as sc on sc.stage = b.current_stage
    where b.day <= greatest(sc.entered_day, sc.action_day)
      and (select tr.ok from trusted as tr)
    group by b.tenant_id, b.tier, b.current_stage
),
flat as (
    select
        g.tenant_id,
        g.tier,
        g.current_stage,
        g.case_count,
        g.balance as stage_balance,
        case
            when sc.entered_forward then coalesce(fd.entered_before, 0) + p.entered_slice
            else coalesce(fd.entered_before, 0) + coalesce(fd.entered_on, 0) - p.entered_slice
        end as sla_breach_count,
        case
            when sc.action_forward then coalesce(fd.action_before, 0) + p.action_slice
            else coalesce(fd.action_before, 0) + coalesce(fd.action_on, 0) - p.action_slice
        end as due_count,
        p.next_action_at,
        p.oldest_stage_entered_at
    from flat_groups as g
    join stage_clock as sc on sc.stage = g.current_stage
    left join flat_days as fd
      on fd.tenant_id = g.tenant_id and fd.current_stage = g.current_stage and fd.tier is not distinct from g.tier
    cross join lateral (
        select
            case when g.tier is null then (
                select pg_catalog.count(*)
                from public.enforcement_cases as c
                where c.closed_at is null and c.tier_override is null
                  and c.current_stage = g.current_stage and c.tenant_id = g.tenant_id and c.tier is null
                  and c.stage_entered_at >= sc.entered_lo and c.stage_entered_at < sc.entered_hi
            ) else (
                select pg_catalog.count(*)
                from public.enforcement_cases as c
                where c.closed_at is null and c.tier_override is null
                  and c.current_stage = g.current_stage and c.tenant_id = g.tenant_id and c.tier = g.tier
                  and c.stage_entered_at >= sc.entered_lo and c.stage_entered_at < sc.entered_hi
            ) end as entered_slice,
            case when g.tier is null then (
                select pg_catalog.count(*)
                from public.enforcement_cases as c
                where c.closed_at is null and c.tier_override is null and c.next_action_at is not null
                  and c.current_stage = g.current_stage and c.tenant_id = g.tenant_id and c.tier is null
                  and c.next_action_at >= sc.action_lo and c.next_action_at < sc.action_hi
            ) else (
                select pg_catalog.count(*)
                from public.enforcement_cases as c
                where c.closed_at is null and c.tier_override is null and c.next_action_at is not null
                  and c.current_stage = g.current_stage and c.tenant_id = g.tenant_id and c.tier = g.tier
                  and c.next_action_at >= sc.action_lo and c.next_action_at < sc.action_hi
            ) end as action_slice,
            case when g.tier is null then (
                select c.next_action_at
                from public.enforcement_cases as c
                where c.closed_at is null and c.tier_override is null and c.next_action_at is not null
                  and c.current_stage = g.current_stage and c.tenant_id = g.tenant_id and c.tier is null
                order by c.next_action_at
                limit 1
            ) else (
                select c.next_action_at
                from public.enforcement_cases as c
                where c.closed_at is null and c.tier_override is null and c.next_action_at is not null
                  and c.current_stage = g.current_stage and c.tenant_id = g.tenant_id and c.tier = g.tier
                order by c.next_action_at
                limit 1
            ) end as next_action_at,
            case when g.tier is null then (
                select c.stage_entered_at
                from public.enforcement_cases as c
                where c.closed_at is null and c.tier_override is null
                  and c.current_stage = g.current_stage and c.tenant_id = g.tenant_id and c.tier is null
                order by c.stage_entered_at
                limit 1
            ) else (
                select c.stage_entered_at
                from public.enforcement_cases as c
                where c.closed_at is null and c.tier_override is null
                  and c.current_stage = g.current_stage and c.tenant_id = g.tenant_id and c.tier = g.tier
                order by c.stage_entered_at
                limit 1
            ) end as oldest_stage_entered_at
    ) as p
),
-- ---------------------------------------------------------------------------------------
-- The exact path (any other row-level security): 20261203110100's, unchanged.
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
    where not (select tr.ok from trusted as tr)
),
recounted as (
    -- Balances of the groups the totals cannot vouch for.
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
-- ---------------------------------------------------------------------------------------
-- Both paths: open cases with an override, grouped by tenant and their effective tier now.
overridden as (
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
            f.tenant_id,
            f.tier,
            f.current_stage,
            f.case_count,
            f.stage_balance,
            f.sla_breach_count,
            f.due_count,
            f.next_action_at,
            f.oldest_stage_entered_at
        from flat as f
        union all
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
    'filter on tenant_id for one tenant, or sum the rows by (tier, current_stage) across tenants. With the '
    'migrations'' row-level security (tenancy.overview_totals_trusted()) it reads the trigger-kept '
    'totals and day buckets plus a bounded slice of the index per group; under any other policy it counts the '
    'visible rows (exact, linear). Readable by authenticated (members), enforcement_operator and service_role '
    '(security_invoker).';
