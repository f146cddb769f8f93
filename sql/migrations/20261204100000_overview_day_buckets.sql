-- The overview's clock-dependent counts, kept by the same triggers as its totals: per
-- (tenant_id, tier, current_stage, UTC day), how many open cases without a tier override
-- entered their stage that day and how many have their next action due that day.
--
-- Why: v_enforcement_overview counted SLA breaches and due cases with one index-only pass
-- over every open case of the caller's tenants (20261203110100): linear in the book, 1.2 s at a
-- million open cases, worse right after a night that rewrote the cases (a heap fetch per case
-- until vacuum). Both counts are "how many cases have a timestamp before a cutoff": the cutoff
-- moves with the clock, the timestamps only change when a case row changes. So the triggers
-- keep a histogram of each timestamp by UTC day, and a read (migration 20261204100200) sums the
-- days before the cutoff's day (rows ∝ days of history, not cases) and counts only the cases
-- of the cutoff's own day from an index range (∝ cases per day).
--
-- What a bucket counts (the same cases as the totals of 20261127002790: open, no override):
--   * entered_count: cases whose stage_entered_at falls on `day` (UTC);
--   * action_count: cases whose next_action_at falls on `day` (UTC); a case without a next
--     action is in no action bucket.
-- One row carries both counts, so a case whose stage entry and next action fall on the same
-- day touches one row.
--
-- The pattern is the totals' exactly, for the same reasons (see 20261127002790 and
-- 20261203110000): statement-level triggers append each statement's net change to
-- enforcement_overview_days_deltas (insert only: writers never wait on each other), the fold
-- moves the committed deltas into enforcement_overview_days in one statement under the same
-- advisory lock, readers add folded rows and pending deltas. The existing trigger functions
-- are extended rather than new triggers added: one trigger per event keeps one place where
-- derived data follows enforcement_cases (ENABLE ALWAYS, TRUNCATE included), and the transition
-- tables are already there. Drift check and repair per bucket; the nightly
-- resync_overview_rollup() repairs the buckets too, and drops buckets that fell to zero (a
-- closed day's row would otherwise stay forever, and rows would grow with every day ever seen
-- rather than with the days open cases occupy).
--
-- Row-level security and grants are the totals': members read their tenants' rows, nobody but
-- the trigger functions writes.
--
-- Existing cases are bucketed at the end, by the repair (exact from one snapshot).

create table public.enforcement_overview_days (
    tenant_id uuid not null,
    tier text,
    current_stage text not null,
    day date not null,
    entered_count bigint not null,
    action_count bigint not null,
    -- Led by tenant_id, like the totals' key: the policy's `tenant_id = any (...)` reads a
    -- caller's rows from the index.
    constraint enforcement_overview_days_key unique nulls not distinct (tenant_id, tier, current_stage, day)
);

comment on table public.enforcement_overview_days is
    'Folded day buckets behind v_enforcement_overview''s SLA-breach and due counts: per (tenant_id, tier, '
    'current_stage, UTC day), the open enforcement cases without a tier override that entered their stage '
    'that day (entered_count) and that have their next action due that day (action_count). Add the pending '
    'rows of enforcement_overview_days_deltas. Written only by the triggers on enforcement_cases (migration '
    '20261204100000); members read their tenants'' rows.';
comment on column public.enforcement_overview_days.day is
    'The UTC date of stage_entered_at (entered_count) or next_action_at (action_count).';
comment on column public.enforcement_overview_days.entered_count is
    'Open cases without a tier override of this tenant, tier and stage whose stage_entered_at falls on day (UTC).';
comment on column public.enforcement_overview_days.action_count is
    'Open cases without a tier override of this tenant, tier and stage whose next_action_at falls on day (UTC).';

create table public.enforcement_overview_days_deltas (
    tenant_id uuid not null,
    tier text,
    current_stage text not null,
    day date not null,
    entered_count bigint not null,
    action_count bigint not null
);

comment on table public.enforcement_overview_days_deltas is
    'Net changes to enforcement_overview_days not folded into it yet: one row per (tenant_id, tier, '
    'current_stage, day) per changing statement, appended by the triggers on enforcement_cases and folded '
    'with the overview totals. Insert-only for writers, so concurrent writers never wait on each other.';

alter table public.enforcement_overview_days enable row level security;
alter table public.enforcement_overview_days_deltas enable row level security;

revoke all on public.enforcement_overview_days, public.enforcement_overview_days_deltas
    from public, anon, authenticated, service_role;
