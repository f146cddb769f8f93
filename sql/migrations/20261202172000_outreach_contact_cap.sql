-- Outreach: a contact cap per plaintiff, and the campaign a job names checked by the worker.
--
-- Why: twenty outreach jobs with twenty idempotency keys for one plaintiff sent twenty emails.
-- Deduplication is per job and per outreach key; nothing bounded how often one person is
-- contacted. Now at most N emails and M call tasks reach one plaintiff in any 7 days (rolling),
-- whoever enqueued the jobs and whatever their keys (DRAGONFLY_OUTREACH_MAX_EMAILS_PER_WEEK,
-- DRAGONFLY_OUTREACH_MAX_CALLS_PER_WEEK; docs/outreach.md, "Contact cap"). A job over the cap
-- completes with the new outcome `capped`: no email, no call task.
--
-- What counts is what reached the plaintiff, from the tables the worker writes: emails are the
-- intents of outreach_emails (sending or sent: once committed, the message may be out) and the
-- sent / unknown attempts, one per job; calls are the task_created attempts (each opened a task
-- in plaintiff_tasks). A job's own rows never count against it (a retry of a job that emailed
-- is recorded as what it did, never capped).
--
-- Where the check is atomic with the contact:
--   * an email: begin_outreach_email() counts under the plaintiff's lock (FOR NO KEY UPDATE)
--     and commits the intent in the same statement's transaction, so of two workers on one
--     plaintiff the second waits for the lock, then counts the first one's intent. It now takes
--     the cap (p_max_emails, required: a caller cannot leave it out and send uncapped);
--   * a call: begin_outreach() counts under the same lock, which the job's transaction holds
--     until it commits the task (record_outreach_attempt() in that transaction): a second job
--     for the plaintiff waits, then counts the first one's task.
--
-- begin_outreach() also takes the job's campaign and says whether it is an active row of
-- public.outreach_campaigns: the worker dead-letters as forbidden a job that did not come from
-- the fleet or an operator and names anything else (queue_job() refuses those at the door; the
-- worker checks again what it acts on). The old signatures are dropped so that no caller keeps
-- an uncapped path.

-- `capped`: the job decided on a channel whose cap the plaintiff reached. It names the channel
-- (like the contacts) and reaches nobody.
alter table public.outreach_attempts drop constraint outreach_attempts_outcome_check;
alter table public.outreach_attempts add constraint outreach_attempts_outcome_check check (
    outcome in ('sent', 'unknown', 'task_created', 'capped', 'suppressed', 'no_channel', 'deferred', 'duplicate')
);
alter table public.outreach_attempts drop constraint outreach_attempts_channel_iff_contact;
alter table public.outreach_attempts add constraint outreach_attempts_channel_named check (
    (channel is not null) = (outcome in ('sent', 'unknown', 'task_created', 'capped'))
);

comment on column public.outreach_attempts.outcome is
    'sent, unknown (an email that may have gone out: its job died between the SMTP send and the record; '
    'see public.outreach_emails and docs/runbooks/outreach-unknown.md), task_created, capped (the '
    'plaintiff reached the weekly cap of the chosen channel: nobody was contacted), suppressed, '
    'no_channel, deferred or duplicate.';

create index outreach_emails_plaintiff_created_idx on public.outreach_emails (plaintiff_id, created_at);
drop index public.outreach_emails_plaintiff_id_idx;

create function dragonfly.outreach_recent_contacts(p_plaintiff_id uuid, p_except_key text)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select pg_catalog.jsonb_build_object(
        'emails', (
            select pg_catalog.count(*)::integer
              from (
                  select e.idempotency_key
                    from public.outreach_emails as e
                   where e.plaintiff_id = p_plaintiff_id
                     and e.created_at > pg_catalog.now() - interval '7 days'
                     and e.idempotency_key is distinct from p_except_key
                  union
                  select a.idempotency_key
                    from public.outreach_attempts as a
                   where a.plaintiff_id = p_plaintiff_id
                     and a.outcome in ('sent', 'unknown')
                     and a.attempted_at > pg_catalog.now() - interval '7 days'
                     and a.idempotency_key is distinct from p_except_key
              ) as s
        ),
        'calls', (
            select pg_catalog.count(*)::integer
              from public.outreach_attempts as a
             where a.plaintiff_id = p_plaintiff_id
               and a.outcome = 'task_created'
               and a.attempted_at > pg_catalog.now() - interval '7 days'
               and a.idempotency_key is distinct from p_except_key
        ),
        'window_days', 7
    )
$$;

comment on function dragonfly.outreach_recent_contacts(uuid, text) is
    'The outreach contacts of a plaintiff in the last 7 days, except those of the job p_except_key: '
    '{"emails": intents (sending or sent) and sent / unknown attempts, one per job, "calls": '
    'task_created attempts, "window_days": 7}. Call it under the plaintiff''s lock. Internal to the '
    'outreach functions.';

revoke execute on function dragonfly.outreach_recent_contacts(uuid, text) from public;

