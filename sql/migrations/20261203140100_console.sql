-- The on-call console's reads and actions (`dragonfly console`, docs/console.md).
--
-- Why a schema of functions: the console runs each request as its operator, the way PostgREST
-- does (`set local role authenticated` and request.jwt.claims in the transaction, or
-- service_role for the static admin token), so row-level security and
-- tenancy.caller_tenants() decide what a member sees. The queue and dead-letter data live in
-- the fleet's private schema (dragonfly), which no API role may read. These SECURITY DEFINER
-- functions read it for the caller and keep, of every row, only what the caller's tenants
-- reach: a job belongs to the tenant its envelope names (message ->> 'tenant'); a job that
-- names none is seen only by internal callers (service_role: the static admin) and the
-- enforcement_operator role. A row the caller does not reach answers exactly like a row that
-- does not exist. Replay, purge and alert retry need a write tenant (operator or admin of the
-- job's tenant), go through the fleet's own functions (dragonfly.replay_dead_letter,
-- purge_dead_letters, retry_alert_deliveries) so their checks hold, and every one of them,
-- dry runs included, is recorded in dragonfly.console_audit with who asked.
--
-- Schema console is not exposed by PostgREST (its db-schemas are public and graphql_public);
-- API roles get USAGE so the console's sessions, running as them, can call it.

create schema console;

comment on schema console is
    'The on-call console''s reads and actions, run as the signed-in operator (authenticated with '
    'JWT claims, enforcement_operator) or service_role (the static admin). Not exposed by PostgREST.';

revoke all on schema console from public;
alter default privileges in schema console revoke execute on functions from public;
grant usage on schema console to authenticated, enforcement_operator, service_role, dragonfly_worker;

-- ---------------------------------------------------------------------------------------
-- The audit of every console action

create table dragonfly.console_audit (
    id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    actor text not null check (pg_catalog.btrim(actor) <> '' and pg_catalog.length(actor) <= 320),
    actor_sub uuid,
    action text not null check (action in ('replay', 'purge', 'retry_alert')),
    dry_run boolean not null,
    batch uuid not null,
    target_id bigint not null,
    queue text,
    kind text,
    tenant uuid,
    case_id uuid,
    outcome text not null
        check (outcome in ('replayed', 'would_replay', 'purged', 'would_purge', 'retried',
                           'would_retry', 'refused', 'not_found', 'read_only')),
    detail text,
    replay_msg_id bigint,
    selection jsonb check (selection is null or pg_catalog.jsonb_typeof(selection) = 'object')
);

comment on table dragonfly.console_audit is
    'Every replay, purge and alert retry asked of the console, one row per target (dead letter or '
    'alert delivery), dry runs included: who (actor, and the JWT sub of a signed-in user), when, what '
    '(batch groups one request; selection is the filter or ids as asked), and the outcome. A target '
    'the caller does not reach is recorded as not_found without its tenant.';

create index console_audit_at_idx on dragonfly.console_audit (at desc, id desc);
create index console_audit_tenant_idx on dragonfly.console_audit (tenant, at desc);

alter table dragonfly.console_audit enable row level security;
revoke all on dragonfly.console_audit from public;
grant select on dragonfly.console_audit to service_role;

-- What dead letters are searched and filtered by: the tenant and the case their job names,
-- kept as columns (generated from the message, so every writer fills them alike) because
-- extracting them per row at read time cost a function call per dead letter on every page.
alter table dragonfly.dead_letters
    add column tenant uuid generated always as (dragonfly.uuid_or_null(message -> 'tenant')) stored,
    add column case_id uuid
        generated always as (dragonfly.uuid_or_null(message -> 'payload' -> 'case_id')) stored;

comment on column dragonfly.dead_letters.tenant is
    'The envelope''s tenant when it is a uuid (null: the job names none, or only a stand-in was kept).';
comment on column dragonfly.dead_letters.case_id is
    'The job payload''s case_id when it is a uuid.';

create index dead_letters_tenant_idx on dragonfly.dead_letters (tenant, dead_at);
create index dead_letters_case_id_idx on dragonfly.dead_letters (case_id) where case_id is not null;

-- ---------------------------------------------------------------------------------------
-- Who is asking

-- global: reaches every tenant and the jobs that name none (internal callers, the
-- enforcement_operator role). actor: the signed-in user as the audit names them (email, else
-- sub), null for the others (the console names the static admin itself).
create function console.whoami()
returns table (
    global boolean,
    trust text,
    read_tenants uuid[],
    write_tenants uuid[],
    actor text,
    actor_sub uuid
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_claims jsonb;
begin
    begin
        v_claims := nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb;
    exception when data_exception then
        v_claims := null;
    end;
    trust := dragonfly.caller_trust_level();
    global := trust = 'internal'
              or pg_catalog.pg_has_role(dragonfly.caller_role(), 'enforcement_operator', 'usage');
    read_tenants := tenancy.caller_tenants('read');
    write_tenants := tenancy.caller_tenants('write');
    actor_sub := tenancy.caller_user_id();
    actor := case when dragonfly.caller_role() = 'authenticated' and actor_sub is not null
                  then coalesce(nullif(pg_catalog.btrim(v_claims ->> 'email'), ''), actor_sub::text)
             end;
    return next;
end
$$;

comment on function console.whoami() is
    'The caller as the console sees them: global (every tenant and the jobs that name none), trust '
    'level, read and write tenants, and the actor the audit records for a signed-in user.';

-- The actor an action is recorded under: a signed-in user is who their token says, whatever
-- the console passed; anyone else must be named (the console passes its static admin's name).
create function console.actor(p_actor text)
returns table (actor text, actor_sub uuid)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_me record;
begin
    select * into v_me from console.whoami();
    if v_me.actor is not null then
        actor := v_me.actor;
        actor_sub := v_me.actor_sub;
        return next;
        return;
    end if;
    if dragonfly.caller_role() = 'authenticated' then
        raise exception using errcode = '42501', message = 'console: a signed-in caller needs a user id (sub)';
    end if;
    if p_actor is null or pg_catalog.btrim(p_actor) = '' or pg_catalog.length(p_actor) > 320 then
        raise exception using errcode = '22023', message = 'console: name who acts (1 to 320 characters)';
    end if;
    actor := pg_catalog.btrim(p_actor);
    actor_sub := null;
    return next;
end
$$;

revoke execute on function console.actor(text) from public;

-- ---------------------------------------------------------------------------------------
-- Dead letters

create function console.find_dead_letters(
    p_queue text default null,
    p_kind text default null,
    p_error text default null,
    p_case uuid default null,
    p_since timestamptz default null,
    p_until timestamptz default null,
    p_status text default 'dead',
    p_ids bigint[] default null,
    p_limit integer default 100,
    p_offset integer default 0
)
returns table (
    id bigint,
    queue text,
    msg_id bigint,
    kind text,
    idempotency_key text,
    tenant uuid,
    case_id uuid,
    attempts integer,
    reason text,
    last_error text,
    enqueued_at timestamptz,
    dead_at timestamptz,
    status text,
    resolved_at timestamptz,
    resolved_by text,
    replay_msg_id bigint,
    truncated_from_bytes integer,
    writable boolean,
    total bigint
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_me record;
    v_pattern text;
begin
    if p_status is not null and p_status not in ('dead', 'replayed', 'purged') then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('find_dead_letters: status must be dead, replayed or purged, got %s',
                                        pg_catalog.left(p_status, 40));
    end if;
    if p_limit is not null and (p_limit < 1 or p_limit > 10000) then
        raise exception using errcode = '22023', message = 'find_dead_letters: limit must be 1 to 10000';
    end if;
    if p_offset is null or p_offset < 0 then
        raise exception using errcode = '22023', message = 'find_dead_letters: offset must be 0 or more';
    end if;
    select * into v_me from console.whoami();
    if p_error is not null and p_error <> '' then
        v_pattern := '%' || pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
            p_error, '\', '\\'), '%', '\%'), '_', '\_') || '%';
    end if;
    return query
        with visible as (
            -- Only the listed columns: the window's count materializes every match, and the
            -- message and traceback are wide.
            select d.id, d.queue, d.msg_id, d.kind, d.idempotency_key, d.tenant, d.case_id,
                   d.attempts, d.reason, d.last_error, d.enqueued_at, d.dead_at, d.status,
                   d.resolved_at, d.resolved_by, d.replay_msg_id, d.truncated_from_bytes
              from dragonfly.dead_letters as d
             where (p_queue is null or d.queue = p_queue)
               and (p_kind is null or d.kind = p_kind)
               and (v_pattern is null or d.last_error ilike v_pattern)
               and (p_case is null or d.case_id = p_case)
               and (p_since is null or d.dead_at >= p_since)
               and (p_until is null or d.dead_at < p_until)
               and (p_status is null or d.status = p_status)
               and (p_ids is null or d.id = any (p_ids))
               and (v_me.global or d.tenant = any (v_me.read_tenants))
        )
        select v.id, v.queue, v.msg_id, v.kind, v.idempotency_key, v.tenant, v.case_id,
               v.attempts, v.reason, v.last_error, v.enqueued_at, v.dead_at, v.status,
               v.resolved_at, v.resolved_by, v.replay_msg_id, v.truncated_from_bytes,
               v_me.global or v.tenant = any (v_me.write_tenants),
               pg_catalog.count(*) over ()
          from visible as v
         order by v.dead_at desc, v.id desc
         limit p_limit offset p_offset;
end
$$;

comment on function console.find_dead_letters(text, text, text, uuid, timestamptz, timestamptz, text, bigint[], integer, integer) is
    'Dead letters the caller reaches that match every given filter (queue, kind, error text '
    'case-insensitive and literal, the case its payload names, dead_at window, status, ids; null = '
    'any), newest first; writable says whether the caller may replay or purge it, total how many '
    'match in all.';

create function console.dead_letter(p_id bigint)
returns table (
    id bigint,
    queue text,
    msg_id bigint,
    kind text,
    idempotency_key text,
    tenant uuid,
    case_id uuid,
    message jsonb,
    headers jsonb,
    attempts integer,
    reason text,
    last_error text,
    traceback text,
    enqueued_at timestamptz,
    dead_at timestamptz,
    status text,
    resolved_at timestamptz,
    resolved_by text,
    replay_msg_id bigint,
    truncated_from_bytes integer,
    writable boolean,
    replay_done_at timestamptz
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_me record;
begin
    select * into v_me from console.whoami();
    return query
        select d.id, d.queue, d.msg_id, d.kind, d.idempotency_key, d.tenant, d.case_id,
               d.message, d.headers, d.attempts, d.reason, d.last_error, d.traceback,
               d.enqueued_at, d.dead_at, d.status, d.resolved_at, d.resolved_by, d.replay_msg_id,
               d.truncated_from_bytes,
               v_me.global or d.tenant = any (v_me.write_tenants),
               (select c.completed_at from dragonfly.completed_jobs as c
                 where c.kind = d.kind and c.idempotency_key = d.idempotency_key
                   and c.msg_id = d.replay_msg_id)
          from dragonfly.dead_letters as d
         where d.id = p_id
           and (v_me.global or d.tenant = any (v_me.read_tenants));
end
$$;

comment on function console.dead_letter(bigint) is
    'One dead letter the caller reaches, with its message, headers and traceback, and when the job '
    'its replay sent was done (replay_done_at); no row when it does not exist or is another tenant''s.';

-- One action on a list of dead letters, each in its own subtransaction, each recorded.
create function console.resolve_dead_letters(
    p_action text,
    p_ids bigint[],
    p_dry_run boolean,
    p_actor text,
    p_selection jsonb
)
returns table (dead_letter_id bigint, outcome text, replay_msg_id bigint, detail text)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_me record;
    v_who record;
    v_batch uuid := gen_random_uuid();
    v_id bigint;
    v_dead dragonfly.dead_letters%rowtype;
    v_tenant uuid;
    v_msg bigint;
    v_state text;
begin
    if p_action not in ('replay', 'purge') then
        raise exception using errcode = '22023', message = 'console: action must be replay or purge';
    end if;
    if p_ids is null or pg_catalog.cardinality(p_ids) = 0 then
        raise exception using errcode = '22023', message = pg_catalog.format('%s_dead_letters: name at least one dead letter', p_action);
    end if;
    if pg_catalog.cardinality(p_ids) > 10000 then
        raise exception using errcode = '54000', message = pg_catalog.format('%s_dead_letters: at most 10000 dead letters at once', p_action);
    end if;
    if p_dry_run is null then
        raise exception using errcode = '22023', message = pg_catalog.format('%s_dead_letters: say whether it is a dry run', p_action);
    end if;
    if p_selection is not null and pg_catalog.jsonb_typeof(p_selection) <> 'object' then
        raise exception using errcode = '22023', message = pg_catalog.format('%s_dead_letters: selection must be an object', p_action);
    end if;
    select * into v_me from console.whoami();
    select * into v_who from console.actor(p_actor);
    foreach v_id in array (select pg_catalog.array_agg(distinct x order by x) from pg_catalog.unnest(p_ids) as x)
    loop
        replay_msg_id := null;
        detail := null;
        dead_letter_id := v_id;
        -- Another tenant's row is filtered out before the lock: no wait on it, and it
        -- answers like a row that does not exist.
        select * into v_dead
          from dragonfly.dead_letters as d
         where d.id = v_id
           and (v_me.global or d.tenant = any (v_me.read_tenants))
           for update;
        if not found then
            outcome := 'not_found';
            detail := pg_catalog.format('dead letter %s does not exist', v_id);
            insert into dragonfly.console_audit
                (actor, actor_sub, action, dry_run, batch, target_id, outcome, detail, selection)
            values (v_who.actor, v_who.actor_sub, p_action, p_dry_run, v_batch, v_id, outcome, detail, p_selection);
            return next;
            continue;
        end if;
        v_tenant := v_dead.tenant;
        if not (v_me.global or v_tenant = any (v_me.write_tenants)) then
            outcome := 'read_only';
            detail := pg_catalog.format('dead letter %s: you may only read this tenant''s dead letters', v_id);
        elsif p_dry_run then
            v_state := case
                when v_dead.status <> 'dead' then pg_catalog.format('already %s', v_dead.status)
                when p_action = 'replay' and (v_dead.reason = 'malformed' or v_dead.kind is null
                                              or v_dead.idempotency_key is null)
                    then 'malformed envelope'
                when p_action = 'replay' and v_dead.truncated_from_bytes is not null
                    then 'truncated: only a stand-in of its message was kept'
            end;
            if v_state is null then
                outcome := 'would_' || p_action;
            else
                outcome := 'refused';
                detail := pg_catalog.format('dead letter %s would not be %s: %s', v_id,
                                            case p_action when 'replay' then 'replayed' else 'purged' end, v_state);
            end if;
        else
            begin
                if p_action = 'replay' then
                    v_msg := dragonfly.replay_dead_letter(v_id, v_who.actor);
                    outcome := 'replayed';
                    replay_msg_id := v_msg;
                else
                    if exists (select 1 from dragonfly.purge_dead_letters(array[v_id], v_who.actor)) then
                        outcome := 'purged';
                    else
                        outcome := 'refused';
                        detail := pg_catalog.format('dead letter %s is already %s', v_id, v_dead.status);
                    end if;
                end if;
            exception when others then
                outcome := 'refused';
                detail := sqlerrm;
            end;
        end if;
        insert into dragonfly.console_audit
            (actor, actor_sub, action, dry_run, batch, target_id, queue, kind, tenant, case_id,
             outcome, detail, replay_msg_id, selection)
        values (v_who.actor, v_who.actor_sub, p_action, p_dry_run, v_batch, v_id, v_dead.queue,
                v_dead.kind, v_tenant, v_dead.case_id,
                outcome, detail, replay_msg_id, p_selection);
        return next;
    end loop;
end
$$;

revoke execute on function console.resolve_dead_letters(text, bigint[], boolean, text, jsonb) from public;

create function console.replay_dead_letters(
    p_ids bigint[],
    p_dry_run boolean,
    p_actor text default null,
    p_selection jsonb default null
)
returns table (dead_letter_id bigint, outcome text, replay_msg_id bigint, detail text)
language sql
volatile
security definer
set search_path = ''
as $$
    select * from console.resolve_dead_letters('replay', p_ids, p_dry_run, p_actor, p_selection)
$$;

comment on function console.replay_dead_letters(bigint[], boolean, text, jsonb) is
    'Replays (or, dry run, says what replaying would do to) each listed dead letter through '
    'dragonfly.replay_dead_letter, for a caller with write access to its tenant; one outcome per id '
    '(replayed, would_replay, refused, read_only, not_found), each recorded in dragonfly.console_audit. '
    'A signed-in caller is recorded as their token says; others name p_actor.';

create function console.purge_dead_letters(
    p_ids bigint[],
    p_dry_run boolean,
    p_actor text default null,
    p_selection jsonb default null
)
returns table (dead_letter_id bigint, outcome text, replay_msg_id bigint, detail text)
language sql
volatile
security definer
set search_path = ''
as $$
    select * from console.resolve_dead_letters('purge', p_ids, p_dry_run, p_actor, p_selection)
$$;

comment on function console.purge_dead_letters(bigint[], boolean, text, jsonb) is
    'Purges (or, dry run, says what purging would do to) each listed dead letter through '
    'dragonfly.purge_dead_letters, like console.replay_dead_letters.';

create function console.audit_log(p_limit integer default 100, p_action text default null)
returns table (
    id bigint,
    at timestamptz,
    actor text,
    action text,
    dry_run boolean,
    batch uuid,
    target_id bigint,
    queue text,
    kind text,
    tenant uuid,
    case_id uuid,
    outcome text,
    detail text,
    replay_msg_id bigint
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_me record;
begin
    if p_limit is null or p_limit < 1 or p_limit > 10000 then
        raise exception using errcode = '22023', message = 'audit_log: limit must be 1 to 10000';
    end if;
    select * into v_me from console.whoami();
    return query
        select a.id, a.at, a.actor, a.action, a.dry_run, a.batch, a.target_id, a.queue, a.kind,
               a.tenant, a.case_id, a.outcome, a.detail, a.replay_msg_id
          from dragonfly.console_audit as a
         where (p_action is null or a.action = p_action)
           and (v_me.global or a.tenant = any (v_me.read_tenants))
         order by a.at desc, a.id desc
         limit p_limit;
end
$$;

comment on function console.audit_log(integer, text) is
    'The console''s audit, newest first: the rows of the caller''s tenants (all of them for a global '
    'caller; rows without a tenant only for a global caller).';

-- ---------------------------------------------------------------------------------------
-- Queues and fleet (fleet-wide figures: no tenant's data)

create function console.queue_overview()
returns table (
    queue text,
    depth bigint,
    visible bigint,
    in_flight bigint,
    deferred bigint,
    next_due_at timestamptz,
    oldest_age_sec integer,
    total_messages bigint,
    depth_estimated boolean,
    dead_letters bigint
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_me record;
begin
    select * into v_me from console.whoami();
    return query
        select s.queue, s.depth, s.visible, s.in_flight, s.deferred, s.next_due_at,
               s.oldest_age_sec, s.total_messages, s.depth_estimated,
               case when v_me.global then s.dead_letters
                    else (select pg_catalog.count(*) from dragonfly.dead_letters as d
                           where d.queue = s.queue and d.status = 'dead'
                             and d.tenant = any (v_me.read_tenants))
               end
          from dragonfly.queue_stats() as s;
end
$$;

comment on function console.queue_overview() is
    'dragonfly.queue_stats() per queue (fleet-wide), with the open dead letters the caller reaches.';

create function console.queue_history(p_since timestamptz, p_bucket interval default '1 minute')
returns table (
    queue text,
    sampled_at timestamptz,
    depth bigint,
    in_flight bigint,
    deferred bigint,
    oldest_age_sec integer,
    done bigint,
    dead_lettered bigint
)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if p_bucket is null or p_bucket < interval '1 minute' or p_bucket > interval '1 day' then
        raise exception using errcode = '22023', message = 'queue_history: bucket must be 1 minute to 1 day';
    end if;
    return query
        select s.queue, pg_catalog.date_bin(p_bucket, s.sampled_at, '2000-01-01 00:00:00+00'::timestamptz),
               max(s.depth), max(s.in_flight), max(s.deferred), max(s.oldest_age_sec),
               sum(s.done)::bigint, sum(s.dead_lettered)::bigint
          from dragonfly.queue_samples as s
         where s.sampled_at >= p_since
         group by 1, 2
         order by 1, 2;
end
$$;

comment on function console.queue_history(timestamptz, interval) is
    'The queue samples since p_since (fleet-wide) in buckets of p_bucket: the largest depth, in '
    'flight, deferred and oldest age of each bucket, and the jobs done and dead-lettered in it.';

create function console.fleet_processes()
returns table (
    host text,
    pid integer,
    process text,
    started_at timestamptz,
    last_seen timestamptz,
    ready boolean,
    reason text,
    up boolean
)
language sql
stable
security definer
set search_path = ''
as $$
    select f.host, f.pid, f.process, f.started_at, f.last_seen, f.ready, f.reason,
           f.last_seen > pg_catalog.clock_timestamp() - interval '30 seconds'
      from dragonfly.fleet_processes as f
     order by f.process, f.host, f.pid
$$;

comment on function console.fleet_processes() is
    'The fleet''s heartbeat rows; up while the heartbeat is fresher than 30 seconds.';

-- ---------------------------------------------------------------------------------------
-- Alerts

create function console.find_alert_deliveries(
    p_status text default null,
    p_case uuid default null,
    p_limit integer default 100
)
returns table (
    id bigint,
    event_id uuid,
    case_id uuid,
    event_kind text,
    event_created_at timestamptz,
    rule text,
    sink text,
    status text,
    attempts integer,
    last_error text,
    next_attempt_at timestamptz,
    delivered_at timestamptz,
    dead_at timestamptz,
    updated_at timestamptz,
    tenant uuid,
    writable boolean
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_me record;
begin
    if p_status is not null and p_status not in ('pending', 'failed', 'delivered', 'dead') then
        raise exception using errcode = '22023',
            message = 'find_alert_deliveries: status must be pending, failed, delivered or dead';
    end if;
    if p_limit is null or p_limit < 1 or p_limit > 10000 then
        raise exception using errcode = '22023', message = 'find_alert_deliveries: limit must be 1 to 10000';
    end if;
    select * into v_me from console.whoami();
    return query
        select d.id, d.event_id, d.case_id, d.event_kind, d.event_created_at, d.rule, d.sink,
               d.status, d.attempts, d.last_error, d.next_attempt_at, d.delivered_at, d.dead_at,
               d.updated_at, c.tenant_id,
               v_me.global or c.tenant_id = any (v_me.write_tenants)
          from dragonfly.alert_deliveries as d
          left join public.enforcement_cases as c on c.id = d.case_id
         where (p_status is null or d.status = p_status)
           and (p_case is null or d.case_id = p_case)
           and (v_me.global or c.tenant_id = any (v_me.read_tenants))
         order by d.updated_at desc, d.id desc
         limit p_limit;
end
$$;

comment on function console.find_alert_deliveries(text, uuid, integer) is
    'Alert deliveries of the cases the caller reaches (a global caller: all), newest change first.';

create function console.alert_delivery_counts()
returns table (status text, deliveries bigint)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_me record;
begin
    select * into v_me from console.whoami();
    if v_me.global then
        return query
            select s.status, (select pg_catalog.count(*) from dragonfly.alert_deliveries as d where d.status = s.status)
              from pg_catalog.unnest(array['pending', 'failed', 'delivered', 'dead']) as s (status);
        return;
    end if;
    return query
        select s.status,
               (select pg_catalog.count(*)
                  from dragonfly.alert_deliveries as d
                  join public.enforcement_cases as c on c.id = d.case_id
                 where d.status = s.status and c.tenant_id = any (v_me.read_tenants))
          from pg_catalog.unnest(array['pending', 'failed', 'delivered', 'dead']) as s (status);
end
$$;

comment on function console.alert_delivery_counts() is
    'Alert deliveries per state (pending, failed, delivered, dead) among those the caller reaches.';

create function console.alert_rules()
returns table (
    name text,
    description text,
    enabled boolean,
    event_kinds text[],
    tiers text[],
    min_amount numeric,
    sinks text[],
    job_kind text,
    updated_at timestamptz
)
language sql
stable
security definer
set search_path = ''
as $$
    select r.name, r.description, r.enabled, r.event_kinds::text[], r.tiers, r.min_amount, r.sinks,
           r.job_kind, r.updated_at
      from dragonfly.alert_rules as r
     order by r.name
$$;

comment on function console.alert_rules() is
    'The alert routing rules (configuration shared by every tenant; email recipients left out).';

create function console.retry_alert_deliveries(
    p_ids bigint[],
    p_actor text default null
)
returns table (delivery_id bigint, outcome text, detail text)
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_me record;
    v_who record;
    v_batch uuid := gen_random_uuid();
    v_id bigint;
    v_row record;
begin
    if p_ids is null or pg_catalog.cardinality(p_ids) = 0 then
        raise exception using errcode = '22023', message = 'retry_alert_deliveries: name at least one delivery';
    end if;
    if pg_catalog.cardinality(p_ids) > 10000 then
        raise exception using errcode = '54000', message = 'retry_alert_deliveries: at most 10000 deliveries at once';
    end if;
    select * into v_me from console.whoami();
    select * into v_who from console.actor(p_actor);
    foreach v_id in array (select pg_catalog.array_agg(distinct x order by x) from pg_catalog.unnest(p_ids) as x)
    loop
        delivery_id := v_id;
        detail := null;
        select d.id, d.status, d.case_id, d.sink, d.rule, c.tenant_id into v_row
          from dragonfly.alert_deliveries as d
          left join public.enforcement_cases as c on c.id = d.case_id
         where d.id = v_id
           and (v_me.global or c.tenant_id = any (v_me.read_tenants))
           for update of d;
        if not found then
            outcome := 'not_found';
            detail := pg_catalog.format('alert delivery %s does not exist', v_id);
            insert into dragonfly.console_audit
                (actor, actor_sub, action, dry_run, batch, target_id, outcome, detail)
            values (v_who.actor, v_who.actor_sub, 'retry_alert', false, v_batch, v_id, outcome, detail);
            return next;
            continue;
        end if;
        if not (v_me.global or v_row.tenant_id = any (v_me.write_tenants)) then
            outcome := 'read_only';
            detail := pg_catalog.format('alert delivery %s: you may only read this tenant''s alerts', v_id);
        elsif exists (select 1 from dragonfly.retry_alert_deliveries(p_ids => array[v_id])) then
            outcome := 'retried';
        else
            outcome := 'refused';
            detail := pg_catalog.format('alert delivery %s is %s: only dead or failed deliveries are retried',
                                        v_id, v_row.status);
        end if;
        insert into dragonfly.console_audit
            (actor, actor_sub, action, dry_run, batch, target_id, queue, tenant, case_id, outcome, detail)
        values (v_who.actor, v_who.actor_sub, 'retry_alert', false, v_batch, v_id, v_row.sink,
                v_row.tenant_id, v_row.case_id, outcome, detail);
        return next;
    end loop;
end
$$;

comment on function console.retry_alert_deliveries(bigint[], text) is
    'Retries each listed dead or failed alert delivery through dragonfly.retry_alert_deliveries, for a '
    'caller with write access to its case''s tenant; one outcome per id (retried, refused, read_only, '
    'not_found), each recorded in dragonfly.console_audit.';

-- ---------------------------------------------------------------------------------------
-- One case

create function console.case_jobs(p_case uuid)
returns table (
    source text,
    queue text,
    kind text,
    idempotency_key text,
    msg_id bigint,
    at timestamptz,
    state text,
    attempts integer,
    detail text,
    ref_id bigint
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_queue text;
begin
    if not tenancy.may_on_case('read', p_case) then
        return;
    end if;
    return query
        select 'completed', c.queue, c.kind, c.idempotency_key, c.msg_id, c.completed_at, 'done',
               c.attempts, c.worker, null::bigint
          from dragonfly.completed_jobs as c
         where c.case_id = p_case
        union all
        select 'dead_letter', d.queue, d.kind, d.idempotency_key, d.msg_id, d.dead_at, d.status,
               d.attempts, d.last_error, d.id
          from dragonfly.dead_letters as d
         where d.case_id = p_case;
    for v_queue in select k.kind from dragonfly.job_kinds as k order by k.kind loop
        return query execute pg_catalog.format(
            $q$
            select 'queued'::text, %1$L::text, q.message ->> 'kind', q.message ->> 'idempotency_key',
                   q.msg_id, q.enqueued_at,
                   case when q.vt > pg_catalog.clock_timestamp() and q.read_ct > 0 then 'in flight'
                        when q.vt > pg_catalog.clock_timestamp() then 'deferred'
                        else 'queued' end,
                   q.read_ct, null::text, null::bigint
              from pgmq.%2$I as q
             where q.message -> 'payload' ->> 'case_id' = $1
            $q$,
            v_queue, 'q_' || v_queue
        ) using p_case::text;
    end loop;
end
$$;

comment on function console.case_jobs(uuid) is
    'Every job the fleet knows of for a case the caller reaches: completed (completed_jobs.case_id), '
    'dead letters (their payload''s case_id) and messages still queued; nothing for another tenant''s '
    'case or one that does not exist.';

create function console.case_briefs(p_case uuid)
returns table (
    id uuid,
    created_at timestamptz,
    backend text,
    model text,
    version text,
    latency_ms integer,
    brief jsonb,
    requested_by text
)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- Copilot output stays internal: operators and admins of the case's tenant see it,
    -- viewers do not.
    if not tenancy.may_on_case('write', p_case) then
        return;
    end if;
    return query
        select o.id, o.created_at, o.backend, o.model, o.version, o.latency_ms, o.brief, o.requested_by
          from public.case_copilot_outputs as o
         where o.enforcement_case_id = p_case
         order by o.created_at, o.id;
end
$$;

comment on function console.case_briefs(uuid) is
    'The Case Copilot briefs of a case, oldest first, for a caller who may write in its tenant.';

revoke execute on all functions in schema console from public;
grant execute on function
    console.whoami(),
    console.find_dead_letters(text, text, text, uuid, timestamptz, timestamptz, text, bigint[], integer, integer),
    console.dead_letter(bigint),
    console.replay_dead_letters(bigint[], boolean, text, jsonb),
    console.purge_dead_letters(bigint[], boolean, text, jsonb),
    console.audit_log(integer, text),
    console.queue_overview(),
    console.queue_history(timestamptz, interval),
    console.fleet_processes(),
    console.find_alert_deliveries(text, uuid, integer),
    console.alert_delivery_counts(),
    console.alert_rules(),
    console.retry_alert_deliveries(bigint[], text),
    console.case_jobs(uuid),
    console.case_briefs(uuid)
    to authenticated, enforcement_operator, service_role, dragonfly_worker;