-- Derived data: nobody writes it but the triggers (their SECURITY DEFINER functions).
grant select on public.enforcement_overview_days, public.enforcement_overview_days_deltas
    to authenticated, enforcement_operator, service_role;

create policy "Members read their tenants' overview days"
    on public.enforcement_overview_days
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

comment on policy "Members read their tenants' overview days" on public.enforcement_overview_days is
    'The rule of "Members read their tenants'' cases": a tenant''s day buckets are visible exactly to those '
    'who may read its cases. Narrow this with that policy.';

create policy "Members read their tenants' pending overview day changes"
    on public.enforcement_overview_days_deltas
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

comment on policy "Members read their tenants' pending overview day changes" on public.enforcement_overview_days_deltas is
    'The rule of "Members read their tenants'' cases": a tenant''s pending day changes are visible exactly '
    'to those who may read its cases. Narrow this with that policy.';

-- ---------------------------------------------------------------------------------------
-- The cutoff day's next actions, and the earliest next action, from an index: the sibling
-- of enforcement_cases_overview_idx (which serves stage_entered_at) for next_action_at. Same
-- lead (stage, tenant, tier), so one (tenant, tier, stage) group is one index range and the
-- tenant policy is checked on its index tuples; cases without a next action are left out
-- (they are never due and have no earliest action).

create index enforcement_cases_overview_action_idx
    on public.enforcement_cases (current_stage, tenant_id, tier, next_action_at)
    where closed_at is null and tier_override is null and next_action_at is not null;

-- The same two orders for the unscored cases (tier null). `tier is null` is an index condition
-- on the indexes above, but not an equality the planner can order by: a probe for the
-- earliest next action or stage entry of an unscored group would sort the group, or walk
-- another index, rather than read one tuple. Keyed without the tier and restricted to it,
-- these two read it in order. They hold only the unscored cases, which scoring keeps few.
create index enforcement_cases_overview_unscored_idx
    on public.enforcement_cases (current_stage, tenant_id, stage_entered_at)
    where closed_at is null and tier_override is null and tier is null;

create index enforcement_cases_overview_unscored_action_idx
    on public.enforcement_cases (current_stage, tenant_id, next_action_at)
    where closed_at is null and tier_override is null and tier is null and next_action_at is not null;

-- ---------------------------------------------------------------------------------------
-- Folding: the totals as before (20261203110000), then the day buckets, under the same lock.
--
-- The day buckets are folded by one writer in eight (by transaction id), in one MERGE of the
-- summed deltas; the totals are still folded by every writer that gets the lock.
--
-- Why: measured on a 100k-case book, folding the day deltas at every write doubled the
-- refresh pass after a whole-book re-score (≈ 10 s to ≈ 20 s). A tier change moves a case's
-- two day entries from one tier's buckets to another's, so each 250-case chunk appended some
-- 650 day deltas and its fold upserted as many bucket rows: 316k upserts for 100k cases,
-- while the book has a few thousand buckets. Summed over several transactions the deltas
-- collapse onto those few thousand keys, so folding them less often folds far fewer rows.
-- One transaction in eight (`xid % 8 = 0`): no state to keep, and on average eight
-- transactions' deltas are pending. Readers add the pending deltas as before, so nothing
-- changes for exactness; they pay for a few thousand more rows at most during a refresh
-- pass, a handful otherwise. The nightly repair folds them unconditionally.
--
-- MERGE rather than INSERT ... ON CONFLICT: one join of the summed deltas with the buckets
-- instead of a speculative insertion per row. MERGE is not safe against a concurrent insert
-- of the same key, but every fold holds the fold advisory lock, so folds never overlap.

create function enforcement_private.fold_overview_days()
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    -- The same rule as the totals' fold (20261127002790): one fold at a time, never waiting,
    -- READ COMMITTED only (a fresh snapshot after taking the lock).
    if pg_catalog.current_setting('transaction_isolation') <> 'read committed'
       or not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('dragonfly.enforcement_overview_rollup')) then
        return;
    end if;

    -- One statement: the deltas it deletes are exactly those whose sums it adds.
    with moved as (
        delete from public.enforcement_overview_days_deltas as d
        returning d.tenant_id, d.tier, d.current_stage, d.day, d.entered_count, d.action_count
    ),
    summed as (
        select m.tenant_id, m.tier, m.current_stage, m.day,
               pg_catalog.sum(m.entered_count) as entered_count, pg_catalog.sum(m.action_count) as action_count
          from moved as m
         group by m.tenant_id, m.tier, m.current_stage, m.day
    )
    merge into public.enforcement_overview_days as r
    using summed as s
       on r.tenant_id = s.tenant_id
      and r.tier is not distinct from s.tier
      and r.current_stage = s.current_stage
      and r.day = s.day
    when matched then
        update set entered_count = r.entered_count + s.entered_count,
                   action_count = r.action_count + s.action_count
    when not matched then
        insert (tenant_id, tier, current_stage, day, entered_count, action_count)
        values (s.tenant_id, s.tier, s.current_stage, s.day, s.entered_count, s.action_count);