drop function public.begin_outreach(uuid, text, text);

create function public.begin_outreach(
    p_plaintiff_id uuid,
    p_idempotency_key text,
    p_outreach_key text,
    p_campaign text default null
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
    v_this_email text;
    v_campaign_active boolean;
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

    select e.state into v_this_email from public.outreach_emails as e where e.idempotency_key = p_idempotency_key;

    if p_campaign is not null then
        v_campaign_active := exists (
            select 1 from public.outreach_campaigns as c where c.name = p_campaign and c.active
        );
    end if;

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
        'delivered', v_done,
        'this_email', v_this_email,
        'contacts', dragonfly.outreach_recent_contacts(p_plaintiff_id, p_idempotency_key),
        'campaign_active', v_campaign_active
    );
end;
$$;

comment on function public.begin_outreach(uuid, text, text, text) is
    'Step 1 of an outreach job: lock the plaintiff (FOR NO KEY UPDATE) and return {"plaintiff": {id, name, '
    'email, phone, timezone, status}, "this_attempt": the attempt row of this idempotency key or null, '
    '"delivered": the attempt that already emailed (sent or unknown) or created a call task for this '
    'outreach_key or null, "this_email": the state of this job''s email intent (sending, sent) or null, '
    '"contacts": {emails, calls, window_days} the plaintiff got from other jobs '
    'in the last 7 days, "campaign_active": whether p_campaign is an active outreach_campaigns row '
    '(null without one)}. Service role and fleet only; 22023 bad argument, P0002 unknown plaintiff.';

revoke execute on function public.begin_outreach(uuid, text, text, text) from public, anon, authenticated;
grant execute on function public.begin_outreach(uuid, text, text, text) to service_role, dragonfly_worker;

drop function public.begin_outreach_email(text, text, uuid, text, text, text);

create function public.begin_outreach_email(
    p_idempotency_key text,
    p_outreach_key text,
    p_plaintiff_id uuid,
    p_email_to text,
    p_message_id text,
    p_max_emails integer,
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
    v_emails integer;
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
    if p_max_emails is null or p_max_emails < 0 then
        raise exception using
            errcode = '22023',
            message = 'begin_outreach_email: p_max_emails must be an integer of at least 0';
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

    -- Under the lock taken above, in the transaction that inserts the intent: a concurrent
    -- job for this plaintiff counts this intent once it may go on.
    v_emails := (dragonfly.outreach_recent_contacts(p_plaintiff_id, p_idempotency_key) ->> 'emails')::integer;
    if v_emails >= p_max_emails then
        return pg_catalog.jsonb_build_object('state', 'capped', 'emails', v_emails, 'max_emails', p_max_emails);
    end if;

    insert into public.outreach_emails
        (idempotency_key, outreach_key, plaintiff_id, email_to, message_id, created_by)
    values (p_idempotency_key, p_outreach_key, p_plaintiff_id, p_email_to, p_message_id, p_actor);
    return pg_catalog.jsonb_build_object('state', 'new', 'message_id', p_message_id);
end;
$$;

comment on function public.begin_outreach_email(text, text, uuid, text, text, integer, text) is
    'Before an outreach email is handed to SMTP, in its own committed transaction: under the plaintiff''s '
    'lock, record the intent (outreach_emails, state sending) and return {"state": "new"}; or return '
    'why not to send: {"state": "sending" | "sent", "email_to", "message_id"} (this job already has an '
    'intent: an earlier attempt may have sent it, or did), {"state": "other", "idempotency_key"} (another '
    'job of the outreach emails or reached the plaintiff), {"state": "blocked", "status"} (do_not_call / '
    'bad_number), {"state": "capped", "emails", "max_emails"} (other jobs emailed the plaintiff '
    'p_max_emails times in the last 7 days). Service role and fleet only; 22023 bad argument, P0002 '
    'unknown plaintiff.';

revoke execute on function public.begin_outreach_email(text, text, uuid, text, text, integer, text)
    from public, anon, authenticated;
grant execute on function public.begin_outreach_email(text, text, uuid, text, text, integer, text)
    to service_role, dragonfly_worker;

-- As in 20261202105100, with `capped` among the outcomes.
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
           array['sent', 'unknown', 'task_created', 'capped', 'suppressed', 'no_channel', 'deferred', 'duplicate']
       ) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'record_outreach_attempt: p_outcome must be one of sent, unknown, task_created, capped, '
                'suppressed, no_channel, deferred, duplicate (got %s)',
                coalesce(pg_catalog.quote_literal(pg_catalog.left(p_outcome, 40)), 'null')
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
    'nobody knows yet whether it arrived). capped records a job over the weekly contact cap (no '
    'task). Refuses (42501) to record a contact with a do_not_call or bad_number plaintiff, except '
    'the email of a job whose intent (outreach_emails) was committed while the plaintiff could be '
    'contacted. Returns {attempt_id, task_id, status_changed}. Service role and fleet only.';
