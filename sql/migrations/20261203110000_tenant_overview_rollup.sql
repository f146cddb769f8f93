-- The overview totals are kept per tenant: enforcement_overview_rollup and its deltas are keyed
-- by (tenant_id, tier, current_stage), and members read only their tenants' rows.
--
-- Why: the totals of migration 20261127002790 were per (tier, stage) over every tenant, and
-- both tables were readable by enforcement_operator with `using (true)`. Since tenants
-- (20261203090000) an operator reaches only some cases (a signed-in member their tenants; the
-- enforcement_operator role narrowed by dragonfly.acting_tenant one tenant), so reading the
-- tables showed every tenant's counts and balances, and v_enforcement_overview could never use
-- the totals for such a caller (its exactness check saw fewer visible cases than the totals
-- count and summed the visible rows instead: exact, but the slow path for every member).
--
-- Now:
--   * both tables carry tenant_id; the triggers on enforcement_cases append each statement's
--     net change per (tenant_id, tier, stage), the fold sums per (tenant_id, tier, stage),
--     and overview_rollup_drift() / resync_overview_rollup() (run nightly by
--     refresh_enforcement_metrics()) compare and repair per tenant;
--   * row-level security on both tables is the cases' own rule,
--     `tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[])`, for authenticated
--     and enforcement_operator: a row of a tenant the caller does not reach is not there, so
--     the totals say nothing the caller could not count from the cases it may read.
--     authenticated gets SELECT (signed-in members read the overview).
--
-- Writers still never update a shared row (a case never changes tenant, so tenants only add
-- rows to the key); the fold is still one statement under the same advisory lock.
--
-- Existing rows: the column is added with the default tenant as a constant default (no
-- rewrite), so the totals of the single-tenant era land in the default tenant; the resync at
-- the end then moves into their tenants whatever cases already belong elsewhere (the drift per
-- tenant, appended as correcting deltas), so the result is exact whatever the database holds.
-- No foreign key to public.tenants: this is derived data written on every case change (a key
-- check per delta row would be paid by every writer), the cases' own key already guarantees
-- the tenant exists, and the drift check compares with the cases.

-- ---------------------------------------------------------------------------------------
-- The tenant key

alter table public.enforcement_overview_rollup
    add column tenant_id uuid not null default tenancy.default_tenant_id();
alter table public.enforcement_overview_rollup_deltas
    add column tenant_id uuid not null default tenancy.default_tenant_id();

-- The default only placed the existing rows: every writer names the tenant.
alter table public.enforcement_overview_rollup alter column tenant_id drop default;
alter table public.enforcement_overview_rollup_deltas alter column tenant_id drop default;

comment on column public.enforcement_overview_rollup.tenant_id is
    'The tenant of the cases counted (enforcement_cases.tenant_id).';
comment on column public.enforcement_overview_rollup_deltas.tenant_id is
    'The tenant of the cases whose change this row records.';

-- Leading with tenant_id: the policy's `tenant_id = any (...)` reads a caller's rows from the
-- index, however many tenants the table holds.
alter table public.enforcement_overview_rollup drop constraint enforcement_overview_rollup_key;
alter table public.enforcement_overview_rollup
    add constraint enforcement_overview_rollup_key unique nulls not distinct (tenant_id, tier, current_stage);

comment on table public.enforcement_overview_rollup is
    'Folded totals behind v_enforcement_overview: per (tenant_id, tier, current_stage), the number of open '
    'enforcement cases without a tier override and the sum of their current_balance. Add the pending rows of '
    'enforcement_overview_rollup_deltas for the current totals. Written only by the triggers on '
    'enforcement_cases (migrations 20261127002790, 20261203110000); members read their tenants'' rows.';

comment on table public.enforcement_overview_rollup_deltas is
    'Net changes to enforcement_overview_rollup not folded into it yet: one row per (tenant_id, tier, '
    'current_stage) per changing statement, appended by the triggers on enforcement_cases and folded by the '
    'next writer that gets the fold lock. Insert-only for writers, so concurrent writers never wait on each '
    'other.';

-- ---------------------------------------------------------------------------------------
-- Who reads them: members of the tenant, like the cases

drop policy "Enforcement operators can read the overview totals" on public.enforcement_overview_rollup;
drop policy "Enforcement operators can read pending overview changes" on public.enforcement_overview_rollup_deltas;

create policy "Members read their tenants' overview totals"
    on public.enforcement_overview_rollup
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

comment on policy "Members read their tenants' overview totals" on public.enforcement_overview_rollup is
    'The rule of "Members read their tenants'' cases": the totals of a tenant are visible exactly to those '
    'who may read its cases. Narrow this with that policy.';

