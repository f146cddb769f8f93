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

-- The repair folds the day deltas itself (fold_overview_rollup() would, one time in eight).
create or replace function enforcement_private.resync_overview_days()
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
