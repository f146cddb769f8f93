-- The tally kind (tests only): its table, and its registration with its queue.
create table dragonfly.tally_marks (
    idempotency_key text primary key,
    count integer not null,
    marked_at timestamptz not null default now()
);

comment on table dragonfly.tally_marks is 'Tests only: one row per tally job that succeeded.';

grant select, insert on dragonfly.tally_marks to dragonfly_worker;

select dragonfly.register_job_kind('tally', 'Tests only: record a count, or fail when asked to.');