create policy "Members read their tenants' pending overview changes"
    on public.enforcement_overview_rollup_deltas
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

comment on policy "Members read their tenants' pending overview changes" on public.enforcement_overview_rollup_deltas is
    'The rule of "Members read their tenants'' cases": a tenant''s pending changes are visible exactly to '
    'those who may read its cases. Narrow this with that policy.';

grant select on public.enforcement_overview_rollup, public.enforcement_overview_rollup_deltas to authenticated;

-- ---------------------------------------------------------------------------------------
-- Folding, per tenant. Redefined (20261127002790) to carry tenant_id; otherwise unchanged.

create or replace function enforcement_private.fold_overview_rollup()
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    -- One fold at a time, and never waiting: whoever holds the lock folds (until its
    -- commit), the others just append. Outside READ COMMITTED the snapshot predates the
    -- lock and could miss a fold committed meanwhile, so only READ COMMITTED folds.
    if pg_catalog.current_setting('transaction_isolation') <> 'read committed'
       or not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('dragonfly.enforcement_overview_rollup')) then
        return;
    end if;

    with moved as (
        delete from public.enforcement_overview_rollup_deltas as d
        returning d.tenant_id, d.tier, d.current_stage, d.case_count, d.balance
    )
    insert into public.enforcement_overview_rollup as r (tenant_id, tier, current_stage, case_count, balance)
    select m.tenant_id, m.tier, m.current_stage, pg_catalog.sum(m.case_count), pg_catalog.sum(m.balance)
      from moved as m
     group by m.tenant_id, m.tier, m.current_stage
    on conflict on constraint enforcement_overview_rollup_key do update
        set case_count = r.case_count + excluded.case_count,
            balance = r.balance + excluded.balance;
end;
$$;

comment on function enforcement_private.fold_overview_rollup() is
    'Moves the committed rows of enforcement_overview_rollup_deltas into enforcement_overview_rollup (per '
    'tenant, tier and stage) in one statement, if this transaction gets the fold advisory lock without '
    'waiting and runs in READ COMMITTED; otherwise does nothing (a later writer folds). Called by the rollup '
    'triggers. Not callable over the API.';

revoke execute on function enforcement_private.fold_overview_rollup() from public;

-- ---------------------------------------------------------------------------------------
-- The triggers append per tenant. Redefined (20261127002790): the same statements, grouped
-- by the case's tenant as well. The triggers themselves (statement level, transition tables,
-- ENABLE ALWAYS) stay as they are; the TRUNCATE trigger empties both tables as before.

create or replace function enforcement_private.tg_overview_rollup_on_insert()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into public.enforcement_overview_rollup_deltas (tenant_id, tier, current_stage, case_count, balance)
    select n.tenant_id, n.tier, n.current_stage, pg_catalog.count(*), pg_catalog.sum(n.current_balance)
      from new_cases as n
     where n.closed_at is null and n.tier_override is null
     group by n.tenant_id, n.tier, n.current_stage;
    if found then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_insert() is
    'AFTER INSERT statement trigger on enforcement_cases: appends the new open cases without a tier '
    'override to enforcement_overview_rollup_deltas per (tenant, tier, stage), then tries to fold. Not '
    'callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_insert() from public;

create or replace function enforcement_private.tg_overview_rollup_on_update()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- Old rows out, new rows in; groups whose count and balance did not move (a note, a
    -- next_action_at, a status column) write nothing. A case never changes tenant
    -- (tenancy.inherited_tenant refuses it), but each side keeps its own tenant regardless.
    insert into public.enforcement_overview_rollup_deltas (tenant_id, tier, current_stage, case_count, balance)
    select d.tenant_id, d.tier, d.current_stage, pg_catalog.sum(d.case_count), pg_catalog.sum(d.balance)
      from (
          select o.tenant_id, o.tier, o.current_stage, -1 as case_count, -o.current_balance as balance
            from old_cases as o
           where o.closed_at is null and o.tier_override is null
          union all
          select n.tenant_id, n.tier, n.current_stage, 1, n.current_balance
            from new_cases as n
           where n.closed_at is null and n.tier_override is null
      ) as d
     group by d.tenant_id, d.tier, d.current_stage
    having pg_catalog.sum(d.case_count) <> 0 or pg_catalog.sum(d.balance) <> 0;
    if found then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_update() is
    'AFTER UPDATE statement trigger on enforcement_cases: appends the net change per (tenant, tier, stage) of '
    'open cases without a tier override (closing, stage moves, payments, tier changes, overrides set or '
    'cleared) to enforcement_overview_rollup_deltas, then tries to fold. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_update() from public;

