-- v_priority_pipeline: its documented ordering, written out in an ORDER BY, is an index scan.
--
-- Why: the view ranked judgments by a CASE over the text priority_level, which no caller
-- can name, so a dashboard that wrote the ordering out (order by collectability_tier,
-- priority_level, judgment_amount desc) or ordered by tier_rank got a sort of every active
-- judgment (3.9 s at a million) to return 50 rows. tier_rank is a window output: PostgreSQL
-- cannot deliver rows in the order of a computed position from an index, whatever the view
-- does. What it can do is match an ORDER BY on the view's own output columns with the order
-- the view's rows already come in, if the columns ARE the sort keys. So:
--   * public.judgment_priority, an enum in priority order (urgent < high < normal < low <
--     on_hold): the view's priority_level column is of that type, so ordering by it is the
--     documented priority order;
--   * judgments_pipeline_order_idx, on exactly (collectability_tier, that priority,
--     judgment_amount desc, id) of active judgments, replaces judgments_priority_pipeline_idx
--     (one index on the import's hot table, not two).
-- "order by collectability_tier, priority_level, judgment_amount desc, judgment_id" (or any
-- prefix of it, or no ORDER BY: the view's own) now reads the first rows of that index and
-- stops; a tier filter narrows the index range (it is the window's partition key); a stage
-- filter is applied on the rows as they come, in order. Ordering by tier_rank still sorts
-- (docs/rpc.md says so and gives the written-out form).
--
-- judgments.priority_level stays text (every writer keeps working); the view converts it
-- with a CASE over constants, which is immutable and so indexable, and identical in the
-- index and the view so the planner matches them.

create type public.judgment_priority as enum ('urgent', 'high', 'normal', 'low', 'on_hold');

comment on type public.judgment_priority is
    'Judgment priority in ranking order (urgent first, on_hold last): v_priority_pipeline.priority_level, so '
    '"order by priority_level" is the documented priority order. judgments.priority_level stores the same '
    'values as text.';

-- INCLUDE priority_level, so the ranking is an index-only scan. It matters that it is also
-- the cheapest plan for reading ALL rows: a subquery under an ORDER BY is planned for full
-- retrieval, and a narrow index read in order beats a sort of the book there; a wider index
-- (county, state, plaintiff_id included) lost to the sort on a 20k book.
create index judgments_pipeline_order_idx
    on public.judgments (
        collectability_tier,
        (case priority_level
            when 'urgent' then 'urgent'::public.judgment_priority
            when 'high' then 'high'::public.judgment_priority
            when 'normal' then 'normal'::public.judgment_priority
            when 'low' then 'low'::public.judgment_priority
            else 'on_hold'::public.judgment_priority
         end),
        judgment_amount desc,
        id
    )
    include (priority_level)
    where status = 'active';

drop index public.judgments_priority_pipeline_idx;

-- A column changes type, so the view is recreated (nothing depends on it).
drop view public.v_priority_pipeline;

-- Shape: the ranking is a subquery over judgments_pipeline_order_idx alone (the window
-- needs one); the rest of a row (county, state, plaintiff, the open case's stage) is looked
-- up per ranked row, through a LATERAL subquery that cannot be flattened (OFFSET 0) and a
-- scalar subquery. A lateral reference leaves the planner one way to join, a nested loop
-- driven by the ranked rows in their order, so a client's ORDER BY on the sort keys needs
-- no sort and LIMIT stops the index scan after the rows asked for. With ordinary joins the
-- planner, which plans a window subquery for full retrieval, hashes the whole book instead.
-- enforcement_cases_one_open_per_judgment makes the stage lookup single-row.
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
        case j.priority_level
                when 'urgent' then 'urgent'::public.judgment_priority
                when 'high' then 'high'::public.judgment_priority
                when 'normal' then 'normal'::public.judgment_priority
                when 'low' then 'low'::public.judgment_priority
                else 'on_hold'::public.judgment_priority
            end as priority_level,
        j.judgment_amount,
        pg_catalog.row_number() over (
            partition by j.collectability_tier
            order by case j.priority_level
                when 'urgent' then 'urgent'::public.judgment_priority
                when 'high' then 'high'::public.judgment_priority
                when 'normal' then 'normal'::public.judgment_priority
                when 'low' then 'low'::public.judgment_priority
                else 'on_hold'::public.judgment_priority
            end, j.judgment_amount desc, j.id
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
    'index scan. Readable by enforcement_operator and service_role (security_invoker).';

revoke all on public.v_priority_pipeline from public, anon, authenticated, service_role;
grant select on public.v_priority_pipeline to enforcement_operator, service_role;
