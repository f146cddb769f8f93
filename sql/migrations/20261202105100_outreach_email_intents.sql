-- Outreach emails: at most one per job. The intent is committed before the SMTP send.
--
-- Why: the email used to be sent inside the job's transaction, after its `sent` attempt row
-- was written; a worker that died (or a commit that failed) after the SMTP server accepted
-- the message rolled the row back, and the retry sent the email a second time. The send now
-- runs in the job's outside phase (docs/worker-runtime.md), with no transaction open:
--
--   1. begin_outreach_email() commits an intent (this table, state `sending`, the stable
--      Message-ID) under the plaintiff's lock, or says why not to send (the plaintiff may not
--      be contacted any more, another job of the outreach already emails or reached them, or
--      this job already has an intent: an earlier attempt may have sent it);
--   2. the worker hands the message to SMTP;
--   3. settle_outreach_email() marks the intent `sent` once the server accepted the message,
--      or deletes it when the server refused it or could not be reached (nothing went out,
--      so the retry may send);
--   4. the job's transaction records the attempt (record_outreach_attempt) as before.
--
-- A retry that finds its own intent still `sending` does not know whether the server got the
-- message (the worker died between the send and step 3): it records the new outcome
-- `unknown`, never sends again, and on-call checks the mail logs for the Message-ID
-- (docs/runbooks/outreach-unknown.md). An intent found `sent` is recorded as `sent`.
--
-- Changes here: the table; `unknown` as an outreach_attempts outcome that, like `sent`,
-- counts as having reached the plaintiff for the outreach (no second job emails);
-- begin_outreach() and record_outreach_attempt() replaced for that outcome (and a `sent` or
-- `unknown` record of a job with an intent is not refused when the plaintiff's status changed
-- after the email left: the record must say what happened).

create table public.outreach_emails (
    idempotency_key text primary key check (pg_catalog.btrim(idempotency_key) <> ''),
    outreach_key text not null check (pg_catalog.btrim(outreach_key) <> ''),
    plaintiff_id uuid not null references public.plaintiffs (id) on delete cascade,
    email_to text not null,
    message_id text not null,
    state text not null default 'sending' check (state in ('sending', 'sent')),
    created_at timestamptz not null default pg_catalog.now(),
    sent_at timestamptz,
    created_by text,
    constraint outreach_emails_one_per_outreach unique (outreach_key),
    constraint outreach_emails_sent_at check ((state = 'sent') = (sent_at is not null))
);

comment on table public.outreach_emails is
    'Outreach email intents: one row per outreach job that decided to email, committed before the '
    'message is handed to SMTP (state sending), marked sent once the server accepted it, deleted when '
    'the server refused it. A row still sending when its job retries means the send may or may not '
    'have happened: the attempt is recorded as unknown and the email is never sent again. At most one '
    'row per outreach_key.';
comment on column public.outreach_emails.state is
    'sending: committed before the SMTP send, outcome not known yet; sent: the server accepted it.';
comment on column public.outreach_emails.message_id is
    'The email''s RFC 5322 Message-ID (derived from outreach_key): what on-call looks for in the mail '
    'server''s logs when an attempt is recorded as unknown.';

create index outreach_emails_plaintiff_id_idx on public.outreach_emails (plaintiff_id);

alter table public.outreach_emails enable row level security;

revoke all on public.outreach_emails from public, anon, authenticated, service_role;
grant select, insert, update, delete on public.outreach_emails to service_role;
grant select on public.outreach_emails to dragonfly_worker;

create policy "The fleet reads outreach email intents" on public.outreach_emails
    for select to dragonfly_worker using (true);

-- `unknown`: an email that may have been sent (see above). Like `sent` it names the channel,
-- the address and the Message-ID, and it reaches the plaintiff as far as deduplication goes.
alter table public.outreach_attempts drop constraint outreach_attempts_outcome_check;
alter table public.outreach_attempts add constraint outreach_attempts_outcome_check check (
    outcome in ('sent', 'unknown', 'task_created', 'suppressed', 'no_channel', 'deferred', 'duplicate')
);
alter table public.outreach_attempts drop constraint outreach_attempts_channel_iff_contact;
alter table public.outreach_attempts add constraint outreach_attempts_channel_iff_contact check (
    (channel is not null) = (outcome in ('sent', 'unknown', 'task_created'))
);
alter table public.outreach_attempts drop constraint outreach_attempts_email_fields;
alter table public.outreach_attempts add constraint outreach_attempts_email_fields check (
    outcome not in ('sent', 'unknown')
    or (channel = 'email' and email_to is not null and message_id is not null)
);
drop index public.outreach_attempts_one_contact_per_outreach;
create unique index outreach_attempts_one_contact_per_outreach
    on public.outreach_attempts (outreach_key)
    where outcome in ('sent', 'unknown', 'task_created');

