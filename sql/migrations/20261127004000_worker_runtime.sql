-- The worker runtime's own bookkeeping, in a schema of its own.
--
-- Why a separate schema: these tables are the fleet's internals (exactly-once
-- records, dead letters, enqueue deduplication). They are never exposed through
-- PostgREST; only service_role and the fleet's role (dragonfly_worker) see them.
create schema if not exists dragonfly;

comment on schema dragonfly is
    'Worker-fleet internals: enqueue dedupe, completed-job records, dead letters. Not exposed over the API.';

revoke all on schema dragonfly from public;
grant usage on schema dragonfly to service_role, dragonfly_worker;

-- One row per (kind, idempotency_key) ever enqueued through queue_job(). The
-- primary key makes concurrent enqueues of the same key wait for each other, so
-- exactly one message is sent; a rolled-back enqueue leaves no row behind.
create table dragonfly.enqueued_jobs (
    kind text not null,
    idempotency_key text not null,
    msg_id bigint not null,
    enqueued_at timestamptz not null default now(),
    enqueued_by text,
    primary key (kind, idempotency_key),
    constraint enqueued_jobs_key_not_blank check (btrim(idempotency_key) <> '')
);

comment on table dragonfly.enqueued_jobs is
    'Enqueue-side deduplication for queue_job(): the first message id sent for each (kind, idempotency_key).';

create index enqueued_jobs_enqueued_at_idx on dragonfly.enqueued_jobs (enqueued_at);

-- One row per job whose effects committed. Written in the same transaction as
-- the handler's effects and the deletion of the message, so a job counts as
-- done exactly when its effects exist.
create table dragonfly.completed_jobs (
    kind text not null,
    idempotency_key text not null,
    queue text not null,
    msg_id bigint not null,
    attempts integer not null check (attempts >= 1),
    duration_ms integer,
    worker text,
    completed_at timestamptz not null default now(),
    primary key (kind, idempotency_key)
);

comment on table dragonfly.completed_jobs is
    'Consume-side exactly-once record: a job is done when its row exists. Pruned by the scheduler after DRAGONFLY_RETENTION_COMPLETED_DAYS.';

create index completed_jobs_completed_at_idx on dragonfly.completed_jobs (completed_at);

-- Messages that will not succeed by retrying: malformed envelopes, permanent
-- errors, jobs past max_attempts. The live queue no longer holds them; this
-- table keeps everything needed to understand and replay them.
create table dragonfly.dead_letters (
    id bigint generated always as identity primary key,
    queue text not null,
    msg_id bigint not null,
    kind text,
    idempotency_key text,
    message jsonb not null,
    headers jsonb,
    attempts integer not null,
    reason text not null check (reason in ('malformed', 'permanent', 'max_attempts', 'timeout')),
    last_error text not null,
    traceback text,
    enqueued_at timestamptz,
    dead_at timestamptz not null default now(),
    status text not null default 'dead' check (status in ('dead', 'replayed', 'purged')),
    resolved_at timestamptz,
    resolved_by text,
    replay_msg_id bigint,
    constraint dead_letters_resolution check ((status = 'dead') = (resolved_at is null)),
    unique (queue, msg_id)
);

comment on table dragonfly.dead_letters is
    'Dead-letter store: payload, headers, attempts, last error and traceback of each message taken off a live queue. Replay and purge mark rows resolved; resolved rows are pruned after DRAGONFLY_RETENTION_DEAD_LETTER_DAYS.';

create index dead_letters_open_idx on dragonfly.dead_letters (queue, dead_at) where status = 'dead';
create index dead_letters_kind_idx on dragonfly.dead_letters (kind, dead_at);
create index dead_letters_resolved_at_idx on dragonfly.dead_letters (resolved_at)
    where status <> 'dead';

alter table dragonfly.enqueued_jobs enable row level security;
alter table dragonfly.completed_jobs enable row level security;
alter table dragonfly.dead_letters enable row level security;

revoke all on dragonfly.enqueued_jobs, dragonfly.completed_jobs, dragonfly.dead_letters from public;
grant select, insert, update, delete
    on dragonfly.enqueued_jobs, dragonfly.completed_jobs, dragonfly.dead_letters
    to service_role, dragonfly_worker;

create policy "The fleet manages enqueue records" on dragonfly.enqueued_jobs
    for all to dragonfly_worker using (true) with check (true);
create policy "The fleet manages completed-job records" on dragonfly.completed_jobs
    for all to dragonfly_worker using (true) with check (true);
create policy "The fleet manages dead letters" on dragonfly.dead_letters
    for all to dragonfly_worker using (true) with check (true);
