-- The fleet scheduler's memory: when each periodic task last ran.
--
-- Why a table: a scheduler restarted at 02:31 must not run the 02:30 refresh a
-- second time, and a second scheduler process (another host, another container)
-- must see what the first one did. One row per task; `last_slot` is the
-- scheduled time the last run covered (for daily tasks), so "already done
-- today" is a comparison, not a guess. Only one scheduler runs tasks at a time
-- (a session advisory lock); this table is not the lock.
create table dragonfly.scheduler_runs (
    task text primary key,
    last_slot timestamptz,
    last_started_at timestamptz not null,
    last_finished_at timestamptz,
    last_status text not null check (last_status in ('running', 'ok', 'skipped', 'failed')),
    last_detail jsonb not null default '{}'::jsonb,
    last_ok_at timestamptz,
    run_count bigint not null default 0,
    ran_by text
);

comment on table dragonfly.scheduler_runs is
    'The scheduler''s record of each periodic task: the slot it last covered, when, how it ended (ok/skipped/failed) and by which process.';

alter table dragonfly.scheduler_runs enable row level security;

revoke all on dragonfly.scheduler_runs from public;
grant select, insert, update, delete on dragonfly.scheduler_runs to service_role, dragonfly_worker;

create policy "The fleet manages scheduler runs" on dragonfly.scheduler_runs
    for all to dragonfly_worker using (true) with check (true);

-- pg_cron, where installed (Supabase), may already schedule a command; the
-- fleet's scheduler then stands aside so the work is not done twice. Works
-- with no pg_cron at all (returns false) and with pg_cron versions whose
-- cron.job has no `active` column.
create function dragonfly.cron_schedules(p_command_fragment text)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_found boolean;
begin
    if p_command_fragment is null or pg_catalog.btrim(p_command_fragment) = '' then
        raise exception 'cron_schedules: p_command_fragment must not be blank'
            using errcode = '22023';
    end if;
    if pg_catalog.to_regclass('cron.job') is null then
        return false;
    end if;
    if exists (
        select 1 from information_schema.columns
        where table_schema = 'cron' and table_name = 'job' and column_name = 'active'
    ) then
        execute 'select exists (select 1 from cron.job where active and'
            || ' pg_catalog.strpos(pg_catalog.lower(command), pg_catalog.lower($1)) > 0)'
            into v_found using p_command_fragment;
    else
        execute 'select exists (select 1 from cron.job where'
            || ' pg_catalog.strpos(pg_catalog.lower(command), pg_catalog.lower($1)) > 0)'
            into v_found using p_command_fragment;
    end if;
    return coalesce(v_found, false);
end
$$;

comment on function dragonfly.cron_schedules(text) is
    'True when pg_cron is installed and an active cron.job command contains the fragment (case-insensitive); the scheduler then leaves that task to pg_cron.';

revoke execute on function dragonfly.cron_schedules(text) from public;
grant execute on function dragonfly.cron_schedules(text) to service_role, dragonfly_worker;
