-- The running totals behind v_enforcement_overview: open cases and their balance per
-- (tier, stage), kept by statement-level triggers on enforcement_cases.
--
-- Why: the overview is the Ops Console's landing page. Aggregating every open case on
-- each read cost 60-100 ms on a 100k-case book, a third of it summing numeric balances.
-- Counts and balances only change when a case row changes, so the triggers keep them
-- per (tier, current_stage) in the same transaction as the change; the view adds the
-- time-dependent figures (SLA breaches, due cases, earliest next action, days in stage),
-- which change with the clock and no trigger could keep, from a narrow index
-- (v_enforcement_overview in 20261127002800_enforcement_views.sql).
--
-- What the totals cover: open cases (closed_at is null) WITHOUT a tier override. A case
-- with an override belongs to the override's tier only until override_expires_at, so its
-- effective tier changes with the clock; the view aggregates those (few) cases directly.
--
-- Exactness, also under concurrency: writers never update a shared row. Each statement
-- that changes cases appends its net change per (tier, stage) to
-- enforcement_overview_rollup_deltas (insert only: no row lock, no waiting, no deadlock
-- between writers); the view reads enforcement_overview_rollup plus the pending deltas.
-- A writer then folds the committed deltas into enforcement_overview_rollup, but only if
-- it gets the fold's advisory lock without waiting and runs in READ COMMITTED (a fresh
-- snapshot after taking the lock, so the fold never meets a row a concurrent fold changed);
-- otherwise the next writer folds. A fold is one statement (delete the deltas, upsert their
-- sums), so a reader sees the totals either before or after it, never half of it. The price
-- is a few extra rows per write and a tiny table that churns (autovacuum keeps it small);
-- the alternative, every writer upserting the (tier, stage) row directly, would serialize
-- all writers of one tier and stage on one row until commit and could deadlock two
-- transactions that touch two stages in opposite orders.
--
-- Row-level security: the totals are over every open case. The view uses a (tier, stage)
-- total only after checking that the caller's visible open cases of that group are as many
-- as the total counts (visible rows are a subset, so equal counts mean the same rows);
-- otherwise it sums the visible rows itself. So the view stays exact for any case policy.
-- The tables themselves are readable by enforcement_operator because the operator can read
-- every case ("Enforcement operators can read every case"): the totals reveal nothing it
-- cannot compute. Narrowing the case policy must narrow (or drop) the rollup policies too;
-- the view then recounts from the visible cases (slower, still exact).
--
-- The triggers are ENABLE ALWAYS: the totals are derived data like an index, so they
-- follow every change, also under session_replication_role = replica (bulk loads, logical
-- replication). Only disabling the triggers by hand can desynchronize them;
-- enforcement_private.overview_rollup_drift() shows any difference and
-- enforcement_private.resync_overview_rollup() repairs it, which
-- refresh_enforcement_metrics() does nightly as a safety net.

create table public.enforcement_overview_rollup (
    tier text,
    current_stage text not null,
    case_count bigint not null,
    balance numeric not null,
    constraint enforcement_overview_rollup_key unique nulls not distinct (tier, current_stage)
);

comment on table public.enforcement_overview_rollup is
    'Folded totals behind v_enforcement_overview: per (tier, current_stage), the number of open enforcement '
    'cases without a tier override and the sum of their current_balance. Add the pending rows of '
    'enforcement_overview_rollup_deltas for the current totals. Written only by the triggers on '
    'enforcement_cases (migration 20261127002790).';
comment on column public.enforcement_overview_rollup.tier is
    'enforcement_cases.tier (null: not tiered yet); the cases counted have no tier override, so it is their effective tier.';

create table public.enforcement_overview_rollup_deltas (
    tier text,
    current_stage text not null,
    case_count bigint not null,
    balance numeric not null
);

comment on table public.enforcement_overview_rollup_deltas is
    'Net changes to enforcement_overview_rollup not folded into it yet: one row per (tier, current_stage) '
    'per changing statement, appended by the triggers on enforcement_cases and folded by the next writer '
    'that gets the fold lock. Insert-only for writers, so concurrent writers never wait on each other.';

alter table public.enforcement_overview_rollup enable row level security;
alter table public.enforcement_overview_rollup_deltas enable row level security;

