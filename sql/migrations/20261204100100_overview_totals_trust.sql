-- When may v_enforcement_overview take its numbers from the trigger-kept totals and day
-- buckets instead of counting the caller's rows? tenancy.overview_totals_trusted() answers it
-- in a few catalog reads: when the row-level security of every table the view reads is the
-- one the migrations define, and nothing has switched off the triggers that keep the totals
-- since they were last repaired.
--
-- Why: the totals and buckets count every open case of a tenant. The view used them for a
-- (tenant, tier, stage) group only after counting the caller's visible cases of the group and
-- finding as many as the totals (20261203110100): exact for any policy, and a guard against
-- totals whose counts drifted, but that count is a pass over every open case, which is what
-- the flat overview (20261204100200) must not do. It answered two questions, each of which
-- has a cheaper answer:
--
--   1. Does the caller see all the cases the totals count? A question about the policies.
--      With the migrations' policies a caller sees a tenant's totals and buckets exactly when
--      it sees all of that tenant's cases (the same rule, `tenant_id = any ((select
--      tenancy.caller_tenants('read'))::uuid[])`, for the same roles, on each table;
--      service_role and owners bypass all of them alike). So a fingerprint of the policies is
--      recorded here and compared on each read; any other policy set (a restrictive policy
--      added, one dropped or changed, row security switched off or forced on one table) sends
--      the view down the exact per-row path of 20261203110100.
--   2. Do the totals still match the cases? Only disabling the triggers by hand can make them
--      disagree (they are ENABLE ALWAYS). An event trigger marks the totals suspect whenever
--      enforcement_cases is altered (that is how a trigger is disabled); the nightly repair,
--      resync_overview_rollup(), clears the mark in the statement that computes its
--      correction, so the totals are trusted again exactly when they have been checked. Until
--      then the view takes the exact path, which recounts the groups whose counts disagree, as
--      before. (A later migration that alters enforcement_cases therefore puts the overview on
--      the exact path until the next refresh, or until it calls resync_overview_rollup().)
--      Creating an event trigger needs a superuser; where the migrations run without one, the
--      mark is not kept and the totals are trusted on the policies alone (a notice says so).
--
-- What the fingerprint covers, per table the view reads (enforcement_cases, the totals and
-- their deltas, the day buckets and their deltas, tenants and the two lookups): whether row
-- security is enabled and forced, and each policy's name, command, permissive or restrictive,
-- roles (by name) and USING / WITH CHECK expressions as PostgreSQL prints them; an md5 of that
-- text. enforcement_private.record_overview_policies() bakes it into
-- tenancy.overview_totals_trusted() as a literal. A later migration that changes one of these
-- policies on purpose calls record_overview_policies() again at its end; one that does not
-- keeps the view on the exact path (correct, just linear again) until it does.
--
-- Not cached across statements: a policy created earlier in the same transaction must count
-- at once. The check runs once per read of the view (tens of microseconds).

-- ---------------------------------------------------------------------------------------
-- The suspect mark

create table enforcement_private.overview_totals_suspect (
    marked_at timestamptz not null default pg_catalog.clock_timestamp(),
    command text not null
);

comment on table enforcement_private.overview_totals_suspect is
    'A row per ALTER TABLE of enforcement_cases since the overview totals were last repaired (a trigger '
    'may have been disabled, so writes may have gone uncounted). While any row is here, '
    'tenancy.overview_totals_trusted() is false and v_enforcement_overview counts per row. Written by the '
    'event trigger overview_totals_suspect_on_alter, emptied by resync_overview_rollup().';

revoke all on enforcement_private.overview_totals_suspect from public;

create function enforcement_private.tg_overview_totals_suspect()
returns event_trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if exists (
        select 1
          from pg_catalog.pg_event_trigger_ddl_commands() as c
         where c.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           and c.objid = 'public.enforcement_cases'::pg_catalog.regclass
    ) then
        insert into enforcement_private.overview_totals_suspect (command) values (tg_tag);
    end if;
end;
$$;

comment on function enforcement_private.tg_overview_totals_suspect() is
    'Event trigger function (ddl_command_end, ALTER TABLE): marks the overview totals suspect when the '
    'command altered public.enforcement_cases. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_overview_totals_suspect() from public;

do $$
begin
    if (select r.rolsuper from pg_catalog.pg_roles as r where r.rolname = current_user) then
        create event trigger overview_totals_suspect_on_alter
            on ddl_command_end
            when tag in ('ALTER TABLE')
            execute function enforcement_private.tg_overview_totals_suspect();
    else
        raise notice 'overview: not a superuser, so no event trigger marks the totals suspect when '
                     'enforcement_cases is altered; v_enforcement_overview trusts them on the policies alone';
    end if;
end;
$$;

-- ---------------------------------------------------------------------------------------
-- The fingerprint

create function enforcement_private.overview_policy_fingerprint()
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
               'public.tenants'::pg_catalog.regclass,
               'public.enforcement_stage_lookup'::pg_catalog.regclass,
               'public.enforcement_tier_lookup'::pg_catalog.regclass
           ])
      ) as t
$$;

comment on function enforcement_private.overview_policy_fingerprint() is
    'md5 of the row-level security of the tables v_enforcement_overview reads (enabled, forced, and every '
    'policy''s name, command, kind, roles and expressions). Compared by '
    'tenancy.overview_totals_trusted() with the value record_overview_policies() recorded. Not callable '
    'over the API.';

revoke execute on function enforcement_private.overview_policy_fingerprint() from public;

create function enforcement_private.record_overview_policies()
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_fingerprint text := enforcement_private.overview_policy_fingerprint();
begin
    execute pg_catalog.format(
        $f$
        create or replace function tenancy.overview_totals_trusted()
        returns boolean
        language sql
        stable
        security definer
        set search_path = ''
        as $body$
            select enforcement_private.overview_policy_fingerprint() = %L
               and not exists (select from enforcement_private.overview_totals_suspect)
        $body$
        $f$,
        v_fingerprint
    );
    comment on function tenancy.overview_totals_trusted() is
        'True when the row-level security of the tables v_enforcement_overview reads is exactly the one the '
        'migrations define (enforcement_private.record_overview_policies() recorded its fingerprint) and the '
        'totals are not marked suspect (enforcement_private.overview_totals_suspect): then a caller sees a '
        'tenant''s totals and day buckets exactly when it sees all of its open cases, and the view reads the '
        'totals. Called by the view with the caller''s rights; reveals nothing else.';
    revoke execute on function tenancy.overview_totals_trusted() from public;
    grant execute on function tenancy.overview_totals_trusted()
        to authenticated, enforcement_operator, service_role;
    return v_fingerprint;
end;
$$;

comment on function enforcement_private.record_overview_policies() is
    'Records the current overview_policy_fingerprint() as the trusted one, by (re)creating '
    'tenancy.overview_totals_trusted() with it; returns it. Called by the migration that defines '
    'these policies, and again by any later migration that changes them on purpose. Not callable over the '
    'API.';

revoke execute on function enforcement_private.record_overview_policies() from public;

select enforcement_private.record_overview_policies();

-- ---------------------------------------------------------------------------------------
-- The nightly repair clears the mark. Redefined (20261204100000): the totals' correction
-- statement also deletes the marks it can see, so a mark goes exactly when the snapshot that
-- computed the correction saw the writes made while the triggers were off (a mark committed
-- later stays until the next repair).

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
    with cleared as (
        delete from enforcement_private.overview_totals_suspect
    )
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
    -- The day buckets, from a later snapshot: it sees at least what the one above saw.
    perform enforcement_private.resync_overview_days();
    return v_groups;
end;
$$;

comment on function enforcement_private.resync_overview_rollup() is
    'Repairs the overview totals where overview_rollup_drift() finds a difference, by appending the '
    'correcting deltas of each (tenant, tier, stage) group (no lock; exact also while cases change), and '
    'clears the suspect marks that snapshot saw; then folds pending deltas and repairs the day buckets '
    '(resync_overview_days()). Returns the number of totals groups corrected, normally 0. Run by the '
    'migrations (initial totals) and nightly by refresh_enforcement_metrics(). Not callable over the API.';

revoke execute on function enforcement_private.resync_overview_rollup() from public;
