-- log_call_outcome() as a trust boundary.
--
-- Why: the spec grants it to anon, so anyone with the public key could, given one
-- (plaintiff, task) pair, close a task that is not a call, move a plaintiff out of
-- do_not_call (which lifts outreach suppression), chain calls through the follow-up task id
-- each call returns, schedule a follow-up in year 99999, and learn from the error text
-- whether a task exists. Now, by trust level (dragonfly.caller_trust_level()):
--   * public callers (anon, authenticated) may log only an open call task of that plaintiff,
--     or a follow-up call this RPC opened once it is due; everything else is one answer,
--     P0002 "no open call task <task> for plaintiff <plaintiff>", whatever the reason;
--   * do_not_call is sticky for them: the call is recorded and the task closed, but the
--     status stays do_not_call and no follow-up is opened; only an operator or internal
--     caller lifts it;
--   * their follow-up is at least 15 minutes ahead, so a chain of follow-ups runs at the
--     speed of the clock, not of the network;
--   * operators and the fleet keep the detailed errors (they see the tasks anyway).
-- For everyone: follow_up_at is an ISO 8601 timestamp within a year; the arguments are text
-- parsed here, so a bad one is 22023 naming it; no message quotes more than 100 characters
-- of input; the actor is the session's (dragonfly.caller_actor()).
--
-- The outcome buckets move into intake.call_outcome_bucket() (the table is in docs/rpc.md).

create or replace function intake.call_outcome_bucket(p_key text, p_interest text)
returns text
language sql
immutable
set search_path = ''
as $$
    select case
        when p_key = any (array['do_not_call', 'dnc', 'do_not_contact', 'stop_calling', 'remove_from_list'])
            then 'do_not_call'
        when p_key = any (array['bad_number', 'wrong_number', 'disconnected', 'invalid_number',
                                'not_in_service', 'number_not_in_service', 'fax'])
            then 'bad_number'
        when p_key = any (array['reached_hot', 'hot', 'interested', 'very_interested'])
            then 'reached_hot'
        when p_key = any (array['reached_warm', 'warm', 'somewhat_interested'])
            then 'reached_warm'
        when p_key = any (array['reached', 'connected', 'answered', 'spoke', 'talked', 'contacted'])
            then case p_interest
                when 'hot' then 'reached_hot'
                when 'warm' then 'reached_warm'
                when 'cold' then 'not_interested'
                when 'none' then 'not_interested'
                else 'contacted'
            end
        when p_key = any (array['no_answer', 'busy', 'rang_out', 'no_response'])
            then 'no_answer'
        when p_key = any (array['left_voicemail', 'voicemail', 'vm', 'left_message'])
            then 'left_voicemail'
        when p_key = any (array['callback_scheduled', 'callback', 'call_back', 'call_back_later',
                                'callback_requested'])
            then 'callback_scheduled'
        when p_key = any (array['not_interested', 'declined', 'refused', 'cold'])
            then 'not_interested'
        when p_key = any (array['signed', 'agreement_signed', 'retained'])
            then 'signed'
    end
$$;

comment on function intake.call_outcome_bucket(text, text) is
    'The status bucket of a normalized call outcome (lower-case, non-alphanumerics as _) and interest; '
    'null when unknown. The synonym table is in docs/rpc.md.';

revoke execute on function intake.call_outcome_bucket(text, text) from public;

drop function public.log_call_outcome(uuid, uuid, text, text, text, timestamptz);