comment on column public.outreach_attempts.outcome is
    'sent, unknown (an email that may have gone out: its job died between the SMTP send and the record; '
    'see public.outreach_emails and docs/runbooks/outreach-unknown.md), task_created, suppressed, '
    'no_channel, deferred or duplicate.';

create or replace function public.begin_outreach(
    p_plaintiff_id uuid,
    p_idempotency_key text,
    p_outreach_key text
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_plaintiff public.plaintiffs;
    v_this jsonb;
    v_done jsonb;
begin
    if p_plaintiff_id is null then
        raise exception using errcode = '22023', message = 'begin_outreach: p_plaintiff_id is required';
    end if;
    if p_idempotency_key is null or pg_catalog.btrim(p_idempotency_key) = '' then
        raise exception using errcode = '22023', message = 'begin_outreach: p_idempotency_key is required';
    end if;
    if p_outreach_key is null or pg_catalog.btrim(p_outreach_key) = '' then
        raise exception using errcode = '22023', message = 'begin_outreach: p_outreach_key is required';
    end if;

    select p.* into v_plaintiff from public.plaintiffs as p where p.id = p_plaintiff_id for no key update;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('begin_outreach: plaintiff %s not found', p_plaintiff_id);
    end if;

    select pg_catalog.to_jsonb(a) into v_this
      from public.outreach_attempts as a
     where a.idempotency_key = p_idempotency_key;

    select pg_catalog.to_jsonb(a) into v_done
      from public.outreach_attempts as a
     where a.outreach_key = p_outreach_key
       and a.outcome in ('sent', 'unknown', 'task_created');

    return pg_catalog.jsonb_build_object(
        'plaintiff', pg_catalog.jsonb_build_object(
            'id', v_plaintiff.id,
            'name', v_plaintiff.name,
            'email', v_plaintiff.email,
            'phone', nullif(pg_catalog.btrim(v_plaintiff.phone), ''),
            'timezone', v_plaintiff.timezone,
            'status', v_plaintiff.status
        ),
        'this_attempt', v_this,
        'delivered', v_done
    );
end;
$$;

comment on function public.begin_outreach(uuid, text, text) is
    'Step 1 of an outreach job: lock the plaintiff (FOR NO KEY UPDATE) and return {"plaintiff": {id, name, '
    'email, phone, timezone, status}, "this_attempt": the attempt row of this idempotency key or null, '
    '"delivered": the attempt that already emailed (sent or unknown) or created a call task for this '
    'outreach_key or null}. Service role and fleet only; 22023 bad argument, P0002 unknown plaintiff.';

revoke execute on function public.begin_outreach(uuid, text, text) from public, anon, authenticated;
grant execute on function public.begin_outreach(uuid, text, text) to service_role, dragonfly_worker;

create function public.begin_outreach_email(
    p_idempotency_key text,
    p_outreach_key text,
    p_plaintiff_id uuid,
    p_email_to text,
    p_message_id text,
    p_actor text default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_status public.plaintiff_status;
    v_intent public.outreach_emails;
    v_done public.outreach_attempts;
begin
    if p_idempotency_key is null or pg_catalog.btrim(p_idempotency_key) = '' then
        raise exception using errcode = '22023', message = 'begin_outreach_email: p_idempotency_key is required';
    end if;
    if p_outreach_key is null or pg_catalog.btrim(p_outreach_key) = '' then
        raise exception using errcode = '22023', message = 'begin_outreach_email: p_outreach_key is required';
    end if;
    if p_email_to is null or pg_catalog.btrim(p_email_to) = '' then
        raise exception using errcode = '22023', message = 'begin_outreach_email: p_email_to is required';
    end if;
    if p_message_id is null or pg_catalog.btrim(p_message_id) = '' then
        raise exception using errcode = '22023', message = 'begin_outreach_email: p_message_id is required';
    end if;

    select p.status into v_status from public.plaintiffs as p where p.id = p_plaintiff_id for no key update;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('begin_outreach_email: plaintiff %s not found', p_plaintiff_id);
    end if;

    select e.* into v_intent from public.outreach_emails as e where e.idempotency_key = p_idempotency_key;
    if found then
        return pg_catalog.jsonb_build_object(
            'state', v_intent.state, 'email_to', v_intent.email_to, 'message_id', v_intent.message_id
        );
    end if;
    select e.* into v_intent from public.outreach_emails as e where e.outreach_key = p_outreach_key;
    if found then
        return pg_catalog.jsonb_build_object('state', 'other', 'idempotency_key', v_intent.idempotency_key);
    end if;
    select a.* into v_done
      from public.outreach_attempts as a
     where a.outreach_key = p_outreach_key
       and a.outcome in ('sent', 'unknown', 'task_created');
    if found then
        return pg_catalog.jsonb_build_object('state', 'other', 'idempotency_key', v_done.idempotency_key);
    end if;
    if v_status in ('do_not_call', 'bad_number') then
        return pg_catalog.jsonb_build_object('state', 'blocked', 'status', v_status);
    end if;

    insert into public.outreach_emails
        (idempotency_key, outreach_key, plaintiff_id, email_to, message_id, created_by)
    values (p_idempotency_key, p_outreach_key, p_plaintiff_id, p_email_to, p_message_id, p_actor);
    return pg_catalog.jsonb_build_object('state', 'new', 'message_id', p_message_id);
end;
$$;

comment on function public.begin_outreach_email(text, text, uuid, text, text, text) is
    'Before an outreach email is handed to SMTP, in its own committed transaction: under the plaintiff''s '
    'lock, record the intent (outreach_emails, state sending) and return {"state": "new"}; or return '
    'why not to send: {"state": "sending" | "sent", "email_to", "message_id"} (this job already has an '
    'intent: an earlier attempt may have sent it, or did), {"state": "other", "idempotency_key"} (another job of the outreach emails '
    'or reached the plaintiff), {"state": "blocked", "status"} (do_not_call / bad_number). Service role '
    'and fleet only; 22023 bad argument, P0002 unknown plaintiff.';

revoke execute on function public.begin_outreach_email(text, text, uuid, text, text, text)
    from public, anon, authenticated;
grant execute on function public.begin_outreach_email(text, text, uuid, text, text, text)
    to service_role, dragonfly_worker;

create function public.settle_outreach_email(p_idempotency_key text, p_sent boolean)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_found boolean;
begin
    if p_idempotency_key is null or p_sent is null then
        raise exception using
            errcode = '22023', message = 'settle_outreach_email: p_idempotency_key and p_sent are required';
    end if;
    if p_sent then
        update public.outreach_emails as e
           set state = 'sent', sent_at = pg_catalog.now()
         where e.idempotency_key = p_idempotency_key and e.state = 'sending';
    else
        delete from public.outreach_emails as e
         where e.idempotency_key = p_idempotency_key and e.state = 'sending';
    end if;
    v_found := found;
    return v_found;
end;
$$;

comment on function public.settle_outreach_email(text, boolean) is
    'After the SMTP send of an outreach email, in its own committed transaction: p_sent true marks the '
    'intent sent (the server accepted the message); false deletes it (the server refused the message or '
    'could not be reached: nothing went out, a retry may send). Only intents still sending are touched; '
    'returns whether one was. Service role and fleet only; 22023 bad argument.';

revoke execute on function public.settle_outreach_email(text, boolean) from public, anon, authenticated;
grant execute on function public.settle_outreach_email(text, boolean) to service_role, dragonfly_worker;

create or replace function public.record_outreach_attempt(
    p_idempotency_key text,
    p_outreach_key text,
    p_plaintiff_id uuid,
    p_outcome text,
    p_reason text default null,
    p_campaign text default null,
    p_channel text default null,
    p_detail text default null,
    p_email_to text default null,
    p_message_id text default null,
    p_task_due_at timestamptz default null,
    p_not_before timestamptz default null,
    p_next_idempotency_key text default null,
    p_actor text default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_status public.plaintiff_status;
    v_task_id uuid;
    v_attempt_id uuid;
    v_status_changed boolean := false;
    v_emailed boolean;
begin
    if p_outcome is null
       or p_outcome <> all (
           array['sent', 'unknown', 'task_created', 'suppressed', 'no_channel', 'deferred', 'duplicate']
       ) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'record_outreach_attempt: p_outcome must be one of sent, unknown, task_created, suppressed, '
                'no_channel, deferred, duplicate (got %s)',
                coalesce(pg_catalog.quote_literal(p_outcome), 'null')
            );
    end if;

    select p.status into v_status from public.plaintiffs as p where p.id = p_plaintiff_id for no key update;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('record_outreach_attempt: plaintiff %s not found', p_plaintiff_id);
    end if;
    -- An email of this job that left (or may have) while the plaintiff could be contacted
    -- is recorded as it happened, whatever the status became since.
    v_emailed := p_outcome in ('sent', 'unknown')
        and exists (select 1 from public.outreach_emails as e where e.idempotency_key = p_idempotency_key);
    if p_outcome in ('sent', 'unknown', 'task_created') and v_status in ('do_not_call', 'bad_number')
       and not v_emailed then
        -- The worker checks this first; the database refuses it regardless.
        raise exception using
            errcode = '42501',
            message = pg_catalog.format(
                'record_outreach_attempt: plaintiff %s is %s and must not be contacted', p_plaintiff_id, v_status
            );
    end if;

    if p_outcome = 'task_created' then
        insert into public.plaintiff_tasks (plaintiff_id, kind, status, due_at, metadata, created_by)
        values (
            p_plaintiff_id,
            'call',
            'open',
            coalesce(p_task_due_at, pg_catalog.now()),
            pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                'source', 'outreach',
                'outreach_key', p_outreach_key,
                'idempotency_key', p_idempotency_key,
                'reason', p_reason,
                'campaign', p_campaign
            )),
            p_actor
        )
        returning id into v_task_id;
    end if;

    insert into public.outreach_attempts (
        idempotency_key, outreach_key, plaintiff_id, reason, campaign, outcome, channel, detail,
        plaintiff_status, email_to, message_id, task_id, not_before, next_idempotency_key, created_by
    )
    values (
        p_idempotency_key, p_outreach_key, p_plaintiff_id, p_reason, p_campaign, p_outcome, p_channel,
        p_detail, v_status, p_email_to, p_message_id, v_task_id, p_not_before, p_next_idempotency_key,
        p_actor
    )
    returning id into v_attempt_id;

    if p_outcome = 'sent' and v_status = 'new' then
        update public.plaintiffs set status = 'contacted' where id = p_plaintiff_id;
        insert into public.plaintiff_status_history (plaintiff_id, previous_status, status, reason, changed_by)
        values (p_plaintiff_id, v_status, 'contacted', 'outreach email sent', p_actor);
        v_status_changed := true;
    end if;

    return pg_catalog.jsonb_build_object(
        'attempt_id', v_attempt_id,
        'task_id', v_task_id,
        'status_changed', v_status_changed
    );
end;
$$;

comment on function public.record_outreach_attempt(
    text, text, uuid, text, text, text, text, text, text, text, timestamptz, timestamptz, text, text
) is
    'Step 2 of an outreach job: insert its outreach_attempts row; for task_created also the call task '
    '(plaintiff_tasks, kind call, open, due at p_task_due_at); for the first email sent to a new '
    'plaintiff, move the status to contacted with a plaintiff_status_history row (not for unknown: '
    'nobody knows yet whether it arrived). Refuses (42501) to record a contact with a do_not_call or '
    'bad_number plaintiff, except the email of a job whose intent (outreach_emails) was committed '
    'while the plaintiff could be contacted. Returns {attempt_id, task_id, status_changed}. Service '
    'role and fleet only.';

revoke execute on function public.record_outreach_attempt(
    text, text, uuid, text, text, text, text, text, text, text, timestamptz, timestamptz, text, text
) from public, anon, authenticated;
grant execute on function public.record_outreach_attempt(
    text, text, uuid, text, text, text, text, text, text, text, timestamptz, timestamptz, text, text
) to service_role, dragonfly_worker;