end;
$$;

comment on function enforcement_private.fold_overview_days() is
    'Moves the committed rows of enforcement_overview_days_deltas into enforcement_overview_days (per tenant, '
    'tier, stage and day) in one statement, if this transaction gets the fold advisory lock without waiting '
    'and runs in READ COMMITTED; otherwise does nothing. Called by fold_overview_rollup() one transaction in '
    'eight, and by resync_overview_days(). Not callable over the API.';

revoke execute on function enforcement_private.fold_overview_days() from public;

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

    -- The day buckets one transaction in eight (see the header).
    if (pg_catalog.pg_current_xact_id()::text)::bigint % 8 = 0 then
        perform enforcement_private.fold_overview_days();
    end if;
end;
$$;

comment on function enforcement_private.fold_overview_rollup() is
    'Moves the committed rows of enforcement_overview_rollup_deltas into enforcement_overview_rollup (per '
    'tenant, tier and stage) in one statement, if this transaction gets the fold advisory lock without '
    'waiting and runs in READ COMMITTED; otherwise does nothing (a later writer folds). One transaction in '
    'eight also folds the day buckets (fold_overview_days()). Called by the rollup triggers. Not callable '
    'over the API.';

revoke execute on function enforcement_private.fold_overview_rollup() from public;

-- ---------------------------------------------------------------------------------------
-- The triggers append day deltas too. Redefined (20261203110000): the totals' statement is
-- unchanged; the day buckets' statement follows it, and the fold runs when either wrote.
-- Each case gives two (day, entered, action) entries, (day of stage_entered_at, 1, 0) and
-- (day of next_action_at, 0, 1); grouping by day sums them into one row per day.

create or replace function enforcement_private.tg_overview_rollup_on_insert()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_wrote boolean;
begin
    insert into public.enforcement_overview_rollup_deltas (tenant_id, tier, current_stage, case_count, balance)
    select n.tenant_id, n.tier, n.current_stage, pg_catalog.count(*), pg_catalog.sum(n.current_balance)
      from new_cases as n
     where n.closed_at is null and n.tier_override is null
     group by n.tenant_id, n.tier, n.current_stage;
    v_wrote := found;

    insert into public.enforcement_overview_days_deltas
        (tenant_id, tier, current_stage, day, entered_count, action_count)
    select n.tenant_id, n.tier, n.current_stage, b.day, pg_catalog.sum(b.entered), pg_catalog.sum(b.action)
      from new_cases as n
     cross join lateral (
         values ((n.stage_entered_at at time zone 'UTC')::date, 1, 0),
                ((n.next_action_at at time zone 'UTC')::date, 0, 1)
     ) as b (day, entered, action)
     where n.closed_at is null and n.tier_override is null and b.day is not null
     group by n.tenant_id, n.tier, n.current_stage, b.day;
    v_wrote := v_wrote or found;

    if v_wrote then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_insert() is
    'AFTER INSERT statement trigger on enforcement_cases: appends the new open cases without a tier '
    'override to enforcement_overview_rollup_deltas per (tenant, tier, stage) and to '
    'enforcement_overview_days_deltas per (tenant, tier, stage, UTC day of stage_entered_at and of '
    'next_action_at), then tries to fold. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_insert() from public;