create function public.log_call_outcome(
    plaintiff_id text,
    task_id text,
    outcome text,
    interest text default null,
    notes text default null,
    follow_up_at text default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    c_rpc constant text := 'log_call_outcome';
    v_plaintiff_id uuid := enforcement_private.arg_uuid(c_rpc, 'plaintiff_id', log_call_outcome.plaintiff_id);
    v_task_id uuid := enforcement_private.arg_uuid(c_rpc, 'task_id', log_call_outcome.task_id);
    v_outcome text := nullif(pg_catalog.btrim(log_call_outcome.outcome), '');
    v_interest text := pg_catalog.lower(nullif(pg_catalog.btrim(log_call_outcome.interest), ''));
    v_notes text := nullif(pg_catalog.btrim(log_call_outcome.notes), '');
    v_follow_up_at timestamptz :=
        enforcement_private.arg_timestamptz(c_rpc, 'follow_up_at', log_call_outcome.follow_up_at);
    v_public boolean := dragonfly.caller_trust_level() = 'public';
    v_bucket text;
    v_terminal boolean;
    v_task record;
    v_previous_status text;
    v_status text;
    v_actor text := dragonfly.caller_actor();
    v_attempt_id uuid;
    v_history_id uuid;
    v_follow_up_id uuid;
begin
    if v_plaintiff_id is null then
        raise exception using errcode = '22023', message = 'log_call_outcome: plaintiff_id is required';
    end if;
    if v_task_id is null then
        raise exception using errcode = '22023', message = 'log_call_outcome: task_id is required';
    end if;
    if v_outcome is null then
        raise exception using errcode = '22023', message = 'log_call_outcome: outcome is required';
    end if;
    if pg_catalog.length(v_outcome) > 100 then
        raise exception using
            errcode = '22023', message = 'log_call_outcome: outcome must be at most 100 characters';
    end if;
    if v_interest is not null and v_interest <> all (array['hot', 'warm', 'cold', 'none']) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'log_call_outcome: interest must be hot, warm, cold or none (got %s)',
                enforcement_private.quoted_input(log_call_outcome.interest)
            );
    end if;
    if pg_catalog.length(v_notes) > 10000 then
        raise exception using
            errcode = '22023', message = 'log_call_outcome: notes must be at most 10000 characters';
    end if;
    if v_follow_up_at is not null and v_follow_up_at <= pg_catalog.now() then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'log_call_outcome: follow_up_at must be in the future (got %s)', v_follow_up_at
            );
    end if;
    if v_follow_up_at > pg_catalog.now() + interval '1 year' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'log_call_outcome: follow_up_at must be at most one year ahead (got %s)', v_follow_up_at
            );
    end if;
    if v_public and v_follow_up_at < pg_catalog.now() + interval '15 minutes' then
        raise exception using
            errcode = '22023',
            message = 'log_call_outcome: follow_up_at must be at least 15 minutes ahead';
    end if;

    v_bucket := intake.call_outcome_bucket(
        pg_catalog.btrim(pg_catalog.regexp_replace(pg_catalog.lower(v_outcome), '[^a-z0-9]+', '_', 'g'), '_'),
        v_interest
    );
    if v_bucket is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'log_call_outcome: unknown outcome %s', enforcement_private.quoted_input(v_outcome)
            ),
            hint = 'Use a bucket (do_not_call, bad_number, reached_hot, reached_warm, no_answer, '
                   'left_voicemail, callback_scheduled, not_interested, signed) or a documented synonym.';
    end if;
    v_terminal := v_bucket = any (array['do_not_call', 'bad_number', 'not_interested', 'signed']);

    -- Lock the task, then the plaintiff: concurrent calls on one task serialize here.
    if v_public then
        -- One question, one answer: whatever is wrong (no such task, another plaintiff's, closed,
        -- not a call, a follow-up not yet due, no such plaintiff), the caller learns only that
        -- this plaintiff has no such open call task.
        select t.id, t.plaintiff_id, t.enforcement_case_id, t.kind, t.status, t.closed_at,
               t.assigned_to, t.metadata
          into v_task
          from public.plaintiff_tasks as t
         where t.id = v_task_id
           and t.plaintiff_id = v_plaintiff_id
           and t.status in ('open', 'in_progress')
           and (t.kind = 'call'
                or (t.kind = 'follow_up'
                    and t.metadata ->> 'created_by_rpc' = 'log_call_outcome'
                    and t.due_at <= pg_catalog.now()))
           for update;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format(
                    'log_call_outcome: no open call task %s for plaintiff %s', v_task_id, v_plaintiff_id
                );
        end if;
        select p.status into v_previous_status from public.plaintiffs as p where p.id = v_plaintiff_id for update;
    else
        select t.id, t.plaintiff_id, t.enforcement_case_id, t.kind, t.status, t.closed_at,
               t.assigned_to, t.metadata
          into v_task
          from public.plaintiff_tasks as t
         where t.id = v_task_id
           for update;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('log_call_outcome: task %s does not exist', v_task_id);
        end if;

        select p.status
          into v_previous_status
          from public.plaintiffs as p
         where p.id = v_plaintiff_id
           for update;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('log_call_outcome: plaintiff %s does not exist', v_plaintiff_id);
        end if;

        if v_task.plaintiff_id <> v_plaintiff_id then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'log_call_outcome: task %s belongs to another plaintiff, not %s', v_task_id, v_plaintiff_id
                );
        end if;
        if v_task.status not in ('open', 'in_progress') then
            raise exception using
                errcode = '55000',
                message = pg_catalog.format(
                    'log_call_outcome: task %s is already closed (%s at %s)',
                    v_task_id, v_task.status, v_task.closed_at
                );
        end if;
        if v_task.kind not in ('call', 'follow_up') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'log_call_outcome: task %s is a %s task, not a call or follow_up task', v_task_id, v_task.kind
                );
        end if;
    end if;

    -- do_not_call is sticky for public callers: the call is on record, the status stays, and
    -- a plaintiff who asked not to be called gets no follow-up call.
    v_status := v_bucket;
    if v_public and v_previous_status = 'do_not_call' then
        v_status := 'do_not_call';
        v_terminal := true;
    end if;

    insert into public.plaintiff_call_attempts
        (plaintiff_id, task_id, outcome, outcome_bucket, interest, notes, follow_up_at, created_by)
    values
        (v_plaintiff_id, v_task_id, v_outcome, v_bucket, v_interest, v_notes, v_follow_up_at, v_actor)
    returning id into v_attempt_id;

    if v_previous_status is distinct from v_status then
        update public.plaintiffs as p set status = v_status where p.id = v_plaintiff_id;
        insert into public.plaintiff_status_history (plaintiff_id, previous_status, status, reason, changed_by)
        values (v_plaintiff_id, v_previous_status, v_status,
                pg_catalog.format('call outcome %s', pg_catalog.quote_literal(v_outcome)), v_actor)
        returning id into v_history_id;
    end if;

    if not v_terminal and v_follow_up_at is not null then
        insert into public.plaintiff_tasks
            (plaintiff_id, enforcement_case_id, kind, status, due_at, assigned_to, metadata, created_by)
        values (
            v_plaintiff_id, v_task.enforcement_case_id, 'follow_up', 'open', v_follow_up_at,
            v_task.assigned_to,
            pg_catalog.jsonb_build_object(
                'created_by_rpc', 'log_call_outcome',
                'previous_task_id', v_task_id,
                'call_attempt_id', v_attempt_id
            ),
            v_actor
        )
        returning id into v_follow_up_id;
    end if;

    update public.plaintiff_tasks as t
       set status = 'done',
           closed_at = pg_catalog.now(),
           closed_by = v_actor,
           result = pg_catalog.jsonb_build_object(
               'call_attempt_id', v_attempt_id,
               'outcome', v_outcome,
               'outcome_bucket', v_bucket,
               'interest', v_interest,
               'terminal', v_terminal,
               'follow_up_at', v_follow_up_at,
               'follow_up_task_id', v_follow_up_id
           ),
           metadata = t.metadata || pg_catalog.jsonb_build_object(
               'closed_by_rpc', 'log_call_outcome', 'call_attempt_id', v_attempt_id
           )
     where t.id = v_task_id;

    return pg_catalog.jsonb_build_object(
        'call_attempt_id', v_attempt_id,
        'plaintiff_id', v_plaintiff_id,
        'task_id', v_task_id,
        'task_status', 'done',
        'outcome', v_outcome,
        'outcome_bucket', v_bucket,
        'terminal', v_terminal,
        'previous_status', v_previous_status,
        'status', v_status,
        'status_changed', v_history_id is not null,
        'status_kept', v_status <> v_bucket,
        'status_history_id', v_history_id,
        'follow_up_task_id', v_follow_up_id,
        'follow_up_at', case when v_follow_up_id is not null then v_follow_up_at end
    );
end;
$$;

comment on function public.log_call_outcome(text, text, text, text, text, text) is
    'Record a call on a plaintiff''s open call/follow_up task: normalizes outcome into a status bucket, '
    'writes plaintiff_call_attempts, closes the task (result + metadata), moves plaintiffs.status with a '
    'plaintiff_status_history row when it changes, and opens a follow_up task (ISO 8601 follow_up_at, '
    'within a year) when the bucket is not terminal. Public callers (anon, authenticated): open call tasks '
    'of that plaintiff only (one P0002 answer otherwise), do_not_call is sticky, follow-ups due before they '
    'are logged. Arguments are text (22023 naming a bad one); 22023 bad input, P0002 unknown plaintiff or '
    'task, 55000 task already closed.';

revoke execute on function public.log_call_outcome(text, text, text, text, text, text)
    from public, anon, authenticated, service_role;
grant execute on function public.log_call_outcome(text, text, text, text, text, text)
    to anon, authenticated, service_role, enforcement_operator, dragonfly_worker;
