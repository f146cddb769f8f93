-- v_priority_pipeline per tenant: each tenant's work list is ranked on its own, the view names
-- the tenant, and judgments_pipeline_order_idx leads with tenant_id.
--
-- Why: since tenants (20261203090000) the view, security_invoker, shows a caller only the
-- judgments of its tenants, but nothing else knew about them:
--   * a signed-in member could not read it at all: the ranking calls
--     public.judgment_priority_of(), which only enforcement_operator, service_role and the
--     fleet could execute (42501). It is an immutable function of a text; members get it;
--   * the ranking index (collectability_tier, priority, judgment_amount desc, id) holds no
--     tenant, so the policy's `tenant_id = any ($0)` was checked on the heap for every index
--     entry read (no index-only scan), and a member's top 50 read through every other
--     tenant's judgments that rank above theirs: the cost of a read depended on the other
--     tenants' books, a slow path for small tenants and a measurable signal of what the others
--     hold;
--   * tier_rank ranked the caller's visible judgments together, so for a caller of several
--     tenants (the enforcement_operator role, the fleet) one tenant's work list was
--     interleaved with the others'.
--
-- Now:
--   * tier_rank is the position within (tenant_id, collectability_tier): each tenant's list is
--     ranked as a single-tenant deployment ranks its book (the same numbers there);
--   * tenant_id is a column (the last one: the spec's columns keep their places) and the
--     first sort key: rows come by tenant_id, collectability_tier, priority_level,
--     judgment_amount desc, judgment_id;
--   * judgments_pipeline_order_idx is (tenant_id, collectability_tier,
--     judgment_priority_of(priority_level), judgment_amount desc, id) include (priority_level),
--     exactly the view's partition and order. The policy's `tenant_id = any ($0)` is then an
--     index condition on the leading column, and a btree scan of an array on its first column
--     returns the elements in order, each element's entries in index order, so the planner
--     keeps the index order (it would not for an array on a later column): the ranking is
--     still an index-only scan that the LIMIT stops after the rows asked for, reading only the
--     caller's tenants. One index, not two, on the import's hot table.
--
-- What a console writes: `where tenant_id = $1 order by collectability_tier, priority_level,
-- judgment_amount desc, judgment_id limit 50` (one tenant; the equality makes tenant_id a
-- constant, so the rest of the order is the index's), or `order by tenant_id,
-- collectability_tier, ...` (all the caller's tenants), or no ORDER BY (the view's own). The
-- written-out order WITHOUT tenant_id first and without a tenant filter interleaves tenants,
-- which no index order gives: like `order by tier_rank`, it sorts the caller's book
-- (docs/rpc.md, "Views"). Filters on collectability_tier narrow the index range (it is part of
-- the window's partition), as before.

grant execute on function public.judgment_priority_of(text) to authenticated;

drop index public.judgments_pipeline_order_idx;

create index judgments_pipeline_order_idx
    on public.judgments (
        tenant_id,
        collectability_tier,
        public.judgment_priority_of(priority_level),
        judgment_amount desc,
        id
    )
    include (priority_level)
    where status = 'active';

-- Shape as in 20261202150500 (the ranking is a subquery over the index alone; the rest of a
-- row is looked up per ranked row through a LATERAL subquery that cannot be flattened, and
-- the stage through a scalar subquery), with the tenant in the partition, the order and the
-- output.
create or replace view public.v_priority_pipeline
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
    r.tier_rank,
    r.tenant_id
from (
    select
        j.tenant_id,
        j.id as judgment_id,
        j.collectability_tier,
        public.judgment_priority_of(j.priority_level) as priority_level,
        j.judgment_amount,
        pg_catalog.row_number() over (
            partition by j.tenant_id, j.collectability_tier
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
-- (tenant_id, collectability_tier, tier_rank).
order by r.tenant_id, r.collectability_tier, r.priority_level, r.judgment_amount desc, r.judgment_id;

comment on view public.v_priority_pipeline is
    'The ranked work list of active judgments, per tenant: plaintiff_name, judgment_id, collectability_tier '
    '(the court case''s, as in v_collectability_snapshot), priority_level (public.judgment_priority: sorts '
    'urgent > high > normal > low > on_hold), judgment_amount, county, state, stage (of the open enforcement '
    'case), plaintiff_status, tier_rank (1 = first within its tenant and collectability tier, by priority, '
    'then judgment_amount descending, then judgment_id), tenant_id. Ordered by tenant_id, collectability_tier '
    '(tier0 first, unscored last), tier_rank; "where tenant_id = ... order by collectability_tier, '
    'priority_level, judgment_amount desc, judgment_id" (or "order by tenant_id, collectability_tier, ...") '
    'is that order and an index scan (judgments_pipeline_order_idx). Readable by authenticated (members, '
    'their tenants), enforcement_operator and service_role (security_invoker).';