create or replace function enforcement_private.tg_overview_rollup_on_update()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_wrote boolean;
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
    v_wrote := found;

    -- The same for the day buckets: a payment or a note moves no day and writes nothing; a
    -- stage move, a new next action, a tier change, closing or an override does.
    insert into public.enforcement_overview_days_deltas
        (tenant_id, tier, current_stage, day, entered_count, action_count)
    select d.tenant_id, d.tier, d.current_stage, b.day, pg_catalog.sum(b.entered), pg_catalog.sum(b.action)
      from (
          select o.tenant_id, o.tier, o.current_stage, o.stage_entered_at, o.next_action_at, -1 as sign
            from old_cases as o
           where o.closed_at is null and o.tier_override is null
          union all
          select n.tenant_id, n.tier, n.current_stage, n.stage_entered_at, n.next_action_at, 1
            from new_cases as n
           where n.closed_at is null and n.tier_override is null
      ) as d
     cross join lateral (
         values ((d.stage_entered_at at time zone 'UTC')::date, d.sign, 0),
                ((d.next_action_at at time zone 'UTC')::date, 0, d.sign)
     ) as b (day, entered, action)
     where b.day is not null
     group by d.tenant_id, d.tier, d.current_stage, b.day
    having pg_catalog.sum(b.entered) <> 0 or pg_catalog.sum(b.action) <> 0;
    v_wrote := v_wrote or found;

    if v_wrote then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_update() is
    'AFTER UPDATE statement trigger on enforcement_cases: appends the net change of open cases without a '
    'tier override (closing, stage moves, payments, tier changes, overrides set or cleared, new next actions) '
    'to enforcement_overview_rollup_deltas per (tenant, tier, stage) and to enforcement_overview_days_deltas '
    'per (tenant, tier, stage, UTC day), then tries to fold. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_update() from public;

create or replace function enforcement_private.tg_overview_rollup_on_delete()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_wrote boolean;
begin
    insert into public.enforcement_overview_rollup_deltas (tenant_id, tier, current_stage, case_count, balance)
    select o.tenant_id, o.tier, o.current_stage, -pg_catalog.count(*), -pg_catalog.sum(o.current_balance)
      from old_cases as o
     where o.closed_at is null and o.tier_override is null
     group by o.tenant_id, o.tier, o.current_stage;
    v_wrote := found;

    insert into public.enforcement_overview_days_deltas
        (tenant_id, tier, current_stage, day, entered_count, action_count)
    select o.tenant_id, o.tier, o.current_stage, b.day, -pg_catalog.sum(b.entered), -pg_catalog.sum(b.action)
      from old_cases as o
     cross join lateral (
         values ((o.stage_entered_at at time zone 'UTC')::date, 1, 0),
                ((o.next_action_at at time zone 'UTC')::date, 0, 1)
     ) as b (day, entered, action)
     where o.closed_at is null and o.tier_override is null and b.day is not null
     group by o.tenant_id, o.tier, o.current_stage, b.day;
    v_wrote := v_wrote or found;

    if v_wrote then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_delete() is
    'AFTER DELETE statement trigger on enforcement_cases: takes the deleted open cases without a tier '
    'override out of the totals (a delta row per tenant, tier and stage) and out of the day buckets (per '
    'tenant, tier, stage and day), then tries to fold. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_delete() from public;

create or replace function enforcement_private.tg_overview_rollup_on_truncate()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- TRUNCATE holds enforcement_cases exclusively, so no writer is in flight; wait for a
    -- fold still running elsewhere, then empty the totals and the day buckets.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('dragonfly.enforcement_overview_rollup'));
    delete from public.enforcement_overview_rollup_deltas;
    delete from public.enforcement_overview_rollup;
    delete from public.enforcement_overview_days_deltas;
    delete from public.enforcement_overview_days;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_truncate() is
    'AFTER TRUNCATE statement trigger on enforcement_cases: empties the overview totals and day buckets. Not '
    'callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_truncate() from public;

-- ---------------------------------------------------------------------------------------
-- Checking and repairing the day buckets.

