-- v_enforcement_overview counts the cutoff's day by the hour: the days before each cutoff's UTC
-- day from the day buckets (20261204100000), that day's hours before the cutoff's hour from the
-- hour buckets (20261205200000), and only the cutoff's own hour from the cases' index. Same
-- columns, rows and order as 20261204100200, whose comments hold for everything else (the
-- trusted check, the probes, the exact path, the overrides).
--
-- Why: the index slice was up to half a UTC day of cases per group; at a million cases that is
-- thousands of tuples a read, each a heap fetch on pages a night's writes left unvacuumed. Now a
-- slice is at most half an hour, so a read costs the rows of the day buckets (∝ days of
-- history), at most 24 hour buckets per group and cutoff (one index range on
-- enforcement_overview_hours_key), and a few hundred index tuples however big the book.
--
-- Per group and cutoff C (day D, hour H = the UTC hour C falls in), the count of cases whose
-- timestamp is before C is
--     days before D  +  hours of D before H  +  slice,
-- where the slice is [H, C) counted forward in the index, or the hour bucket of H minus
-- [C, H + 1 hour) counted backward, whichever half of the hour is shorter. Pending deltas of the
-- hours are read in one pass (they are few) and added per group.

create or replace view public.v_enforcement_overview
with (security_invoker = true)
as
with trusted as materialized (
    -- Asked once per read; each path below is gated on it by a one-time filter.
    select tenancy.overview_totals_trusted() as ok
),
stage_clock as (
    -- Per stage: the SLA cutoff (a case entered before it is past its SLA), and for both
    -- cutoffs (SLA and due) its UTC day, the start of that day and of the cutoff's UTC hour, and
    -- the half of that hour to count in the index: forward [lo, hi) = [hour start, cutoff),
    -- backward [lo, hi) = [cutoff, hour end).
    select
        s.stage,
        e.cutoff as breached_if_entered_before,
        e.day as entered_day,
        e.day_start as entered_day_start,
        e.hour_start as entered_hour,
        e.forward as entered_forward,
        e.lo as entered_lo,
        e.hi as entered_hi,
        a.day as action_day,
        a.day_start as action_day_start,
        a.hour_start as action_hour,
        a.forward as action_forward,
        a.lo as action_lo,
        a.hi as action_hi
    from public.enforcement_stage_lookup as s
    cross join lateral (
        select
            w.cutoff,
            w.day,
            w.day_start,
            w.hour_start,
            w.cutoff - w.hour_start <= w.hour_end - w.cutoff as forward,
            case when w.cutoff - w.hour_start <= w.hour_end - w.cutoff then w.hour_start else w.cutoff end as lo,
            case when w.cutoff - w.hour_start <= w.hour_end - w.cutoff then w.cutoff else w.hour_end end as hi
        from (
            select
                c.cutoff,
                (c.cutoff at time zone 'UTC')::date as day,
                ((c.cutoff at time zone 'UTC')::date)::timestamp at time zone 'UTC' as day_start,
                pg_catalog.date_trunc('hour', c.cutoff at time zone 'UTC') at time zone 'UTC' as hour_start,
                (pg_catalog.date_trunc('hour', c.cutoff at time zone 'UTC') + interval '1 hour') at time zone 'UTC'
                    as hour_end
            from (select pg_catalog.now() - pg_catalog.make_interval(days => s.sla_days) as cutoff) as c
        ) as w
    ) as e
    cross join lateral (
        select
            w.day,
            w.day_start,
            w.hour_start,
            w.cutoff - w.hour_start <= w.hour_end - w.cutoff as forward,
            case when w.cutoff - w.hour_start <= w.hour_end - w.cutoff then w.hour_start else w.cutoff end as lo,
            case when w.cutoff - w.hour_start <= w.hour_end - w.cutoff then w.cutoff else w.hour_end end as hi
        from (
            select
                c.cutoff,
                (c.cutoff at time zone 'UTC')::date as day,
                ((c.cutoff at time zone 'UTC')::date)::timestamp at time zone 'UTC' as day_start,
                pg_catalog.date_trunc('hour', c.cutoff at time zone 'UTC') at time zone 'UTC' as hour_start,
                (pg_catalog.date_trunc('hour', c.cutoff at time zone 'UTC') + interval '1 hour') at time zone 'UTC'
                    as hour_end
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
flat_groups as materialized (
    -- Materialized so that tier_key is a column of it: an index condition on a table under
    -- row-level security must be leakproof, and one with a COALESCE in it is not taken as such
    -- (it would be a filter after the group's every hour row).
    select t.tenant_id, t.tier, coalesce(t.tier, '') as tier_key, t.current_stage, t.case_count, t.balance
    from totals as t
    where t.case_count <> 0
      and (select tr.ok from trusted as tr)
),
flat_days as (
    -- Per group, the day buckets before each cutoff's day.
    select
        b.tenant_id,
        b.tier,
        b.current_stage,
        pg_catalog.sum(b.entered_count) filter (where b.day < sc.entered_day) as entered_before,
        pg_catalog.sum(b.action_count) filter (where b.day < sc.action_day) as action_before
    from (
        select r.tenant_id, r.tier, r.current_stage, r.day, r.entered_count, r.action_count
        from public.enforcement_overview_days as r
        union all
        select d.tenant_id, d.tier, d.current_stage, d.day, d.entered_count, d.action_count
        from public.enforcement_overview_days_deltas as d
    ) as b
    join stage_clock as sc on sc.stage = b.current_stage
    where b.day < greatest(sc.entered_day, sc.action_day)
      and (select tr.ok from trusted as tr)
    group by b.tenant_id, b.tier, b.current_stage
),
pending_hours as (
    -- Per group, the pending hour deltas of each cutoff's day: the hours before the cutoff's
    -- hour, and that hour. One pass over the deltas; the folded hours are probed per group below.
    select
        d.tenant_id,
        d.tier,
        d.current_stage,
        pg_catalog.sum(d.entered_count) filter (
            where d.hour >= sc.entered_day_start and d.hour < sc.entered_hour
        ) as entered_before,
        pg_catalog.sum(d.entered_count) filter (where d.hour = sc.entered_hour) as entered_on,
        pg_catalog.sum(d.action_count) filter (
            where d.hour >= sc.action_day_start and d.hour < sc.action_hour
        ) as action_before,
        pg_catalog.sum(d.action_count) filter (where d.hour = sc.action_hour) as action_on
    from public.enforcement_overview_hours_deltas as d
    join stage_clock as sc on sc.stage = d.current_stage
    where (
            (d.hour >= sc.entered_day_start and d.hour <= sc.entered_hour)
            or (d.hour >= sc.action_day_start and d.hour <= sc.action_hour)
          )
      and (select tr.ok from trusted as tr)
    group by d.tenant_id, d.tier, d.current_stage
),
flat as (
    select
        g.tenant_id,
        g.tier,
        g.current_stage,
        g.case_count,
        g.balance as stage_balance,
        coalesce(fd.entered_before, 0) + coalesce(eh.hours_before, 0) + coalesce(ph.entered_before, 0)
        + case
            when sc.entered_forward then p.entered_slice
            else coalesce(eh.hour_on, 0) + coalesce(ph.entered_on, 0) - p.entered_slice
          end as sla_breach_count,
        coalesce(fd.action_before, 0) + coalesce(ah.hours_before, 0) + coalesce(ph.action_before, 0)
        + case
            when sc.action_forward then p.action_slice
            else coalesce(ah.hour_on, 0) + coalesce(ph.action_on, 0) - p.action_slice
          end as due_count,
        p.next_action_at,
        p.oldest_stage_entered_at
    from flat_groups as g
    join stage_clock as sc on sc.stage = g.current_stage
    left join flat_days as fd
      on fd.tenant_id = g.tenant_id and fd.current_stage = g.current_stage and fd.tier is not distinct from g.tier
    left join pending_hours as ph
      on ph.tenant_id = g.tenant_id and ph.current_stage = g.current_stage and ph.tier is not distinct from g.tier
    -- The folded hours of each cutoff's day, up to and including the cutoff's hour: one range
    -- of enforcement_overview_hours_key per group and cutoff (an aggregate: always one row).
    cross join lateral (
        select
            pg_catalog.sum(h.entered_count) filter (where h.hour < sc.entered_hour) as hours_before,
            pg_catalog.sum(h.entered_count) filter (where h.hour = sc.entered_hour) as hour_on
        from public.enforcement_overview_hours as h
        where h.tenant_id = g.tenant_id and h.current_stage = g.current_stage
          and h.tier_key = g.tier_key
          and h.hour >= sc.entered_day_start and h.hour <= sc.entered_hour
    ) as eh
    cross join lateral (
        select
            pg_catalog.sum(h.action_count) filter (where h.hour < sc.action_hour) as hours_before,
            pg_catalog.sum(h.action_count) filter (where h.hour = sc.action_hour) as hour_on
        from public.enforcement_overview_hours as h
        where h.tenant_id = g.tenant_id and h.current_stage = g.current_stage
          and h.tier_key = g.tier_key
          and h.hour >= sc.action_day_start and h.hour <= sc.action_hour
    ) as ah
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
    'totals, day and hour buckets plus a bounded slice of the index per group; under any other policy it counts the '
    'visible rows (exact, linear). Readable by authenticated (members), enforcement_operator and service_role '
    '(security_invoker).';
