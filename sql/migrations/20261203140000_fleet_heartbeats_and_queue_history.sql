-- What the on-call console (`dragonfly console`) and the Prometheus rules need from the fleet:
-- which processes are up, a short history of every queue, which case and tenant each
-- completed job was for, and two health figures (deadlocks, the alert listener's cursor).
--
-- Why tables of their own, in the fleet's private schema:
--   * dragonfly.fleet_processes: every fleet process writes a heartbeat row (host, pid,
--     process, ready) every few seconds over its probe connection and deletes it when it
--     stops cleanly. A process that died leaves a row that stops moving; readers count a
--     process as up while its heartbeat is fresh (30 s). Without it the console could only
--     guess the fleet from pg_stat_activity, which knows nothing of readiness.
--   * dragonfly.queue_samples: one row per queue per minute (depth, in flight, deferred,
--     oldest age, open dead letters, and the jobs done and dead-lettered during the minute),
--     written by the scheduler's queue_history task, so the console charts the last hour and
--     day without Prometheus. Retention prunes it (DRAGONFLY_RETENTION_QUEUE_HISTORY_DAYS).
--   * completed_jobs.case_id / tenant: a completed job's message is deleted, and with it the
--     only record of the case it was about. complete_jobs() now keeps the payload's case_id
--     and the envelope's tenant (each only when it is a uuid), so the console can list every
--     job that touched a case and decide who may see it.

-- ---------------------------------------------------------------------------------------
-- Heartbeats

create table dragonfly.fleet_processes (
    host text not null check (pg_catalog.btrim(host) <> '' and pg_catalog.length(host) <= 255),
    pid integer not null check (pid > 0),
    process text not null check (process ~ '^[a-z][a-z0-9_:.-]{0,62}$'),
    started_at timestamptz not null,
    last_seen timestamptz not null default now(),
    ready boolean not null,
    reason text check (pg_catalog.length(reason) <= 500),
    primary key (host, pid)
);

comment on table dragonfly.fleet_processes is
    'One row per running fleet process (worker:<kind>, scheduler, listener, console): its heartbeat '
    '(last_seen, every few seconds) and readiness. Deleted when the process stops cleanly; a row whose '
    'last_seen is older than 30 s is a process that is gone. Pruned by retention after a day.';

create index fleet_processes_last_seen_idx on dragonfly.fleet_processes (last_seen);

alter table dragonfly.fleet_processes enable row level security;
revoke all on dragonfly.fleet_processes from public;
grant select on dragonfly.fleet_processes to service_role, dragonfly_worker;
create policy "The fleet reads heartbeats" on dragonfly.fleet_processes
    for select to dragonfly_worker using (true);

-- The heartbeat: insert or refresh the caller's row. A pid reused on a host by a new process
-- (another started_at) takes the row over.
create function dragonfly.fleet_heartbeat(
    p_host text,
    p_pid integer,
    p_process text,
    p_started_at timestamptz,
    p_ready boolean,
    p_reason text default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
    if p_host is null or pg_catalog.btrim(p_host) = '' or pg_catalog.length(p_host) > 255 then
        raise exception using errcode = '22023', message = 'fleet_heartbeat: host must be 1 to 255 characters';
    end if;
    if p_pid is null or p_pid < 1 then
        raise exception using errcode = '22023', message = 'fleet_heartbeat: pid must be positive';
    end if;
    if p_process is null or p_process !~ '^[a-z][a-z0-9_:.-]{0,62}$' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('fleet_heartbeat: process must look like worker:enrich, got %s',
                                        coalesce(pg_catalog.quote_literal(pg_catalog.left(p_process, 70)), 'null'));
    end if;
    if p_started_at is null or p_ready is null then
        raise exception using errcode = '22023', message = 'fleet_heartbeat: started_at and ready are required';
    end if;
    insert into dragonfly.fleet_processes as f (host, pid, process, started_at, last_seen, ready, reason)
    values (p_host, p_pid, p_process, p_started_at, pg_catalog.clock_timestamp(), p_ready,
            pg_catalog.left(p_reason, 500))
    on conflict (host, pid) do update
        set process = excluded.process, started_at = excluded.started_at,
            last_seen = excluded.last_seen, ready = excluded.ready, reason = excluded.reason;
end
$$;

comment on function dragonfly.fleet_heartbeat(text, integer, text, timestamptz, boolean, text) is
    'A fleet process says it is alive (and whether it is ready, and why not): upserts its '
    'dragonfly.fleet_processes row with last_seen = now. 22023 on a blank host, a bad pid or process name.';

create function dragonfly.fleet_process_gone(p_host text, p_pid integer)
returns boolean
language sql
volatile
security definer
set search_path = ''
as $$
    with gone as (
        delete from dragonfly.fleet_processes as f where f.host = p_host and f.pid = p_pid returning 1
    )
    select exists (select 1 from gone)
$$;

comment on function dragonfly.fleet_process_gone(text, integer) is
    'A fleet process stopping cleanly removes its heartbeat row; true when there was one.';

-- What the Prometheus rule "a worker kind with no ready process" reads: per worker kind
-- (every registered kind, 0 when none) and per other process type seen, the processes up
-- and ready.
create function dragonfly.fleet_ready_counts(p_fresh interval default '30 seconds')
returns table (process text, up bigint, ready bigint)
language sql
stable
security definer
set search_path = ''
as $$
    with live as (
        select f.process, f.ready
          from dragonfly.fleet_processes as f
         where f.last_seen > pg_catalog.clock_timestamp() - p_fresh
    ),
    names as (
        select 'worker:' || k.kind as process from dragonfly.job_kinds as k
        union
        select l.process from live as l
    )
    select n.process,
           (select pg_catalog.count(*) from live as l where l.process = n.process),
           (select pg_catalog.count(*) from live as l where l.process = n.process and l.ready)
      from names as n
     order by n.process
$$;

comment on function dragonfly.fleet_ready_counts(interval) is
    'Per process type (worker:<kind> for every registered kind, and any other type with a fresh '
    'heartbeat): processes whose heartbeat is fresher than p_fresh, and how many of them are ready.';

create function dragonfly.prune_fleet_processes(p_older_than interval)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_deleted integer;
begin
    if p_older_than is null or p_older_than < interval '1 minute' then
        raise exception using errcode = '22023', message = 'prune_fleet_processes: p_older_than must be at least 1 minute';
    end if;
    delete from dragonfly.fleet_processes as f where f.last_seen < pg_catalog.now() - p_older_than;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end
$$;

comment on function dragonfly.prune_fleet_processes(interval) is
    'Deletes the heartbeat rows of processes silent for longer than p_older_than (they died without '
    'removing their row).';

-- ---------------------------------------------------------------------------------------
-- Completed jobs remember their case and tenant

alter table dragonfly.completed_jobs
    add column case_id uuid,
    add column tenant uuid;

comment on column dragonfly.completed_jobs.case_id is
    'The job payload''s case_id when it is a uuid (null otherwise): which case the job was for.';
comment on column dragonfly.completed_jobs.tenant is
    'The envelope''s tenant when it is a uuid (null: no tenant): whose job it was.';

create index completed_jobs_case_id_idx on dragonfly.completed_jobs (case_id, completed_at)
    where case_id is not null;

-- A uuid from a JSON value, or null when it is not a string holding one (never an error:
-- a job must complete whatever its payload's case_id looks like).
create function dragonfly.uuid_or_null(p_value jsonb)
returns uuid
language sql
immutable
parallel safe
set search_path = ''
as $$
    select case
               when pg_catalog.jsonb_typeof(p_value) = 'string'
                    and (p_value #>> '{}') ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
               then (p_value #>> '{}')::uuid
           end
$$;

comment on function dragonfly.uuid_or_null(jsonb) is
    'The uuid a JSON string holds, or null when the value is not such a string.';

revoke execute on function dragonfly.uuid_or_null(jsonb) from public;
grant execute on function dragonfly.uuid_or_null(jsonb) to service_role, dragonfly_worker;

-- Redefined (from 20261127004100_worker_runtime_functions.sql) only to fill completed_jobs'
-- new case_id and tenant from the message being deleted; the fencing, the errors and the
-- signature are unchanged.
create or replace function dragonfly.complete_jobs(
    p_queue text,
    p_worker text,
    p_msg_ids bigint[],
    p_read_cts integer[],
    p_durations_ms integer[]
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
    v_done integer;
begin
    perform dragonfly.check_deliveries('complete_jobs', p_msg_ids, p_read_cts);
    if pg_catalog.cardinality(p_durations_ms) is distinct from pg_catalog.cardinality(p_msg_ids)
    then
        raise exception using
            errcode = '22023',
            message = 'complete_jobs: durations must be an array as long as msg_ids';
    end if;
    execute pg_catalog.format(
        $q$
        with gone as (
            delete from pgmq.%I as q
            using rows from (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3))
                as d (msg_id, read_ct, duration_ms)
            where q.msg_id = d.msg_id and q.read_ct = d.read_ct and q.msg_id = any ($1)
            returning q.msg_id, q.read_ct, q.message ->> 'idempotency_key' as idempotency_key,
                      d.duration_ms,
                      dragonfly.uuid_or_null(q.message -> 'payload' -> 'case_id') as case_id,
                      dragonfly.uuid_or_null(q.message -> 'tenant') as tenant
        ),
        recorded as (
            insert into dragonfly.completed_jobs
                (kind, idempotency_key, queue, msg_id, attempts, duration_ms, worker, case_id, tenant)
            select $4, g.idempotency_key, $4, g.msg_id, g.read_ct, g.duration_ms, $5, g.case_id, g.tenant
            from gone as g
            returning 1
        )
        select pg_catalog.count(*)::integer from recorded
        $q$,
        v_table
    ) into v_done using p_msg_ids, p_read_cts, p_durations_ms, p_queue, p_worker;
    if v_done <> pg_catalog.cardinality(p_msg_ids) then
        raise exception using
            errcode = 'DF100',
            message = pg_catalog.format(
                'complete_jobs: %s of %s deliveries on queue %s are no longer this worker''s '
                '(read again by another worker, or deleted)',
                pg_catalog.cardinality(p_msg_ids) - v_done,
                pg_catalog.cardinality(p_msg_ids),
                p_queue
            );
    end if;
    return v_done;
end
$$;

comment on function dragonfly.complete_jobs(text, text, bigint[], integer[], integer[]) is
    'End of a job transaction: deletes the deliveries (msg_id, read_ct) from the live queue '
    '(fenced: DF100, nothing deleted, when any is no longer current) and inserts one '
    'dragonfly.completed_jobs row per job (kind = queue, key from the message, attempts = '
    'read_ct, the payload''s case_id and the envelope''s tenant when they are uuids). 23505 when '
    'a key was completed concurrently.';

-- ---------------------------------------------------------------------------------------
-- Queue history

create table dragonfly.queue_samples (
    queue text not null,
    sampled_at timestamptz not null,
    depth bigint not null,
    visible bigint not null,
    in_flight bigint not null,
    deferred bigint not null,
    oldest_age_sec integer,
    dead_letters bigint not null,
    done bigint not null,
    dead_lettered bigint not null,
    primary key (queue, sampled_at)
);

comment on table dragonfly.queue_samples is
    'One row per queue per minute: the queue_stats() figures then, and the jobs completed and '
    'dead-lettered since the previous sample (done, dead_lettered). Written by the scheduler''s '
    'queue_history task (record_queue_samples); the console charts it. Pruned by retention '
    '(DRAGONFLY_RETENTION_QUEUE_HISTORY_DAYS).';

create index queue_samples_sampled_at_idx on dragonfly.queue_samples (sampled_at);

alter table dragonfly.queue_samples enable row level security;
revoke all on dragonfly.queue_samples from public;
grant select on dragonfly.queue_samples to service_role, dragonfly_worker;
create policy "The fleet reads queue history" on dragonfly.queue_samples
    for select to dragonfly_worker using (true);

-- One sample per queue for the current minute; a second call in the same minute (two
-- schedulers, a run by hand) writes nothing. The window of done/dead_lettered starts at the
-- queue's previous sample (at most a day back: a scheduler that was down for a week does
-- not put a week into one minute), or a minute back for a queue's first sample.
create function dragonfly.record_queue_samples()
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_now timestamptz := pg_catalog.clock_timestamp();
    v_minute timestamptz := pg_catalog.date_trunc('minute', v_now);
    v_written integer;
begin
    with stats as (
        select s.* from dragonfly.queue_stats() as s
    ),
    windows as (
        select s.queue,
               greatest(
                   coalesce((select max(p.sampled_at) from dragonfly.queue_samples as p
                              where p.queue = s.queue and p.sampled_at < v_minute),
                            v_minute - interval '1 minute'),
                   v_minute - interval '1 day'
               ) as since
          from stats as s
    )
    insert into dragonfly.queue_samples
        (queue, sampled_at, depth, visible, in_flight, deferred, oldest_age_sec, dead_letters,
         done, dead_lettered)
    select s.queue, v_minute, s.depth, s.visible, s.in_flight, s.deferred, s.oldest_age_sec,
           s.dead_letters,
           (select pg_catalog.count(*) from dragonfly.completed_jobs as c
             where c.completed_at >= w.since and c.completed_at < v_minute and c.queue = s.queue),
           (select pg_catalog.count(*) from dragonfly.dead_letters as d
             where d.dead_at >= w.since and d.dead_at < v_minute and d.queue = s.queue)
      from stats as s
      join windows as w using (queue)
    on conflict (queue, sampled_at) do nothing;
    get diagnostics v_written = row_count;
    return v_written;
end
$$;

comment on function dragonfly.record_queue_samples() is
    'Writes this minute''s dragonfly.queue_samples row for every queue (nothing when it exists): '
    'queue_stats() now, and the jobs completed and dead-lettered since the queue''s previous '
    'sample. Returns the rows written.';

create function dragonfly.prune_queue_samples(p_older_than interval, p_limit integer default 5000)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_deleted integer;
begin
    perform dragonfly.check_prune_args('prune_queue_samples', p_older_than, p_limit);
    with doomed as (
        select s.queue, s.sampled_at
          from dragonfly.queue_samples as s
         where s.sampled_at < pg_catalog.now() - p_older_than
         order by s.sampled_at
         limit p_limit
           for update skip locked
    )
    delete from dragonfly.queue_samples as s
     using doomed as x
     where s.queue = x.queue and s.sampled_at = x.sampled_at;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end
$$;

comment on function dragonfly.prune_queue_samples(interval, integer) is
    'Deletes up to p_limit queue history samples older than p_older_than.';

-- ---------------------------------------------------------------------------------------
-- Health figures for Prometheus

-- Deadlocks of this database (pg_stat_database, a counter since the statistics were last
-- reset) and how far the alert listener's catch-up cursor trails the clock: a running
-- listener moves it every sweep (DRAGONFLY_LISTENER_SWEEP_INTERVAL_SECONDS), so a cursor
-- minutes old means no listener is catching up.
create function dragonfly.fleet_health()
returns table (deadlocks bigint, listener_cursor_age_sec integer)
language sql
stable
security definer
set search_path = ''
as $$
    select (select d.deadlocks from pg_catalog.pg_stat_database as d
             where d.datname = pg_catalog.current_database()),
           (select greatest(0, extract(epoch from pg_catalog.clock_timestamp() - s.caught_up_to))::integer
              from dragonfly.alert_listener_state as s)
$$;

comment on function dragonfly.fleet_health() is
    'Deadlocks detected in this database (pg_stat_database.deadlocks) and the age in seconds of the '
    'alert listener''s catch-up cursor (null before any listener ran).';

revoke execute on function
    dragonfly.fleet_heartbeat(text, integer, text, timestamptz, boolean, text),
    dragonfly.fleet_process_gone(text, integer),
    dragonfly.fleet_ready_counts(interval),
    dragonfly.prune_fleet_processes(interval),
    dragonfly.record_queue_samples(),
    dragonfly.prune_queue_samples(interval, integer),
    dragonfly.fleet_health()
    from public;
grant execute on function
    dragonfly.fleet_heartbeat(text, integer, text, timestamptz, boolean, text),
    dragonfly.fleet_process_gone(text, integer),
    dragonfly.fleet_ready_counts(interval),
    dragonfly.prune_fleet_processes(interval),
    dragonfly.record_queue_samples(),
    dragonfly.prune_queue_samples(interval, integer),
    dragonfly.fleet_health()
    to service_role, dragonfly_worker;