revoke all on public.enforcement_overview_rollup, public.enforcement_overview_rollup_deltas
    from public, anon, authenticated, service_role;
-- Derived data: nobody writes it but the triggers (their SECURITY DEFINER functions).
grant select on public.enforcement_overview_rollup, public.enforcement_overview_rollup_deltas
    to enforcement_operator, service_role;

create policy "Enforcement operators can read the overview totals"
    on public.enforcement_overview_rollup
    for select
    to enforcement_operator
    using (true);

comment on policy "Enforcement operators can read the overview totals" on public.enforcement_overview_rollup is
    'Because they can read every case ("Enforcement operators can read every case"); narrow this with that policy.';

create policy "Enforcement operators can read pending overview changes"
    on public.enforcement_overview_rollup_deltas
    for select
    to enforcement_operator
    using (true);

comment on policy "Enforcement operators can read pending overview changes" on public.enforcement_overview_rollup_deltas is
    'Because they can read every case ("Enforcement operators can read every case"); narrow this with that policy.';

-- ---------------------------------------------------------------------------------------
-- Folding

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
        returning d.tier, d.current_stage, d.case_count, d.balance
    )
    insert into public.enforcement_overview_rollup as r (tier, current_stage, case_count, balance)
    select m.tier, m.current_stage, pg_catalog.sum(m.case_count), pg_catalog.sum(m.balance)
      from moved as m
     group by m.tier, m.current_stage
    on conflict on constraint enforcement_overview_rollup_key do update
        set case_count = r.case_count + excluded.case_count,
            balance = r.balance + excluded.balance;
end;
$$;

comment on function enforcement_private.fold_overview_rollup() is
    'Moves the committed rows of enforcement_overview_rollup_deltas into enforcement_overview_rollup in one '
    'statement, if this transaction gets the fold advisory lock without waiting and runs in READ COMMITTED; '
    'otherwise does nothing (a later writer folds). Called by the rollup triggers. Not callable over the API.';

revoke execute on function enforcement_private.fold_overview_rollup() from public;

-- ---------------------------------------------------------------------------------------
-- The triggers: one function per event, because each event has its own transition tables.

create or replace function enforcement_private.tg_overview_rollup_on_insert()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into public.enforcement_overview_rollup_deltas (tier, current_stage, case_count, balance)
    select n.tier, n.current_stage, pg_catalog.count(*), pg_catalog.sum(n.current_balance)
      from new_cases as n
     where n.closed_at is null and n.tier_override is null
     group by n.tier, n.current_stage;
    if found then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_insert() is
    'AFTER INSERT statement trigger on enforcement_cases: appends the new open cases without a tier '
    'override to enforcement_overview_rollup_deltas, then tries to fold. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_insert() from public;

create or replace function enforcement_private.tg_overview_rollup_on_update()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- Old rows out, new rows in; groups whose count and balance did not move (a note, a
    -- next_action_at, a status column) write nothing.
    insert into public.enforcement_overview_rollup_deltas (tier, current_stage, case_count, balance)
    select d.tier, d.current_stage, pg_catalog.sum(d.case_count), pg_catalog.sum(d.balance)
      from (
          select o.tier, o.current_stage, -1 as case_count, -o.current_balance as balance
            from old_cases as o
           where o.closed_at is null and o.tier_override is null
          union all
          select n.tier, n.current_stage, 1, n.current_balance
            from new_cases as n
           where n.closed_at is null and n.tier_override is null
      ) as d
     group by d.tier, d.current_stage
    having pg_catalog.sum(d.case_count) <> 0 or pg_catalog.sum(d.balance) <> 0;
    if found then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_update() is
    'AFTER UPDATE statement trigger on enforcement_cases: appends the net change per (tier, stage) of open '
    'cases without a tier override (closing, stage moves, payments, tier changes, overrides set or cleared) '
    'to enforcement_overview_rollup_deltas, then tries to fold. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_update() from public;

create or replace function enforcement_private.tg_overview_rollup_on_delete()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    insert into public.enforcement_overview_rollup_deltas (tier, current_stage, case_count, balance)
    select o.tier, o.current_stage, -pg_catalog.count(*), -pg_catalog.sum(o.current_balance)
      from old_cases as o
     where o.closed_at is null and o.tier_override is null
     group by o.tier, o.current_stage;
    if found then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_delete() is
    'AFTER DELETE statement trigger on enforcement_cases: takes the deleted open cases without a tier '
    'override out of the totals (a delta row), then tries to fold. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_delete() from public;