create or replace function enforcement_private.tg_overview_rollup_on_delete()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into public.enforcement_overview_rollup_deltas (tenant_id, tier, current_stage, case_count, balance)
    select o.tenant_id, o.tier, o.current_stage, -pg_catalog.count(*), -pg_catalog.sum(o.current_balance)
      from old_cases as o
     where o.closed_at is null and o.tier_override is null
     group by o.tenant_id, o.tier, o.current_stage;
    if found then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_delete() is
    'AFTER DELETE statement trigger on enforcement_cases: takes the deleted open cases without a tier '
    'override out of the totals (a delta row per tenant, tier and stage), then tries to fold. Not callable '
    'as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_delete() from public;

-- ---------------------------------------------------------------------------------------
-- Checking and repairing, per tenant. The drift's result gains tenant_id, so the function is
-- recreated (a changed result type cannot be replaced); resync_overview_rollup() keeps its
-- signature and result, so refresh_enforcement_metrics() calls it unchanged.

drop function enforcement_private.overview_rollup_drift();

create function enforcement_private.overview_rollup_drift()
returns table (
    tenant_id uuid,
    tier text,
    current_stage text,
    rollup_case_count numeric,
    case_count bigint,
    rollup_balance numeric,
    balance numeric
)
language sql
stable
security definer
set search_path = ''
as $$
    with totals as (
        select t.tenant_id, t.tier, t.current_stage,
               pg_catalog.sum(t.case_count) as case_count, pg_catalog.sum(t.balance) as balance
          from (
              select r.tenant_id, r.tier, r.current_stage, r.case_count, r.balance
                from public.enforcement_overview_rollup as r
              union all
              select d.tenant_id, d.tier, d.current_stage, d.case_count, d.balance
                from public.enforcement_overview_rollup_deltas as d
          ) as t
         group by t.tenant_id, t.tier, t.current_stage
    ),
    actual as (
        select c.tenant_id, c.tier, c.current_stage,
               pg_catalog.count(*) as case_count, pg_catalog.sum(c.current_balance) as balance
          from public.enforcement_cases as c
         where c.closed_at is null and c.tier_override is null
         group by c.tenant_id, c.tier, c.current_stage
    )
    select coalesce(t.tenant_id, a.tenant_id), coalesce(t.tier, a.tier), coalesce(t.current_stage, a.current_stage),
           t.case_count, a.case_count, t.balance, a.balance
      from totals as t
      full join actual as a
        on a.tenant_id = t.tenant_id and a.tier is not distinct from t.tier and a.current_stage = t.current_stage
     where coalesce(t.case_count, 0) <> coalesce(a.case_count, 0)
        or coalesce(t.balance, 0) <> coalesce(a.balance, 0)
     order by 1, 2, 3
$$;

comment on function enforcement_private.overview_rollup_drift() is
    'The (tenant, tier, stage) groups where the overview totals (rollup plus pending deltas) differ from a '
    'direct aggregate of the open cases without a tier override; empty when they agree. For tests and '
    'on-call. Not callable over the API.';

revoke execute on function enforcement_private.overview_rollup_drift() from public;

create or replace function enforcement_private.resync_overview_rollup()
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_groups integer;
begin
    -- The correction is computed in one statement, from one snapshot: the totals and the
    -- cases it compares are the same moment's, and a change committed later brings its own
    -- delta. So appending (actual - totals) per tenant, tier and stage is exact without
    -- locking anything, in any isolation level, beside the fleet.
    insert into public.enforcement_overview_rollup_deltas (tenant_id, tier, current_stage, case_count, balance)
    select d.tenant_id,
           d.tier,
           d.current_stage,
           coalesce(d.case_count, 0) - coalesce(d.rollup_case_count, 0),
           coalesce(d.balance, 0) - coalesce(d.rollup_balance, 0)
      from enforcement_private.overview_rollup_drift() as d;
    get diagnostics v_groups = row_count;
    -- Also folds what writers outside READ COMMITTED left pending.
    perform enforcement_private.fold_overview_rollup();
    return v_groups;
end;
$$;

comment on function enforcement_private.resync_overview_rollup() is
    'Repairs the overview totals where overview_rollup_drift() finds a difference, by appending the '
    'correcting deltas of each (tenant, tier, stage) group (no lock; exact also while cases change). Returns '
    'the number of groups corrected, normally 0, then folds pending deltas. Run by the migrations (initial '
    'totals) and nightly by refresh_enforcement_metrics(). Not callable over the API.';

revoke execute on function enforcement_private.resync_overview_rollup() from public;

-- The single-tenant totals now sit in the default tenant; move whatever belongs elsewhere.
select enforcement_private.resync_overview_rollup();
