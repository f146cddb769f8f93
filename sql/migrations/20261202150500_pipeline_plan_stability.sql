-- v_priority_pipeline keeps its index plan right after a night that rewrote judgments, and
-- no console read pays for JIT compilation.
--
-- Why: the pipeline's ranking is a window subquery, which PostgreSQL plans for reading every
-- row (a client's ORDER BY stops the LIMIT from reaching it). Reading every row in order
-- from judgments_pipeline_order_idx (index-only) wins over a sort of the book only while
-- most pages are all-visible; right after a re-scoring night rewrote judgments (the tier
-- mirror) and ANALYZE recorded the lost visibility, the planner priced the index scan as
-- random heap reads and sorted the book instead (seconds at 100k, and it stays so until
-- vacuum). The sort needs the priority order computed for every row; the index-only scan
-- reads it from the index. So the priority order is now a function with a high COST,
-- public.judgment_priority_of(): what the sort plan has to evaluate per row is priced above
-- any number of heap fetches, and the index plan wins whatever the visibility map says. The
-- index and the view use the same call, so the planner matches them.
--
-- JIT: plans that look up a few columns per ranked row have large total cost estimates
-- (the lookups are priced for every row, not for the 50 the LIMIT reads), and above
-- jit_above_cost PostgreSQL compiled them with LLVM first: 1-4 s for a 2 ms read. An OLTP
-- database whose reads are index lookups gains nothing from JIT, so it is switched off for
-- this database (where this role may; otherwise a NOTICE says to do it).

-- PL/pgSQL, not SQL: a SQL function would be inlined into its CASE, which drops the COST,
-- and a non-inlined SQL function is an executor start per call on every judgments write;
-- a PL/pgSQL simple expression costs a few microseconds per indexed row. No SET clause
-- (that, too, would be paid per call): the body names only a qualified type.
create function public.judgment_priority_of(p_level text)
returns public.judgment_priority
language plpgsql
immutable
parallel safe
cost 100000
as $$
begin
    return case p_level
        when 'urgent' then 'urgent'::public.judgment_priority
        when 'high' then 'high'::public.judgment_priority
        when 'normal' then 'normal'::public.judgment_priority
        when 'low' then 'low'::public.judgment_priority
        else 'on_hold'::public.judgment_priority
    end;
end;
$$;

comment on function public.judgment_priority_of(text) is
    'A judgments.priority_level text as public.judgment_priority (ranking order). Declared costly on purpose: '
    'v_priority_pipeline reads it from judgments_pipeline_order_idx, and the cost keeps the planner from '
    'computing it for the whole book instead (migration 20261202150500).';

revoke execute on function public.judgment_priority_of(text) from public, anon, authenticated;
grant execute on function public.judgment_priority_of(text) to enforcement_operator, service_role, dragonfly_worker;

drop view public.v_priority_pipeline;
drop index public.judgments_pipeline_order_idx;

create index judgments_pipeline_order_idx
    on public.judgments (
        collectability_tier,
        public.judgment_priority_of(priority_level),
        judgment_amount desc,
        id
    )
    include (priority_level)
    where status = 'active';

create view public.v_priority_pipeline
with (security_invoker = true)
as
select
    d.plaintiff_name,
    r.judgment_id,
    r.collectability_tier,
    r.priority_level,
    r.judgment_amount,
    d.county,
    d.state,
    (
        select c.current_stage
          from public.enforcement_cases as c
         where c.judgment_id = r.judgment_id and c.closed_at is null
    ) as stage,
    d.plaintiff_status,
    r.tier_rank
from (
    select
        j.id as judgment_id,
        j.collectability_tier,
        public.judgment_priority_of(j.priority_level) as priority_level,
        j.judgment_amount,
        pg_catalog.row_number() over (
            partition by j.collectability_tier
            order by public.judgment_priority_of(j.priority_level), j.judgment_amount desc, j.id
        ) as tier_rank
    from public.judgments as j
    where j.status = 'active'
) as r
cross join lateral (
    select j.county, j.state, p.name as plaintiff_name, p.status::text as plaintiff_status
      from public.judgments as j
      join public.plaintiffs as p on p.id = j.plaintiff_id
     where j.id = r.judgment_id
    offset 0
) as d
-- The window's own keys = judgments_pipeline_order_idx = the same order as
-- (collectability_tier, tier_rank).
order by r.collectability_tier, r.priority_level, r.judgment_amount desc, r.judgment_id;

comment on view public.v_priority_pipeline is
    'The ranked work list of active judgments: plaintiff_name, judgment_id, collectability_tier (the court '
    'case''s, as in v_collectability_snapshot), priority_level (public.judgment_priority: sorts urgent > high '
    '> normal > low > on_hold), judgment_amount, county, state, stage (of the open enforcement case), '
    'plaintiff_status, tier_rank (1 = first within its collectability tier, by priority, then judgment_amount '
    'descending, then judgment_id). Ordered by collectability_tier (tier0 first, unscored last) then tier_rank; '
    '"order by collectability_tier, priority_level, judgment_amount desc, judgment_id" is that order and an '
    'index scan (judgments_pipeline_order_idx). Readable by enforcement_operator and service_role (security_invoker).';

revoke all on public.v_priority_pipeline from public, anon, authenticated, service_role;
grant select on public.v_priority_pipeline to enforcement_operator, service_role;

do $$
begin
    execute pg_catalog.format('alter database %I set jit = off', pg_catalog.current_database());
exception when insufficient_privilege then
    raise notice 'cannot switch JIT off for this database: run "alter database % set jit = off" as its owner',
        pg_catalog.current_database();
end
$$;