create or replace function enforcement_private.tg_overview_rollup_on_truncate()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- TRUNCATE holds enforcement_cases exclusively, so no writer is in flight; wait for a
    -- fold still running elsewhere, then empty both tables.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('dragonfly.enforcement_overview_rollup'));
    delete from public.enforcement_overview_rollup_deltas;
    delete from public.enforcement_overview_rollup;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_truncate() is
    'AFTER TRUNCATE statement trigger on enforcement_cases: empties the overview totals. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_truncate() from public;

create trigger enforcement_cases_overview_rollup_insert
    after insert on public.enforcement_cases
    referencing new table as new_cases
    for each statement execute function enforcement_private.tg_overview_rollup_on_insert();

create trigger enforcement_cases_overview_rollup_update
    after update on public.enforcement_cases
    referencing old table as old_cases new table as new_cases
    for each statement execute function enforcement_private.tg_overview_rollup_on_update();

create trigger enforcement_cases_overview_rollup_delete
    after delete on public.enforcement_cases
    referencing old table as old_cases
    for each statement execute function enforcement_private.tg_overview_rollup_on_delete();

create trigger enforcement_cases_overview_rollup_truncate
    after truncate on public.enforcement_cases
    for each statement execute function enforcement_private.tg_overview_rollup_on_truncate();

-- Derived data follows every change, whatever session_replication_role says.
alter table public.enforcement_cases enable always trigger enforcement_cases_overview_rollup_insert;
alter table public.enforcement_cases enable always trigger enforcement_cases_overview_rollup_update;
alter table public.enforcement_cases enable always trigger enforcement_cases_overview_rollup_delete;
alter table public.enforcement_cases enable always trigger enforcement_cases_overview_rollup_truncate;

-- ---------------------------------------------------------------------------------------
-- Checking and repairing

create or replace function enforcement_private.overview_rollup_drift()
returns table (
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
        select t.tier, t.current_stage, pg_catalog.sum(t.case_count) as case_count, pg_catalog.sum(t.balance) as balance
          from (
              select r.tier, r.current_stage, r.case_count, r.balance from public.enforcement_overview_rollup as r
              union all
              select d.tier, d.current_stage, d.case_count, d.balance from public.enforcement_overview_rollup_deltas as d
          ) as t
         group by t.tier, t.current_stage
    ),
    actual as (
        select c.tier, c.current_stage, pg_catalog.count(*) as case_count, pg_catalog.sum(c.current_balance) as balance
          from public.enforcement_cases as c
         where c.closed_at is null and c.tier_override is null
         group by c.tier, c.current_stage
    )
    select coalesce(t.tier, a.tier), coalesce(t.current_stage, a.current_stage),
           t.case_count, a.case_count, t.balance, a.balance
      from totals as t
      full join actual as a on a.tier is not distinct from t.tier and a.current_stage = t.current_stage
     where coalesce(t.case_count, 0) <> coalesce(a.case_count, 0)
        or coalesce(t.balance, 0) <> coalesce(a.balance, 0)
     order by 1, 2
$$;

comment on function enforcement_private.overview_rollup_drift() is
    'The (tier, stage) groups where the overview totals (rollup plus pending deltas) differ from a direct '
    'aggregate of the open cases without a tier override; empty when they agree. For tests and on-call. '
    'Not callable over the API.';

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
    -- delta. So appending (actual - totals) is exact without locking anything, in any
    -- isolation level, beside the fleet.
    insert into public.enforcement_overview_rollup_deltas (tier, current_stage, case_count, balance)
    select d.tier,
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
    'correcting deltas (no lock; exact also while cases change). Returns the number of (tier, stage) groups '
    'corrected, normally 0, then folds pending deltas. Run by the migration (initial totals) and nightly by '
    'refresh_enforcement_metrics(). '
    'Not callable over the API.';

revoke execute on function enforcement_private.resync_overview_rollup() from public;

-- Cases that existed before this migration (a database migrated while in use).
select enforcement_private.resync_overview_rollup();