create function enforcement_private.overview_days_drift()
returns table (
    tenant_id uuid,
    tier text,
    current_stage text,
    day date,
    bucket_entered_count numeric,
    entered_count bigint,
    bucket_action_count numeric,
    action_count bigint
)
language sql
stable
security definer
set search_path = ''
as $$
    with buckets as (
        select b.tenant_id, b.tier, b.current_stage, b.day,
               pg_catalog.sum(b.entered_count) as entered_count, pg_catalog.sum(b.action_count) as action_count
          from (
              select r.tenant_id, r.tier, r.current_stage, r.day, r.entered_count, r.action_count
                from public.enforcement_overview_days as r
              union all
              select d.tenant_id, d.tier, d.current_stage, d.day, d.entered_count, d.action_count
                from public.enforcement_overview_days_deltas as d
          ) as b
         group by b.tenant_id, b.tier, b.current_stage, b.day
    ),
    actual as (
        select c.tenant_id, c.tier, c.current_stage, x.day,
               pg_catalog.sum(x.entered) as entered_count, pg_catalog.sum(x.action) as action_count
          from public.enforcement_cases as c
         cross join lateral (
             values ((c.stage_entered_at at time zone 'UTC')::date, 1, 0),
                    ((c.next_action_at at time zone 'UTC')::date, 0, 1)
         ) as x (day, entered, action)
         where c.closed_at is null and c.tier_override is null and x.day is not null
         group by c.tenant_id, c.tier, c.current_stage, x.day
    )
    select coalesce(b.tenant_id, a.tenant_id), coalesce(b.tier, a.tier),
           coalesce(b.current_stage, a.current_stage), coalesce(b.day, a.day),
           b.entered_count, a.entered_count::bigint, b.action_count, a.action_count::bigint
      from buckets as b
      full join actual as a
        on a.tenant_id = b.tenant_id and a.tier is not distinct from b.tier
       and a.current_stage = b.current_stage and a.day = b.day
     where coalesce(b.entered_count, 0) <> coalesce(a.entered_count, 0)
        or coalesce(b.action_count, 0) <> coalesce(a.action_count, 0)
     order by 1, 2, 3, 4
$$;

comment on function enforcement_private.overview_days_drift() is
    'The (tenant, tier, stage, day) buckets where the overview''s day buckets (folded rows plus pending '
    'deltas) differ from a direct count of the open cases without a tier override by UTC day of '
    'stage_entered_at and of next_action_at; empty when they agree. For tests and on-call. Not callable over '
    'the API.';

revoke execute on function enforcement_private.overview_days_drift() from public;

create function enforcement_private.resync_overview_days()
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_buckets integer;
begin
    -- One statement, one snapshot, no lock: as resync_overview_rollup() for the totals.
    insert into public.enforcement_overview_days_deltas
        (tenant_id, tier, current_stage, day, entered_count, action_count)
    select d.tenant_id, d.tier, d.current_stage, d.day,
           coalesce(d.entered_count, 0) - coalesce(d.bucket_entered_count, 0),
           coalesce(d.action_count, 0) - coalesce(d.bucket_action_count, 0)
      from enforcement_private.overview_days_drift() as d;
    get diagnostics v_buckets = row_count;
    perform enforcement_private.fold_overview_days();
    -- Buckets that fell to zero (their cases closed or moved on) say nothing; drop them so the
    -- table holds the days open cases occupy. Under the fold lock (taken just above unless a
    -- concurrent fold holds it; then next night), so no fold adds to a row being dropped.
    if pg_catalog.current_setting('transaction_isolation') = 'read committed'
       and pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('dragonfly.enforcement_overview_rollup')) then
        delete from public.enforcement_overview_days as r
         where r.entered_count = 0 and r.action_count = 0;
    end if;
    return v_buckets;
end;
$$;

comment on function enforcement_private.resync_overview_days() is
    'Repairs the overview''s day buckets where overview_days_drift() finds a difference, by appending the '
    'correcting deltas (no lock; exact also while cases change), folds the pending day deltas, and drops '
    'folded buckets that fell to zero. Returns the number of buckets corrected, normally 0. Run by the '
    'migration (initial buckets) and nightly through resync_overview_rollup(). Not callable over the API.';

revoke execute on function enforcement_private.resync_overview_days() from public;

-- The nightly repair (refresh_enforcement_metrics() calls resync_overview_rollup()) covers
-- the buckets too. Its result stays the number of totals groups corrected (what the refresh
-- reports as overview_totals_resynced); the buckets' own count is resync_overview_days()'s.
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
    perform enforcement_private.resync_overview_days();
    return v_groups;
end;
$$;

comment on function enforcement_private.resync_overview_rollup() is
    'Repairs the overview totals where overview_rollup_drift() finds a difference, by appending the '
    'correcting deltas of each (tenant, tier, stage) group (no lock; exact also while cases change), then '
    'folds pending deltas and repairs the day buckets (resync_overview_days()). Returns the number of totals '
    'groups corrected, normally 0. Run by the migrations (initial totals) and nightly by '
    'refresh_enforcement_metrics(). Not callable over the API.';

revoke execute on function enforcement_private.resync_overview_rollup() from public;

-- The cases already there.
select enforcement_private.resync_overview_days();
