-- Hour buckets beside the overview's day buckets (20261204100000): per (tenant_id, tier,
-- current_stage, UTC hour), the same two counts, kept by the same triggers and folded with them.
--
-- Why: the flat overview (20261204100200) counts, per group, the days before each cutoff's UTC
-- day from the day buckets and the part of the cutoff's day from an index range of up to half a
-- day. Half a day of a million-case book is thousands of index tuples per read, and after a
-- night's writes each of them is a heap fetch until vacuum: 9 ms freshly vacuumed and 41 ms after
-- the whole-book night at a million cases, against 5 ms at 100k. With hour buckets a read takes
-- the days before the cutoff's day from the day buckets, the hours of that day before the
-- cutoff's hour from the hour buckets (at most 23 rows per group, one index range), and only the
-- cutoff's own hour from the cases' index, forward or backward (at most half an hour of cases).
-- The view that does so is 20261205200100.
--
-- The day buckets stay: summing hours instead would read 24 times the rows for every day of
-- history. Both levels follow every change, so the triggers append both kinds of delta; the
-- fold moves both in one transaction in eight, as it moved the days.
--
-- An hour is its UTC start, `date_trunc('hour', ts at time zone 'UTC') at time zone 'UTC'`: a
-- timestamptz, the same instant whatever the session's TimeZone (zones with half-hour offsets
-- included).
--
-- Keys: an unscored group has tier null, and `tier = $1` cannot reach it, so the folded hours
-- are keyed on tier_key = coalesce(tier, '') (no tier is the empty string: tiers are the tier
-- lookup's names), a stored column rather than an expression index: under row-level security
-- an index condition must be leakproof, and PostgreSQL does not take a COALESCE as such, so the
-- view compares the column with a column (20261205200100). One index serves the fold's MERGE
-- and the view's per-group ranges alike.

create table public.enforcement_overview_hours (
    tenant_id uuid not null,
    tier text,
    current_stage text not null,
    hour timestamptz not null,
    entered_count bigint not null,
    action_count bigint not null,
    tier_key text not null generated always as (coalesce(tier, '')) stored,
    -- The counts ride in the index: on all-visible pages the view's ranges are index-only.
    constraint enforcement_overview_hours_key unique (tenant_id, current_stage, tier_key, hour)
        include (entered_count, action_count)
);

comment on table public.enforcement_overview_hours is
    'Folded hour buckets behind v_enforcement_overview''s SLA-breach and due counts: per (tenant_id, tier, '
    'current_stage, UTC hour), the open enforcement cases without a tier override that entered their stage '
    'in that hour (entered_count) and that have their next action due in it (action_count). Add the pending '
    'rows of enforcement_overview_hours_deltas. The view reads only the hours of a cutoff''s day; the days '
    'before it come from enforcement_overview_days. Written only by the triggers on enforcement_cases '
    '(migration 20261205200000); members read their tenants'' rows.';
comment on column public.enforcement_overview_hours.tier_key is
    'coalesce(tier, ''''): the key''s tier, so that an unscored group is one index range too.';
comment on column public.enforcement_overview_hours.hour is
    'The start of the UTC hour of stage_entered_at (entered_count) or next_action_at (action_count).';

create table public.enforcement_overview_hours_deltas (
    tenant_id uuid not null,
    tier text,
    current_stage text not null,
    hour timestamptz not null,
    entered_count bigint not null,
    action_count bigint not null
);

comment on table public.enforcement_overview_hours_deltas is
    'Net changes to enforcement_overview_hours not folded into it yet: one row per (tenant_id, tier, '
    'current_stage, hour) per changing statement, appended by the triggers on enforcement_cases and folded '
    'with the day buckets. Insert-only for writers.';

alter table public.enforcement_overview_hours enable row level security;
alter table public.enforcement_overview_hours_deltas enable row level security;

revoke all on public.enforcement_overview_hours, public.enforcement_overview_hours_deltas
    from public, anon, authenticated, service_role;
grant select on public.enforcement_overview_hours, public.enforcement_overview_hours_deltas
    to authenticated, enforcement_operator, service_role;

create policy "Members read their tenants' overview hours"
    on public.enforcement_overview_hours
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

comment on policy "Members read their tenants' overview hours" on public.enforcement_overview_hours is
    'The rule of "Members read their tenants'' cases": a tenant''s hour buckets are visible exactly to those '
    'who may read its cases. Narrow this with that policy.';

create policy "Members read their tenants' pending overview hour changes"
    on public.enforcement_overview_hours_deltas
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

comment on policy "Members read their tenants' pending overview hour changes" on public.enforcement_overview_hours_deltas is
    'The rule of "Members read their tenants'' cases": a tenant''s pending hour changes are visible exactly '
    'to those who may read its cases. Narrow this with that policy.';

-- ---------------------------------------------------------------------------------------
-- Folding: the day deltas as before, then the hour deltas, under the same lock.

create or replace function enforcement_private.fold_overview_days()
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    -- The rule of the totals' fold (20261127002790): one fold at a time, never waiting,
    -- READ COMMITTED only (a fresh snapshot after taking the lock).
    if pg_catalog.current_setting('transaction_isolation') <> 'read committed'
       or not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('dragonfly.enforcement_overview_rollup')) then
        return;
    end if;

    -- One statement per level: the deltas it deletes are exactly those whose sums it adds.
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

    -- The hours: many more keys than days, so the join is written on the key's columns
    -- (tier_key) and the rows are probed, not scanned. MERGE is safe here for the days' reason:
    -- every fold holds the fold lock.
    with moved as (
        delete from public.enforcement_overview_hours_deltas as d
        returning d.tenant_id, d.tier, d.current_stage, d.hour, d.entered_count, d.action_count
    ),
    summed as (
        select m.tenant_id, m.tier, m.current_stage, m.hour,
               pg_catalog.sum(m.entered_count) as entered_count, pg_catalog.sum(m.action_count) as action_count
          from moved as m
         group by m.tenant_id, m.tier, m.current_stage, m.hour
    )
    merge into public.enforcement_overview_hours as r
    using summed as s
       on r.tenant_id = s.tenant_id
      and r.current_stage = s.current_stage
      and r.tier_key = coalesce(s.tier, '')
      and r.hour = s.hour
    when matched then
        update set entered_count = r.entered_count + s.entered_count,
                   action_count = r.action_count + s.action_count
    when not matched then
        insert (tenant_id, tier, current_stage, hour, entered_count, action_count)
        values (s.tenant_id, s.tier, s.current_stage, s.hour, s.entered_count, s.action_count);
end;
$$;

comment on function enforcement_private.fold_overview_days() is
    'Moves the committed rows of enforcement_overview_days_deltas into enforcement_overview_days (per tenant, '
    'tier, stage and day) and those of enforcement_overview_hours_deltas into enforcement_overview_hours (per '
    'hour), one statement each, if this transaction gets the fold advisory lock without waiting and runs in '
    'READ COMMITTED; otherwise does nothing. Called by fold_overview_rollup() one transaction in eight, and by '
    'resync_overview_days(). Not callable over the API.';

revoke execute on function enforcement_private.fold_overview_days() from public;

-- ---------------------------------------------------------------------------------------
-- The triggers append hour deltas too. Redefined (20261204100000): the totals' and the days'
-- statements are unchanged; the hours' statement follows them, from the same transition
-- tables, and the fold runs when any of them wrote.

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

    insert into public.enforcement_overview_hours_deltas
        (tenant_id, tier, current_stage, hour, entered_count, action_count)
    select n.tenant_id, n.tier, n.current_stage, b.hour, pg_catalog.sum(b.entered), pg_catalog.sum(b.action)
      from new_cases as n
     cross join lateral (
         values (pg_catalog.date_trunc('hour', n.stage_entered_at at time zone 'UTC') at time zone 'UTC', 1, 0),
                (pg_catalog.date_trunc('hour', n.next_action_at at time zone 'UTC') at time zone 'UTC', 0, 1)
     ) as b (hour, entered, action)
     where n.closed_at is null and n.tier_override is null and b.hour is not null
     group by n.tenant_id, n.tier, n.current_stage, b.hour;
    v_wrote := v_wrote or found;

    if v_wrote then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_insert() is
    'AFTER INSERT statement trigger on enforcement_cases: appends the new open cases without a tier '
    'override to enforcement_overview_rollup_deltas per (tenant, tier, stage), and to '
    'enforcement_overview_days_deltas and enforcement_overview_hours_deltas per UTC day and hour of '
    'stage_entered_at and of next_action_at, then tries to fold. Not callable as an RPC.';

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

    -- The same for the buckets: a payment or a note moves no day or hour and writes nothing; a
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

    insert into public.enforcement_overview_hours_deltas
        (tenant_id, tier, current_stage, hour, entered_count, action_count)
    select d.tenant_id, d.tier, d.current_stage, b.hour, pg_catalog.sum(b.entered), pg_catalog.sum(b.action)
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
         values (pg_catalog.date_trunc('hour', d.stage_entered_at at time zone 'UTC') at time zone 'UTC', d.sign, 0),
                (pg_catalog.date_trunc('hour', d.next_action_at at time zone 'UTC') at time zone 'UTC', 0, d.sign)
     ) as b (hour, entered, action)
     where b.hour is not null
     group by d.tenant_id, d.tier, d.current_stage, b.hour
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
    'to enforcement_overview_rollup_deltas per (tenant, tier, stage), and to '
    'enforcement_overview_days_deltas and enforcement_overview_hours_deltas per UTC day and hour, then tries '
    'to fold. Not callable as an RPC.';

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

    insert into public.enforcement_overview_hours_deltas
        (tenant_id, tier, current_stage, hour, entered_count, action_count)
    select o.tenant_id, o.tier, o.current_stage, b.hour, -pg_catalog.sum(b.entered), -pg_catalog.sum(b.action)
      from old_cases as o
     cross join lateral (
         values (pg_catalog.date_trunc('hour', o.stage_entered_at at time zone 'UTC') at time zone 'UTC', 1, 0),
                (pg_catalog.date_trunc('hour', o.next_action_at at time zone 'UTC') at time zone 'UTC', 0, 1)
     ) as b (hour, entered, action)
     where o.closed_at is null and o.tier_override is null and b.hour is not null
     group by o.tenant_id, o.tier, o.current_stage, b.hour;
    v_wrote := v_wrote or found;

    if v_wrote then
        perform enforcement_private.fold_overview_rollup();
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_delete() is
    'AFTER DELETE statement trigger on enforcement_cases: takes the deleted open cases without a tier '
    'override out of the totals (a delta row per tenant, tier and stage) and out of the day and hour '
    'buckets, then tries to fold. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_delete() from public;

create or replace function enforcement_private.tg_overview_rollup_on_truncate()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- TRUNCATE holds enforcement_cases exclusively, so no writer is in flight; wait for a
    -- fold still running elsewhere, then empty the totals and both levels of buckets.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('dragonfly.enforcement_overview_rollup'));
    delete from public.enforcement_overview_rollup_deltas;
    delete from public.enforcement_overview_rollup;
    delete from public.enforcement_overview_days_deltas;
    delete from public.enforcement_overview_days;
    delete from public.enforcement_overview_hours_deltas;
    delete from public.enforcement_overview_hours;
    return null;
end;
$$;

comment on function enforcement_private.tg_overview_rollup_on_truncate() is
    'AFTER TRUNCATE statement trigger on enforcement_cases: empties the overview totals and the day and hour '
    'buckets. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_rollup_on_truncate() from public;

-- ---------------------------------------------------------------------------------------
-- Checking and repairing the hour buckets, with the days'.

create function enforcement_private.overview_hours_drift()
returns table (
    tenant_id uuid,
    tier text,
    current_stage text,
    hour timestamptz,
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
        select b.tenant_id, b.tier, b.current_stage, b.hour,
               pg_catalog.sum(b.entered_count) as entered_count, pg_catalog.sum(b.action_count) as action_count
          from (
              select r.tenant_id, r.tier, r.current_stage, r.hour, r.entered_count, r.action_count
                from public.enforcement_overview_hours as r
              union all
              select d.tenant_id, d.tier, d.current_stage, d.hour, d.entered_count, d.action_count
                from public.enforcement_overview_hours_deltas as d
          ) as b
         group by b.tenant_id, b.tier, b.current_stage, b.hour
    ),
    actual as (
        select c.tenant_id, c.tier, c.current_stage, x.hour,
               pg_catalog.sum(x.entered) as entered_count, pg_catalog.sum(x.action) as action_count
          from public.enforcement_cases as c
         cross join lateral (
             values (pg_catalog.date_trunc('hour', c.stage_entered_at at time zone 'UTC') at time zone 'UTC', 1, 0),
                    (pg_catalog.date_trunc('hour', c.next_action_at at time zone 'UTC') at time zone 'UTC', 0, 1)
         ) as x (hour, entered, action)
         where c.closed_at is null and c.tier_override is null and x.hour is not null
         group by c.tenant_id, c.tier, c.current_stage, x.hour
    )
    select coalesce(b.tenant_id, a.tenant_id), coalesce(b.tier, a.tier),
           coalesce(b.current_stage, a.current_stage), coalesce(b.hour, a.hour),
           b.entered_count, a.entered_count::bigint, b.action_count, a.action_count::bigint
      from buckets as b
      full join actual as a
        on a.tenant_id = b.tenant_id and a.tier is not distinct from b.tier
       and a.current_stage = b.current_stage and a.hour = b.hour
     where coalesce(b.entered_count, 0) <> coalesce(a.entered_count, 0)
        or coalesce(b.action_count, 0) <> coalesce(a.action_count, 0)
     order by 1, 2, 3, 4
$$;

comment on function enforcement_private.overview_hours_drift() is
    'The (tenant, tier, stage, hour) buckets where the overview''s hour buckets (folded rows plus pending '
    'deltas) differ from a direct count of the open cases without a tier override by UTC hour of '
    'stage_entered_at and of next_action_at; empty when they agree. For tests and on-call. Not callable over '
    'the API.';

revoke execute on function enforcement_private.overview_hours_drift() from public;

create or replace function enforcement_private.resync_overview_days()
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_buckets integer;
    v_hours integer;
begin
    -- One statement, one snapshot, no lock per level: as resync_overview_rollup() for the totals.
    insert into public.enforcement_overview_days_deltas
        (tenant_id, tier, current_stage, day, entered_count, action_count)
    select d.tenant_id, d.tier, d.current_stage, d.day,
           coalesce(d.entered_count, 0) - coalesce(d.bucket_entered_count, 0),
           coalesce(d.action_count, 0) - coalesce(d.bucket_action_count, 0)
      from enforcement_private.overview_days_drift() as d;
    get diagnostics v_buckets = row_count;
    insert into public.enforcement_overview_hours_deltas
        (tenant_id, tier, current_stage, hour, entered_count, action_count)
    select d.tenant_id, d.tier, d.current_stage, d.hour,
           coalesce(d.entered_count, 0) - coalesce(d.bucket_entered_count, 0),
           coalesce(d.action_count, 0) - coalesce(d.bucket_action_count, 0)
      from enforcement_private.overview_hours_drift() as d;
    get diagnostics v_hours = row_count;
    perform enforcement_private.fold_overview_days();
    -- Buckets that fell to zero (their cases closed or moved on) say nothing; drop them so the
    -- tables hold the days and hours open cases occupy. Under the fold lock (taken just above
    -- unless a concurrent fold holds it; then next night), so no fold adds to a row being dropped.
    if pg_catalog.current_setting('transaction_isolation') = 'read committed'
       and pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('dragonfly.enforcement_overview_rollup')) then
        delete from public.enforcement_overview_days as r
         where r.entered_count = 0 and r.action_count = 0;
        delete from public.enforcement_overview_hours as r
         where r.entered_count = 0 and r.action_count = 0;
    end if;
    return v_buckets + v_hours;
end;
$$;

comment on function enforcement_private.resync_overview_days() is
    'Repairs the overview''s day and hour buckets where overview_days_drift() and overview_hours_drift() find '
    'a difference, by appending the correcting deltas (no lock; exact also while cases change), folds the '
    'pending deltas, and drops folded buckets that fell to zero. Returns the number of buckets corrected '
    '(days and hours), normally 0. Run by the migrations (initial buckets) and nightly through '
    'resync_overview_rollup(). Not callable over the API.';

revoke execute on function enforcement_private.resync_overview_days() from public;

-- ---------------------------------------------------------------------------------------
-- The hour tables are read by the view on the flat path, so their row-level security joins
-- the fingerprint (20261204100100), and the fingerprint is recorded again.

create or replace function enforcement_private.overview_policy_fingerprint()
returns text
language sql
stable
security definer
set search_path = ''
as $$
    select pg_catalog.md5(pg_catalog.string_agg(t.line, E'\n' order by t.line))
      from (
          -- %L quotes each part (NULL for a missing one), so no two definitions print alike.
          select pg_catalog.format(
                     '%L %L %L %L %L %L %L %L %L',
                     c.oid::pg_catalog.regclass::text,
                     c.relrowsecurity,
                     c.relforcerowsecurity,
                     p.polname,
                     p.polcmd,
                     p.polpermissive,
                     (select pg_catalog.string_agg(n.name, ',' order by n.name)
                        from (select case when r.oid = 0 then 'public' else r.oid::pg_catalog.regrole::text end
                                from pg_catalog.unnest(p.polroles) as r (oid)) as n (name)),
                     pg_catalog.pg_get_expr(p.polqual, p.polrelid),
                     pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid)
                 ) as line
            from pg_catalog.pg_class as c
            left join pg_catalog.pg_policy as p on p.polrelid = c.oid
           where c.oid = any (array[
               'public.enforcement_cases'::pg_catalog.regclass,
               'public.enforcement_overview_rollup'::pg_catalog.regclass,
               'public.enforcement_overview_rollup_deltas'::pg_catalog.regclass,
               'public.enforcement_overview_days'::pg_catalog.regclass,
               'public.enforcement_overview_days_deltas'::pg_catalog.regclass,
               'public.enforcement_overview_hours'::pg_catalog.regclass,
               'public.enforcement_overview_hours_deltas'::pg_catalog.regclass,
               'public.tenants'::pg_catalog.regclass,
               'public.enforcement_stage_lookup'::pg_catalog.regclass,
               'public.enforcement_tier_lookup'::pg_catalog.regclass
           ])
      ) as t
$$;

select enforcement_private.record_overview_policies();

-- The cases already there (the day buckets are exact already; this fills the hours).
select enforcement_private.resync_overview_days();
