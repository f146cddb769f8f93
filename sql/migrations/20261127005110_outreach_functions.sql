-- The two database calls of an outreach job (workers/outreach/handler.py, docs/outreach.md).
--
--   begin_outreach(plaintiff, idempotency_key, outreach_key)  locks the plaintiff row and
--       returns the plaintiff's status and contact data, this job's attempt if it already
--       exists, and the attempt that already reached the plaintiff for this outreach, if any;
--   record_outreach_attempt(...)  writes the attempt row and its side effects: the call task
--       in plaintiff_tasks, and for a first email the status move new -> contacted with its
--       plaintiff_status_history row.
--
-- Why lock the plaintiff: two deliveries of one job (or two jobs of one outreach) queue up
-- on the row, and the second finds the first's committed attempt; a concurrent
-- log_call_outcome() that marks the plaintiff do_not_call is either seen or waits for
-- the outreach to finish, never interleaved. SECURITY DEFINER with an empty search_path:
-- the fleet needs EXECUTE only. Errors: 22023 invalid argument, P0002 unknown plaintiff;
-- constraint violations of outreach_attempts pass through (23505, 23514).

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
       and a.outcome in ('sent', 'task_created');

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
    '"delivered": the attempt that already emailed or created a call task for this outreach_key or null}. '
    'Service role and fleet only; 22023 bad argument, P0002 unknown plaintiff.';

revoke execute on function public.begin_outreach(uuid, text, text) from public, anon, authenticated;
grant execute on function public.begin_outreach(uuid, text, text) to service_role, dragonfly_worker;

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
begin
    if p_outcome is null
       or p_outcome <> all (array['sent', 'task_created', 'suppressed', 'no_channel', 'deferred', 'duplicate']) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'record_outreach_attempt: p_outcome must be one of sent, task_created, suppressed, '
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
    if p_outcome in ('sent', 'task_created') and v_status in ('do_not_call', 'bad_number') then
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
    'plaintiff, move the status to contacted with a plaintiff_status_history row. Refuses (42501) to '
    'record a contact with a do_not_call or bad_number plaintiff. Returns {attempt_id, task_id, '
    'status_changed}. Service role and fleet only.';

revoke execute on function public.record_outreach_attempt(
    text, text, uuid, text, text, text, text, text, text, text, timestamptz, timestamptz, text, text
) from public, anon, authenticated;
grant execute on function public.record_outreach_attempt(
    text, text, uuid, text, text, text, text, text, text, text, timestamptz, timestamptz, text, text
) to service_role, dragonfly_worker;
