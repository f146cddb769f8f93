-- refresh_enforcement_metrics(): a nightly pass reads only the cases that may have changed,
-- and a step holds its case locks for a bounded time.
--
-- Why, 1: every pass read every open case (250 per step), so a pass that found nothing to do
-- cost 13% of a whole-book re-scoring pass at 100k cases and would read 10M cases at 10M.
-- What a case's refresh computes (refresh_case_targets) depends only on
--   * its own row: tier, tier_reason, collectability_score, tier_override,
--     override_expires_at, override_note, next_action_at, current_stage, stage_entered_at,
--     closed_at, judgment_id;
--   * its court case's collectability_score (judgments.cases, by judgment_id);
--   * its sla_resurfaced events (the latest occurred_at);
--   * the lookups (enforcement_tier_lookup's bands, enforcement_stage_lookup's sla_days);
--   * the clock, in exactly two places: an override expires (override_expires_at <= now)
--     and a case falls due (next_action_at <= now: it resurfaces).
-- After a step has refreshed a case, the case stays as it is until one of those changes. So:
--   * writers mark the case: statement triggers append its id to
--     enforcement_private.refresh_marks when a case's inputs change (the columns above), when
--     its court case's score or judgment changes, and when one of its sla_resurfaced events
--     is updated or deleted;
--   * the clock marks the rest: each step of a marked pass appends the open cases whose
--     override expired or whose next action fell due since the last step looked
--     (refresh_progress.scanned_to, through enforcement_cases_override_expires_idx and
--     enforcement_cases_next_action_idx), so every moment is looked at once;
--   * a marked pass walks the marks in case id order instead of the cases, with the same
--     cursor, chunk and locking as before; the judgments and totals phases are unchanged.
-- Marks are insert-only for writers (no key, no row lock: a writer never waits on one) and
-- deleted only by refresh steps, which are serialized by the progress row. A step deletes the
-- marks it claims in one statement *before* it reads the cases, so every mark it removes was
-- committed before it looks and its change is seen; a mark committed later is not removed and
-- is read by the next pass. Marks of cases the step could not lock are written again.
-- The refresh's own writes leave their cases exactly as a step would compute them, so they do
-- not mark (dragonfly.refresh_step_writing, set only around the refresh's own UPDATE).
--
-- A pass is full (every open case, as before; it also consumes the marks it passes) when
-- refresh_enforcement_metrics(true) starts it, when a full pass was requested
-- (enforcement_private.request_full_refresh(): by this migration, by any change to the two
-- lookups, and by any later migration that changes what the refresh computes), when no full
-- pass has run yet, or when the last full pass began longer ago than
-- dragonfly.refresh_full_every (default 7 days: writes that bypass triggers, such as a load
-- with session_replication_role = replica, are caught within a week). Otherwise it is marked.
--
-- Why, 2: a step locked every case of its chunk that changed and held the locks until its
-- commit, so an RPC on one of them waited for the whole chunk's writes (1.17 s at 100k on a
-- loaded machine). Now a step locks and writes the changing cases of its chunk in slices, in
-- id order, each sized to what is left of dragonfly.refresh_lock_budget (default 250ms) at the
-- rate the last writes took per case (refresh_progress.write_seconds_per_case; at least
-- dragonfly.refresh_write_batch cases, default 50), and once it has held locks for the budget
-- it stops after the current slice: the cursor stops at the last case written and the next
-- step continues from there. An RPC on a case of the chunk being written so waits for about
-- the budget (plus at most one smallest slice, plus the refresh's lock wait), whatever the load
-- does to the per-row cost; on a quick night a chunk is still one slice.

-- ---------------------------------------------------------------------------------------
-- The marks

create table enforcement_private.refresh_marks (
    case_id uuid not null,
    marked_at timestamptz not null default pg_catalog.clock_timestamp()
);

create index refresh_marks_case_id_idx on enforcement_private.refresh_marks (case_id);

comment on table enforcement_private.refresh_marks is
    'Enforcement cases whose refresh inputs changed since a refresh step last read them (one row per change; '
    'duplicates allowed). Appended by the marking triggers and by the refresh''s clock scan; deleted by the '
    'refresh step that reads the case. No foreign key: a mark of a deleted or closed case is simply consumed.';

revoke all on enforcement_private.refresh_marks from public;

alter table enforcement_private.refresh_progress
    add column mode text not null default 'full' check (mode in ('full', 'marked')),
    add column full_requested boolean not null default true,
    add column scanned_to timestamptz,
    add column last_full_started_at timestamptz,
    add column write_seconds_per_case double precision;

comment on column enforcement_private.refresh_progress.mode is
    'full: the pass reads every open case; marked: only the cases in refresh_marks.';
comment on column enforcement_private.refresh_progress.full_requested is
    'The next pass to start is full (request_full_refresh()).';
comment on column enforcement_private.refresh_progress.scanned_to is
    'Up to when the clock has been looked at: overrides expiring and next actions falling due up to this time '
    'have been marked (or read by a full pass that began then). Null: no full pass yet.';
comment on column enforcement_private.refresh_progress.last_full_started_at is
    'When the last full pass began (dragonfly.refresh_full_every).';
comment on column enforcement_private.refresh_progress.write_seconds_per_case is
    'How long the last step that wrote took per case it locked (locks, writes, history, events), so the next '
    'step sizes its slices to its lock budget.';

-- Overrides that expire: what the clock scan reads (the partial index keeps only overridden
-- open cases, a few).
create index enforcement_cases_override_expires_idx on public.enforcement_cases (override_expires_at)
    where tier_override is not null and closed_at is null;

create or replace function enforcement_private.request_full_refresh()
returns void
language sql
volatile
security definer
set search_path = ''
as $$
    -- No row yet: no pass has run, and the first one is full anyway.
    update enforcement_private.refresh_progress set full_requested = true where singleton;
$$;

comment on function enforcement_private.request_full_refresh() is
    'Makes the next refresh_enforcement_metrics() pass to start a full one (every open case). For migrations '
    'that change what the refresh computes; the lookup triggers call it. Not callable over the API.';

revoke execute on function enforcement_private.request_full_refresh() from public;

-- ---------------------------------------------------------------------------------------
-- Marking triggers (statement level: one INSERT per writing statement, however many rows)

-- One function per trigger: each reads the transition tables its trigger names.

create or replace function enforcement_private.tg_refresh_mark_cases_inserted()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if pg_catalog.current_setting('dragonfly.refresh_step_writing', true) = 'on' then
        return null;
    end if;
    insert into enforcement_private.refresh_marks (case_id)
    select n.id from new_cases as n where n.closed_at is null;
    return null;
end;
$$;

comment on function enforcement_private.tg_refresh_mark_cases_inserted() is
    'AFTER INSERT statement trigger on enforcement_cases: marks the new open cases (refresh_marks).';

revoke execute on function enforcement_private.tg_refresh_mark_cases_inserted() from public;

create trigger enforcement_cases_refresh_mark_insert
    after insert on public.enforcement_cases
    referencing new table as new_cases
    for each statement execute function enforcement_private.tg_refresh_mark_cases_inserted();

create or replace function enforcement_private.tg_refresh_mark_cases_updated()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- The refresh's own write: the case is left as a step computes it.
    if pg_catalog.current_setting('dragonfly.refresh_step_writing', true) = 'on' then
        return null;
    end if;
    insert into enforcement_private.refresh_marks (case_id)
    select n.id
      from new_cases as n
      join old_cases as o on o.id = n.id
     where n.closed_at is null
       and (n.tier, n.tier_reason, n.collectability_score, n.tier_override, n.override_expires_at,
            n.override_note, n.next_action_at, n.current_stage, n.stage_entered_at, n.closed_at,
            n.judgment_id)
           is distinct from
           (o.tier, o.tier_reason, o.collectability_score, o.tier_override, o.override_expires_at,
            o.override_note, o.next_action_at, o.current_stage, o.stage_entered_at, o.closed_at,
            o.judgment_id);
    return null;
end;
$$;

comment on function enforcement_private.tg_refresh_mark_cases_updated() is
    'AFTER UPDATE statement trigger on enforcement_cases: marks the open cases whose refresh inputs changed '
    '(refresh_marks); not the refresh''s own writes (dragonfly.refresh_step_writing).';

revoke execute on function enforcement_private.tg_refresh_mark_cases_updated() from public;

create trigger enforcement_cases_refresh_mark_update
    after update on public.enforcement_cases
    referencing old table as old_cases new table as new_cases
    for each statement execute function enforcement_private.tg_refresh_mark_cases_updated();

-- Court cases: the open enforcement case of each judgment concerned (one per judgment,
-- enforcement_cases_one_open_per_judgment).

create or replace function enforcement_private.refresh_mark_judgments(p_judgments uuid[])
returns void
language sql
volatile
security definer
set search_path = ''
as $$
    insert into enforcement_private.refresh_marks (case_id)
    select c.id
      from public.enforcement_cases as c
     where c.judgment_id = any (p_judgments) and c.closed_at is null;
$$;

comment on function enforcement_private.refresh_mark_judgments(uuid[]) is
    'Marks the open enforcement cases of the given judgments (refresh_marks). Not callable over the API.';

revoke execute on function enforcement_private.refresh_mark_judgments(uuid[]) from public;

create or replace function enforcement_private.tg_refresh_mark_court_cases_inserted()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    perform enforcement_private.refresh_mark_judgments(array(select n.judgment_id from new_rows as n));
    return null;
end;
$$;

create or replace function enforcement_private.tg_refresh_mark_court_cases_deleted()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    perform enforcement_private.refresh_mark_judgments(array(select o.judgment_id from old_rows as o));
    return null;
end;
$$;

create or replace function enforcement_private.tg_refresh_mark_court_cases_updated()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    perform enforcement_private.refresh_mark_judgments(array(
        select j.judgment_id
          from new_rows as n
          join old_rows as o on o.id = n.id
         cross join lateral (values (n.judgment_id), (o.judgment_id)) as j (judgment_id)
         where (n.collectability_score, n.judgment_id) is distinct from (o.collectability_score, o.judgment_id)
    ));
    return null;
end;
$$;

comment on function enforcement_private.tg_refresh_mark_court_cases_inserted() is
    'AFTER INSERT statement trigger on judgments.cases: marks the open enforcement cases of their judgments.';
comment on function enforcement_private.tg_refresh_mark_court_cases_deleted() is
    'AFTER DELETE statement trigger on judgments.cases: marks the open enforcement cases of their judgments.';
comment on function enforcement_private.tg_refresh_mark_court_cases_updated() is
    'AFTER UPDATE statement trigger on judgments.cases: marks the open enforcement cases of the judgments whose '
    'court case changed collectability_score or judgment (old and new judgment).';

revoke execute on function enforcement_private.tg_refresh_mark_court_cases_inserted() from public;
revoke execute on function enforcement_private.tg_refresh_mark_court_cases_deleted() from public;
revoke execute on function enforcement_private.tg_refresh_mark_court_cases_updated() from public;

create trigger cases_refresh_mark_insert
    after insert on judgments.cases
    referencing new table as new_rows
    for each statement execute function enforcement_private.tg_refresh_mark_court_cases_inserted();

create trigger cases_refresh_mark_update
    after update on judgments.cases
    referencing old table as old_rows new table as new_rows
    for each statement execute function enforcement_private.tg_refresh_mark_court_cases_updated();

create trigger cases_refresh_mark_delete
    after delete on judgments.cases
    referencing old table as old_rows
    for each statement execute function enforcement_private.tg_refresh_mark_court_cases_deleted();

create or replace function enforcement_private.tg_refresh_mark_resurfaced_events()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- An sla_resurfaced event that goes (or moves) may make its case resurface again.
    insert into enforcement_private.refresh_marks (case_id)
    select distinct o.enforcement_case_id
      from old_rows as o
     where o.event_kind = 'sla_resurfaced';
    return null;
end;
$$;

comment on function enforcement_private.tg_refresh_mark_resurfaced_events() is
    'AFTER UPDATE / DELETE statement trigger on enforcement_events: marks the cases whose sla_resurfaced '
    'events changed or went (refresh_marks). Inserts do not fire it.';

revoke execute on function enforcement_private.tg_refresh_mark_resurfaced_events() from public;

create trigger enforcement_events_refresh_mark_update
    after update on public.enforcement_events
    referencing old table as old_rows
    for each statement execute function enforcement_private.tg_refresh_mark_resurfaced_events();

create trigger enforcement_events_refresh_mark_delete
    after delete on public.enforcement_events
    referencing old table as old_rows
    for each statement execute function enforcement_private.tg_refresh_mark_resurfaced_events();

create or replace function enforcement_private.tg_refresh_request_full()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A band or an SLA may move every case, and a truncated event table forgets every
    -- resurfacing: the next pass reads every case.
    perform enforcement_private.request_full_refresh();
    return null;
end;
$$;

comment on function enforcement_private.tg_refresh_request_full() is
    'Statement trigger on enforcement_tier_lookup and enforcement_stage_lookup (any change) and on '
    'enforcement_events (TRUNCATE): requests a full refresh pass.';

revoke execute on function enforcement_private.tg_refresh_request_full() from public;

create trigger enforcement_tier_lookup_refresh_full
    after insert or update or delete or truncate on public.enforcement_tier_lookup
    for each statement execute function enforcement_private.tg_refresh_request_full();

create trigger enforcement_stage_lookup_refresh_full
    after insert or update or delete or truncate on public.enforcement_stage_lookup
    for each statement execute function enforcement_private.tg_refresh_request_full();

create trigger enforcement_events_refresh_full
    after truncate on public.enforcement_events
    for each statement execute function enforcement_private.tg_refresh_request_full();

-- ---------------------------------------------------------------------------------------
-- Writing a slice of a chunk

create or replace function enforcement_private.refresh_write_cases(
    p_ids uuid[],
    p_now timestamptz,
    out locked uuid[],
    out counts jsonb
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    locked := enforcement_private.lock_cases_in_id_order(p_ids);

    -- The refresh's own write leaves each case as a step computes it: no mark.
    perform pg_catalog.set_config('dragonfly.refresh_step_writing', 'on', true);

    -- Computed again from the locked rows, which no one else can change now.
    with target as (
        select t.* from enforcement_private.refresh_case_targets(locked, p_now) as t
    ),
    updated as (
        update public.enforcement_cases as c
           set tier = t.new_tier,
               tier_reason = t.new_reason,
               tier_as_of = case
                   when (t.new_tier, t.new_reason) is distinct from (t.old_tier, t.old_reason) then p_now
                   else c.tier_as_of
               end,
               collectability_score = t.new_score,
               tier_override = t.new_override,
               override_expires_at = t.new_expires_at,
               override_note = t.new_note,
               next_action_at = t.new_next_action_at
          from target as t
         where t.id = c.id and t.changes
        returning c.id
    ),
    done as (
        select t.* from target as t join updated as u on u.id = t.id
    ),
    history as (
        insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta, note)
        select
            d.id,
            'refresh_enforcement_metrics',
            'automation',
            case when d.override_expired then 'override_expired' else 'tier_recalculated' end,
            pg_catalog.jsonb_build_object(
                'tier', pg_catalog.jsonb_build_object('from', d.old_tier, 'to', d.new_tier),
                'tier_reason', pg_catalog.jsonb_build_object('from', d.old_reason, 'to', d.new_reason),
                'collectability_score', pg_catalog.jsonb_build_object('from', d.old_score, 'to', d.new_score)
            ) || case
                when d.override_expired then pg_catalog.jsonb_build_object(
                    'tier_override', pg_catalog.jsonb_build_object('from', d.old_override, 'to', null),
                    'override_expires_at', d.old_expires_at,
                    'override_note', d.old_note
                )
                else '{}'::jsonb
            end,
            case when d.override_expired then 'tier override expired' end
        from done as d
        where d.override_expired or d.new_tier is distinct from d.old_tier
        returning 1
    ),
    events as (
        insert into public.enforcement_events (enforcement_case_id, event_kind, occurred_at, payload, actor, created_at)
        select
            d.id,
            'tier_changed',
            p_now,
            pg_catalog.jsonb_build_object(
                'from', d.old_tier, 'to', d.new_tier, 'reason', d.new_reason,
                'override_expired', d.override_expired
            ),
            'refresh_enforcement_metrics',
            pg_catalog.clock_timestamp()
        from done as d
        where d.new_tier is distinct from d.old_tier
        returning 1
    ),
    resurfaced as (
        -- Cases past their next action resurface once per due date.
        insert into public.enforcement_events (enforcement_case_id, event_kind, occurred_at, payload, actor, created_at)
        select
            t.id,
            'sla_resurfaced',
            p_now,
            pg_catalog.jsonb_build_object(
                'next_action_at', t.new_next_action_at,
                'stage', c.current_stage,
                'days_in_stage', pg_catalog.floor(extract(epoch from p_now - c.stage_entered_at) / 86400)::integer
            ),
            'refresh_enforcement_metrics',
            pg_catalog.clock_timestamp()
        from target as t
        join public.enforcement_cases as c on c.id = t.id
        where t.resurfaces
        returning 1
    )
    select pg_catalog.jsonb_build_object(
        'cases_changed', (select pg_catalog.count(*) from done),
        'tiers_changed', (select pg_catalog.count(*) from done as d where d.new_tier is distinct from d.old_tier),
        'overrides_expired', (select pg_catalog.count(*) from done as d where d.override_expired),
        'next_actions_set',
            (select pg_catalog.count(*) from done as d
              where d.old_next_action_at is null and d.new_next_action_at is not null),
        'history_rows', (select pg_catalog.count(*) from history),
        'tier_events', (select pg_catalog.count(*) from events),
        'resurfaced', (select pg_catalog.count(*) from resurfaced)
    )
    into counts;

    perform pg_catalog.set_config('dragonfly.refresh_step_writing', '', true);
end;
$$;

comment on function enforcement_private.refresh_write_cases(uuid[], timestamptz) is
    'Locks the given open cases in id order (lock_cases_in_id_order) and writes those whose tier, score, '
    'override or next action would change at p_now, with their history rows and tier_changed events, and '
    'resurfaces the overdue ones. Returns the ids locked and the counts. Not callable over the API.';

revoke execute on function enforcement_private.refresh_write_cases(uuid[], timestamptz) from public;

-- ---------------------------------------------------------------------------------------
-- One cases step

create or replace function enforcement_private.refresh_cases_step(
    p_after uuid,
    p_limit integer,
    p_now timestamptz,
    p_marked boolean,
    p_rate double precision,
    out scanned integer,
    out last_id uuid,
    out cut boolean,
    out counts jsonb,
    out rate double precision
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_from constant uuid := coalesce(p_after, '00000000-0000-0000-0000-000000000000'::uuid);
    v_slice_size integer;
    v_size integer;
    v_lock_budget interval;
    v_rows uuid[];
    v_ids uuid[];
    v_changing uuid[];
    v_wanted uuid[];
    v_slice uuid[];
    v_locked uuid[];
    v_all_locked uuid[] := '{}';
    v_done integer := 0;
    v_slice_counts jsonb;
    v_first_lock timestamptz;
begin
    begin
        v_slice_size := coalesce(nullif(pg_catalog.current_setting('dragonfly.refresh_write_batch', true), ''), '50')::integer;
        v_lock_budget := coalesce(nullif(pg_catalog.current_setting('dragonfly.refresh_lock_budget', true), ''), '250ms')::interval;
    exception when invalid_text_representation or numeric_value_out_of_range or invalid_datetime_format then
        v_slice_size := 0;
    end;
    if v_slice_size < 1 then
        raise exception 'refresh_enforcement_metrics: dragonfly.refresh_write_batch must be a positive integer '
                        'and dragonfly.refresh_lock_budget an interval'
            using errcode = '22023';
    end if;

    cut := false;
    rate := p_rate;
    counts := pg_catalog.jsonb_build_object(
        'cases_changed', 0, 'tiers_changed', 0, 'overrides_expired', 0, 'next_actions_set', 0,
        'skipped_locked', 0, 'history_rows', 0, 'tier_events', 0, 'resurfaced', 0
    );

    -- The marks of the chunk go first, in their own statement: whatever change they record was
    -- committed before the reads below, so those reads see it.
    if p_marked then
        -- The next p_limit marks in index order (a case may have several), then every mark up
        -- to the last of them: a range the index reads, never the whole table.
        v_rows := array(
            select m.case_id from enforcement_private.refresh_marks as m
             where m.case_id > v_from
             order by m.case_id
             limit p_limit
        );
        with claimed as (
            delete from enforcement_private.refresh_marks as m
             where m.case_id > v_from and m.case_id <= v_rows[pg_catalog.cardinality(v_rows)]
            returning m.case_id
        )
        select coalesce(pg_catalog.array_agg(distinct c.case_id order by c.case_id), '{}') into v_ids
          from claimed as c;
    else
        v_ids := array(
            select c.id from public.enforcement_cases as c
             where c.closed_at is null and c.id > v_from
             order by c.id
             limit p_limit
        );
        delete from enforcement_private.refresh_marks as m where m.case_id = any (v_ids);
        v_rows := v_ids;
    end if;
    -- What the caller counts against the chunk: the marks (or cases) read. Fewer than asked:
    -- the phase is done.
    scanned := pg_catalog.cardinality(v_rows);
    last_id := v_rows[pg_catalog.cardinality(v_rows)];
    if scanned = 0 then
        return;
    end if;

    -- Only rows that would change (or resurface) are locked and written (in id order).
    select coalesce(pg_catalog.array_agg(t.id order by t.id) filter (where t.changes), '{}'),
           coalesce(pg_catalog.array_agg(t.id order by t.id) filter (where t.changes or t.resurfaces), '{}')
      into v_changing, v_wanted
      from enforcement_private.refresh_case_targets(v_ids, p_now) as t;

    -- In slices: each as large as the rest of the lock budget allows at the rate the last
    -- writes took (at least dragonfly.refresh_write_batch cases), and the step stops once the
    -- budget is spent. So its locks are held for about the budget, plus at most one smallest
    -- slice, however slow the writes are tonight; a quick night writes a chunk in one slice
    -- (each slice is a few statements of fixed cost, with the triggers they fire).
    while v_done < pg_catalog.cardinality(v_wanted) loop
        v_first_lock := coalesce(v_first_lock, pg_catalog.clock_timestamp());
        v_size := v_slice_size;
        if rate > 0 then
            v_size := greatest(
                v_size,
                pg_catalog.floor(
                    extract(epoch from v_lock_budget - (pg_catalog.clock_timestamp() - v_first_lock)) / rate
                )::integer
            );
        end if;
        v_slice := v_wanted[v_done + 1 : v_done + v_size];
        select w.locked, w.counts into v_locked, v_slice_counts
          from enforcement_private.refresh_write_cases(v_slice, p_now) as w;
        v_all_locked := v_all_locked || v_locked;
        select pg_catalog.jsonb_object_agg(t.key, t.value::bigint + coalesce((v_slice_counts ->> t.key)::bigint, 0))
          into counts
          from pg_catalog.jsonb_each_text(counts) as t;
        v_done := v_done + pg_catalog.cardinality(v_slice);
        if pg_catalog.cardinality(v_all_locked) > 0 then
            rate := extract(epoch from pg_catalog.clock_timestamp() - v_first_lock)
                    / pg_catalog.cardinality(v_all_locked);
        end if;
        if v_done < pg_catalog.cardinality(v_wanted)
           and pg_catalog.clock_timestamp() - v_first_lock >= v_lock_budget then
            cut := true;
            exit;
        end if;
    end loop;

    if cut then
        -- The chunk ends at the last case written; the next step reads on from there, and the
        -- marks of the rest of the chunk go back.
        last_id := v_wanted[v_done];
        insert into enforcement_private.refresh_marks (case_id)
        select i.id from pg_catalog.unnest(v_ids) as i(id) where i.id > last_id;
    end if;

    -- Cases held by someone else are left to the next pass: they keep a mark.
    with skipped as (
        select w.id from pg_catalog.unnest(v_wanted[1 : v_done]) as w(id)
         where w.id <> all (v_all_locked)
    ),
    marked as (
        insert into enforcement_private.refresh_marks (case_id)
        select s.id from skipped as s
        returning case_id
    )
    select counts || pg_catalog.jsonb_build_object(
        'skipped_locked',
        (select pg_catalog.count(*) from marked as m where m.case_id = any (v_changing))
    )
      into counts;
end;
$$;

comment on function enforcement_private.refresh_cases_step(uuid, integer, timestamptz, boolean, double precision) is
    'One cases step of refresh_enforcement_metrics(): the next p_limit cases after p_after in id order, '
    'all open cases (full pass) or the marked ones (marked pass; their marks are consumed); locks and writes '
    'those that change or resurface at p_now (refresh_write_cases) in slices sized to the lock budget at '
    'p_rate seconds per case (at least dragonfly.refresh_write_batch), and ends early (cut) once it has held '
    'locks for dragonfly.refresh_lock_budget. Returns how many cases (or marks) it read, the last id, whether '
    'it was cut, its counts and the rate it measured. Not callable over the API.';

revoke execute on function enforcement_private.refresh_cases_step(uuid, integer, timestamptz, boolean, double precision) from public;

-- What the clock changed since the last look: overrides that expired and next actions that
-- fell due in (p_from, p_to]. Index range scans over a few milliseconds to a day of time.
create or replace function enforcement_private.refresh_mark_clock(p_from timestamptz, p_to timestamptz)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_marked integer;
begin
    insert into enforcement_private.refresh_marks (case_id)
    select c.id
      from public.enforcement_cases as c
     where c.tier_override is not null and c.closed_at is null
       and c.override_expires_at > p_from and c.override_expires_at <= p_to
    union
    select c.id
      from public.enforcement_cases as c
     where c.closed_at is null
       and c.next_action_at > p_from and c.next_action_at <= p_to;
    get diagnostics v_marked = row_count;
    return v_marked;
end;
$$;

comment on function enforcement_private.refresh_mark_clock(timestamptz, timestamptz) is
    'Marks the open cases whose tier override expires or whose next action falls due in (p_from, p_to]. Run '
    'by each step of a marked refresh pass over the time since the last one. Not callable over the API.';

revoke execute on function enforcement_private.refresh_mark_clock(timestamptz, timestamptz) from public;

-- ---------------------------------------------------------------------------------------
-- The hook: one step of the pass per call; refresh_enforcement_metrics(true) forces a full one.

drop function enforcement_private.refresh_cases_chunk(uuid, integer, timestamptz);

create or replace function public.refresh_enforcement_metrics(p_full boolean)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_now timestamptz := pg_catalog.now();
    v_budget integer;
    v_full_every interval;
    v_zero constant jsonb := pg_catalog.jsonb_build_object(
        'cases_changed', 0, 'tiers_changed', 0, 'overrides_expired', 0, 'next_actions_set', 0,
        'skipped_locked', 0, 'history_rows', 0, 'tier_events', 0, 'resurfaced', 0,
        'pipeline_tiers_resynced', 0, 'overview_totals_resynced', 0
    );
    v_progress enforcement_private.refresh_progress%rowtype;
    v_counts jsonb;
    v_scanned integer;
    v_last uuid;
    v_cut boolean;
    v_fixed integer;
begin
    begin
        v_budget := coalesce(nullif(pg_catalog.current_setting('dragonfly.refresh_chunk_size', true), ''), '250')::integer;
    exception when invalid_text_representation or numeric_value_out_of_range then
        v_budget := 0;
    end;
    if v_budget < 1 then
        raise exception 'refresh_enforcement_metrics: dragonfly.refresh_chunk_size must be a positive integer, got %',
            pg_catalog.current_setting('dragonfly.refresh_chunk_size', true)
            using errcode = '22023';
    end if;
    begin
        v_full_every := coalesce(nullif(pg_catalog.current_setting('dragonfly.refresh_full_every', true), ''), '7 days')::interval;
    exception when invalid_datetime_format or datetime_field_overflow then
        raise exception 'refresh_enforcement_metrics: dragonfly.refresh_full_every must be an interval, got %',
            pg_catalog.current_setting('dragonfly.refresh_full_every', true)
            using errcode = '22023';
    end;

    -- One step at a time: a second runner waits here for the step in flight (short), then
    -- continues the same pass.
    insert into enforcement_private.refresh_progress (pass_started_at, phase, totals, finished_at)
    values (v_now, 'finished', v_zero, v_now)
    on conflict (singleton) do nothing;
    select * into strict v_progress from enforcement_private.refresh_progress for update;
    -- The clock the steps look at never goes back, even for a step whose transaction began
    -- before the previous step committed: what that step marked as due is due here too.
    v_now := greatest(v_now, v_progress.scanned_to);

    if v_progress.phase = 'finished' or (p_full and v_progress.mode = 'marked') then
        -- A marked pass under way that is made full starts over but keeps its counts: what
        -- it wrote is done, and the full pass finds those cases unchanged.
        if v_progress.phase = 'finished' then
            v_progress.totals := v_zero;
            v_progress.steps := 0;
        end if;
        v_progress.pass_started_at := v_now;
        v_progress.phase := 'cases';
        v_progress.after_id := null;
        v_progress.finished_at := null;
        if p_full
           or v_progress.full_requested
           or v_progress.scanned_to is null
           or v_progress.last_full_started_at is null
           or v_progress.last_full_started_at <= v_now - v_full_every then
            v_progress.mode := 'full';
            v_progress.full_requested := false;
            v_progress.last_full_started_at := v_now;
            -- Every case is read from now on, so the clock is looked at from here.
            v_progress.scanned_to := v_now;
        else
            v_progress.mode := 'marked';
        end if;
    end if;

    while v_budget > 0 and v_progress.phase <> 'finished' loop
        v_cut := false;
        if v_progress.phase = 'cases' then
            if v_progress.mode = 'marked' and v_now > v_progress.scanned_to then
                perform enforcement_private.refresh_mark_clock(v_progress.scanned_to, v_now);
                v_progress.scanned_to := v_now;
            end if;
            select c.scanned, c.last_id, c.cut, c.counts, c.rate
              into v_scanned, v_last, v_cut, v_counts, v_progress.write_seconds_per_case
              from enforcement_private.refresh_cases_step(
                       v_progress.after_id, v_budget, v_now, v_progress.mode = 'marked',
                       v_progress.write_seconds_per_case
                   ) as c;
            select pg_catalog.jsonb_object_agg(t.key, t.value::bigint + coalesce((v_counts ->> t.key)::bigint, 0))
              into v_progress.totals
              from pg_catalog.jsonb_each_text(v_progress.totals) as t;
        elsif v_progress.phase = 'judgments' then
            select m.scanned, m.last_id, m.resynced into v_scanned, v_last, v_fixed
              from enforcement_private.refresh_pipeline_mirror_chunk(v_progress.after_id, v_budget) as m;
            v_progress.totals := v_progress.totals || pg_catalog.jsonb_build_object(
                'pipeline_tiers_resynced', (v_progress.totals ->> 'pipeline_tiers_resynced')::bigint + v_fixed
            );
        else
            -- Safety net for v_enforcement_overview's totals: lock-free, one statement.
            v_progress.totals := v_progress.totals || pg_catalog.jsonb_build_object(
                'overview_totals_resynced', enforcement_private.resync_overview_rollup()
            );
            v_scanned := 1;
        end if;
        if v_progress.phase = 'totals' then
            v_progress.phase := 'finished';
            v_progress.finished_at := pg_catalog.clock_timestamp();
        elsif v_cut then
            -- The step used its lock budget: commit what it wrote, continue in the next call.
            v_progress.after_id := v_last;
            exit;
        elsif v_scanned < v_budget then
            -- The chunk came up short of what was asked: this phase is done.
            v_progress.phase := case v_progress.phase when 'cases' then 'judgments' else 'totals' end;
            v_progress.after_id := null;
        else
            v_progress.after_id := v_last;
        end if;
        v_budget := v_budget - greatest(v_scanned, 1);
    end loop;

    update enforcement_private.refresh_progress as p
       set pass_started_at = v_progress.pass_started_at,
           phase = v_progress.phase,
           after_id = v_progress.after_id,
           totals = v_progress.totals,
           steps = v_progress.steps + 1,
           finished_at = v_progress.finished_at,
           mode = v_progress.mode,
           full_requested = v_progress.full_requested,
           scanned_to = v_progress.scanned_to,
           last_full_started_at = v_progress.last_full_started_at,
           write_seconds_per_case = v_progress.write_seconds_per_case,
           updated_at = pg_catalog.clock_timestamp()
     where p.singleton;

    return v_progress.totals || pg_catalog.jsonb_build_object('ran_at', v_progress.pass_started_at);
end;
$$;

comment on function public.refresh_enforcement_metrics(boolean) is
    'One step of the nightly maintenance pass, as refresh_enforcement_metrics(); with p_full = true a pass '
    'that starts (or a marked pass under way, which starts over) reads every open case instead of only the '
    'marked ones. Callable by dragonfly_worker and service_role.';

revoke execute on function public.refresh_enforcement_metrics(boolean) from public, anon, authenticated;
grant execute on function public.refresh_enforcement_metrics(boolean) to dragonfly_worker, service_role;

create or replace function public.refresh_enforcement_metrics()
returns jsonb
language sql
volatile
security definer
set search_path = ''
as $$
    select public.refresh_enforcement_metrics(false)
$$;

comment on function public.refresh_enforcement_metrics() is
    'One step of the nightly maintenance pass over open cases (at most dragonfly.refresh_chunk_size cases or '
    'judgments, default 250): syncs collectability_score from judgments.cases, recalculates tier (unexpired '
    'override wins; else the score band), clears expired overrides with a history row, records tier changes '
    '(history + tier_changed event), fills missing next_action_at from the stage SLA, emits one sla_resurfaced '
    'event per passed due date; then re-syncs the pipeline tier mirror and the overview totals. A pass reads '
    'only the cases marked since (refresh_marks: changed inputs, expired overrides, cases fallen due) unless '
    'it is full (requested, after a lookup change, or dragonfly.refresh_full_every after the last full one). '
    'Locks cases in id order in slices, waiting at most dragonfly.refresh_lock_wait, else skips them; a step '
    'ends once it has held locks for dragonfly.refresh_lock_budget. Resumes the pass where the last committed '
    'step stopped; returns the pass''s running counts (ran_at = when the pass began). Call until '
    'refresh_enforcement_metrics_progress() says finished, committing between calls (the scheduler and the '
    'pg_cron job do; docs/rpc.md). Idempotent. Callable by dragonfly_worker and service_role.';

create or replace function public.refresh_enforcement_metrics_progress()
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
    select coalesce(
        (
            select pg_catalog.jsonb_build_object(
                'phase', p.phase, 'finished', p.phase = 'finished', 'after_id', p.after_id,
                'pass_started_at', p.pass_started_at, 'finished_at', p.finished_at, 'steps', p.steps,
                'totals', p.totals, 'mode', p.mode, 'full_requested', p.full_requested,
                'last_full_started_at', p.last_full_started_at
            )
              from enforcement_private.refresh_progress as p
        ),
        pg_catalog.jsonb_build_object('phase', 'finished', 'finished', true)
    )
$$;

comment on function public.refresh_enforcement_metrics_progress() is
    'Where the refresh_enforcement_metrics() pass stands: phase (cases, judgments, totals, finished), finished, '
    'after_id (the cursor), pass_started_at, finished_at, steps, the running totals, mode (full or marked), '
    'full_requested and last_full_started_at. Callable by '
    'dragonfly_worker and service_role.';

-- The marks start now: the next pass reads every case once.
select enforcement_private.request_full_refresh();
