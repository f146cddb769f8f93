-- Plaintiff outreach attempts: one row per outreach job, whatever it decided.
--
-- Why: the outreach worker must record every attempt (an email sent, a call task created,
-- a plaintiff left alone because of do_not_call / bad_number, no usable channel, a
-- deferral out of quiet hours) and must send one email when the same job is delivered
-- twice. The row is the outbox record: it is written in the job's transaction *before* the
-- email is handed to SMTP and commits together with the job, so
--   * unique (idempotency_key): one row per job, whatever the redeliveries;
--   * unique (outreach_key) where the outreach reached the plaintiff: one email or call
--     task per logical outreach, also across the continuation jobs that a quiet-hours
--     deferral enqueues (they keep the first job's key as outreach_key).
-- docs/outreach.md explains what happens when a worker dies between the SMTP server
-- accepting the message and the commit.

create table public.outreach_attempts (
    id uuid primary key default gen_random_uuid(),
    idempotency_key text not null check (pg_catalog.btrim(idempotency_key) <> ''),
    outreach_key text not null check (pg_catalog.btrim(outreach_key) <> ''),
    plaintiff_id uuid not null references public.plaintiffs (id) on delete cascade,
    reason text,
    campaign text,
    outcome text not null
        check (outcome in ('sent', 'task_created', 'suppressed', 'no_channel', 'deferred', 'duplicate')),
    channel text check (channel in ('email', 'call')),
    detail text,
    plaintiff_status public.plaintiff_status not null,
    email_to text,
    message_id text,
    task_id uuid references public.plaintiff_tasks (id) on delete set null,
    not_before timestamptz,
    next_idempotency_key text,
    attempted_at timestamptz not null default now(),
    created_by text,
    constraint outreach_attempts_idempotency_key_key unique (idempotency_key),
    constraint outreach_attempts_channel_iff_contact check (
        (channel is not null) = (outcome in ('sent', 'task_created'))
    ),
    constraint outreach_attempts_email_fields check (
        outcome <> 'sent' or (channel = 'email' and email_to is not null and message_id is not null)
    ),
    constraint outreach_attempts_call_fields check (outcome <> 'task_created' or channel = 'call'),
    constraint outreach_attempts_deferred_fields check (
        (outcome = 'deferred') = (not_before is not null)
    ),
    constraint outreach_attempts_reason_or_campaign check (reason is not null or campaign is not null)
);

comment on table public.outreach_attempts is
    'One row per outreach job: what it did for the plaintiff (sent an email, created a call task, '
    'suppressed by status, found no channel, deferred out of quiet hours, or found the outreach already '
    'done). Written by record_outreach_attempt() in the job''s transaction before any email is sent. '
    'Append-only.';
comment on column public.outreach_attempts.idempotency_key is
    'The job''s idempotency key (unique: a redelivered job finds its row and does nothing).';
comment on column public.outreach_attempts.outreach_key is
    'The logical outreach: the first job''s idempotency key, carried by the continuation jobs of a '
    'quiet-hours deferral. At most one row per outreach_key reaches the plaintiff (sent / task_created).';
comment on column public.outreach_attempts.plaintiff_status is
    'The plaintiff''s status when the decision was made (do_not_call and bad_number suppress).';
comment on column public.outreach_attempts.message_id is
    'RFC 5322 Message-ID of the email, derived from outreach_key: a resend after a crash carries the '
    'same id, so mail systems can recognise the duplicate.';
comment on column public.outreach_attempts.not_before is
    'Deferred attempts: when quiet hours end in the plaintiff''s zone and the continuation job runs.';
comment on column public.outreach_attempts.next_idempotency_key is
    'Deferred attempts: the idempotency key of the continuation job enqueued through queue_job().';

create unique index outreach_attempts_one_contact_per_outreach
    on public.outreach_attempts (outreach_key)
    where outcome in ('sent', 'task_created');
create index outreach_attempts_plaintiff_id_idx
    on public.outreach_attempts (plaintiff_id, attempted_at);
create index outreach_attempts_task_id_idx
    on public.outreach_attempts (task_id)
    where task_id is not null;

alter table public.outreach_attempts enable row level security;

revoke all on public.outreach_attempts from public, anon, authenticated, service_role;
grant select, insert, update, delete on public.outreach_attempts to service_role;
grant select on public.outreach_attempts to dragonfly_worker;

create policy "The fleet reads outreach attempts" on public.outreach_attempts
    for select to dragonfly_worker using (true);
