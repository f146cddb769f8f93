-- The job-kind registry: the one list of job kinds in SQL.
--
-- Why: the kinds were a closed list written out in the queue-creation migration, in
-- queue_job(), check_job_queue(), pgmq_metrics() and the alert_rules.job_kind check, so a
-- new kind meant recreating all of them. Now a kind is a row of dragonfly.job_kinds, added
-- by one migration calling dragonfly.register_job_kind(kind, description), which also
-- creates its PGMQ queue; everything that needs the list reads the table
-- (docs/adding-a-job-kind.md). The table keeps room for per-kind policy columns (who may
-- enqueue, payload and delay limits): they are added later with defaults, one row per kind.
--
-- This file registers the four kinds the fleet ships. Their queues already exist (the
-- 20261127000100_job_queues migration created them), so registration must be a no-op for
-- the queue and its insert notifications; on a fresh database it is the same no-op.

create table dragonfly.job_kinds (
    kind text primary key
        constraint job_kinds_kind_name check (kind ~ '^[a-z][a-z0-9_]{0,39}$'),
    description text not null
        constraint job_kinds_description_not_blank check (pg_catalog.btrim(description) <> ''),
    enabled boolean not null default true,
    created_at timestamptz not null default pg_catalog.now()
);

comment on table dragonfly.job_kinds is
    'The job kinds: one row per kind, each with the PGMQ queue of the same name. Added by '
    'dragonfly.register_job_kind() in a migration; queue_job(), the PGMQ wrappers, the queue '
    'statistics and alert rules read it. A disabled kind takes no new jobs (queue_job DF101); '
    'what is already queued is still consumed.';
comment on column dragonfly.job_kinds.kind is
    'The kind and its queue''s name: a lowercase letter, then up to 39 lowercase letters, digits '
    'or underscores.';
comment on column dragonfly.job_kinds.description is 'What a job of this kind does, for people.';
comment on column dragonfly.job_kinds.enabled is
    'False: queue_job() refuses new jobs of this kind (DF101); queued ones are still consumed.';
comment on column dragonfly.job_kinds.created_at is 'When the kind was registered.';

alter table dragonfly.job_kinds enable row level security;
revoke all on dragonfly.job_kinds from public;
grant select on dragonfly.job_kinds to service_role, dragonfly_worker;
create policy "The fleet reads the job kinds" on dragonfly.job_kinds
    for select to dragonfly_worker using (true);

-- Register a kind: its row, its queue and the queue's insert notification, each only if
-- missing, so the same call in a migration applied to a database that already has the
-- kind (or its queue) changes nothing but the description: re-enabling a notification
-- would drop and recreate its trigger.
create function dragonfly.register_job_kind(kind text, description text)
returns void
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_triggers text[];
begin
    if kind is null or kind !~ '^[a-z][a-z0-9_]{0,39}$' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'register_job_kind: kind must be a lowercase letter followed by at most 39 '
                'lowercase letters, digits or underscores (got %s)',
                coalesce(pg_catalog.quote_literal(pg_catalog.left(kind, 100)), 'null')
            );
    end if;
    if description is null or pg_catalog.btrim(description) = '' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('register_job_kind: description of %s must not be blank', kind);
    end if;

    insert into dragonfly.job_kinds as k (kind, description)
    values (register_job_kind.kind, register_job_kind.description)
    on conflict on constraint job_kinds_pkey
    do update set description = excluded.description
    where k.description is distinct from excluded.description;

    if not exists (select 1 from pgmq.meta as m where m.queue_name = register_job_kind.kind) then
        perform pgmq.create(register_job_kind.kind);
    end if;

    -- Insert notifications, once. The job queues notify through the project's own
    -- statement-level trigger (dragonfly.enable_queue_notify, migration 20261202120000,
    -- which also removes PGMQ's). Before that migration has run, PGMQ's own notification
    -- (1.7 and later) stands in, and that migration converts it.
    select coalesce(pg_catalog.array_agg(t.tgname::text), '{}')
      into v_triggers
      from pg_catalog.pg_trigger as t
      join pg_catalog.pg_class as c on c.oid = t.tgrelid
      join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
     where n.nspname = 'pgmq' and c.relname = 'q_' || register_job_kind.kind;
    if 'dragonfly_notify_insert' = any (v_triggers) then
        null;  -- notified the project's way already
    elsif pg_catalog.to_regprocedure('dragonfly.enable_queue_notify(text)') is not null then
        execute 'select dragonfly.enable_queue_notify($1)' using register_job_kind.kind;
    elsif 'trigger_notify_queue_insert_listeners' <> all (v_triggers)
          and exists (
              select 1
                from pg_catalog.pg_proc as p
                join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
               where n.nspname = 'pgmq' and p.proname = 'enable_notify_insert'
          ) then
        perform pgmq.enable_notify_insert(register_job_kind.kind, 0);
    end if;
end
$$;

comment on function dragonfly.register_job_kind(text, text) is
    'Register a job kind: insert its dragonfly.job_kinds row (or update its description) and '
    'create its PGMQ queue with insert notifications (dragonfly.enable_queue_notify), each only '
    'if missing. Call it from the migration that adds the kind. 22023 on a kind that is not a '
    'lowercase identifier of at most 40 characters, or a blank description.';

revoke execute on function dragonfly.register_job_kind(text, text) from public;

select dragonfly.register_job_kind(
    'enrich', 'Score a case from its debtor''s assets and contacts (vendor pull or pushed bundle).'
);
select dragonfly.register_job_kind(
    'outreach', 'Contact a plaintiff: an email, or a call task, outside their quiet hours.'
);
select dragonfly.register_job_kind(
    'enforce', 'Plan and open the next enforcement action of a case.'
);
select dragonfly.register_job_kind(
    'case_copilot', 'Write an operator''s brief of a case with the language model.'
);

-- The queue check reads the registry instead of its own copy of the list. STABLE now that
-- it reads a table (it was IMMUTABLE); job_queue_table(), which calls it, follows.
create or replace function dragonfly.check_job_queue(p_what text, p_queue text)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    if p_queue is null
       or not exists (select 1 from dragonfly.job_kinds as k where k.kind = p_queue) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s must be one of %s (got %s)',
                p_what,
                (select pg_catalog.string_agg(k.kind, ', ' order by k.kind) from dragonfly.job_kinds as k),
                coalesce(pg_catalog.quote_literal(pg_catalog.left(p_queue, 100)), 'null')
            );
    end if;
end
$$;

comment on function dragonfly.check_job_queue(text, text) is
    'Internal: 22023 "<p_what> must be one of <the registered kinds> (got ...)" unless p_queue '
    'names a kind of dragonfly.job_kinds (enabled or not: a disabled kind''s queue is still '
    'consumed).';

create or replace function dragonfly.job_queue_table(p_queue text)
returns text
language plpgsql
stable
set search_path = ''
as $$
begin
    perform dragonfly.check_job_queue('queue', p_queue);
    return 'q_' || p_queue;
end
$$;

comment on function dragonfly.job_queue_table(text) is
    'Internal: the PGMQ table (q_<queue>) of a registered job kind''s queue; 22023 for any other '
    'name.';

-- Alert rules name their queue sink's kind by foreign key instead of a copied list.
alter table dragonfly.alert_rules drop constraint alert_rules_job_kind_check;
alter table dragonfly.alert_rules
    add constraint alert_rules_job_kind_fkey
    foreign key (job_kind) references dragonfly.job_kinds (kind);
