-- log_call_outcome(): the one RPC of the call-task flow (it replaces the retired
-- complete_plaintiff_call_task).
--
-- Why one function: a call's effects belong together — the attempt, the closed task, the
-- plaintiff's new status with its history row, and the follow-up task. Written in one
-- function they commit together or not at all, and the task row is locked first, so two
-- agents logging the same task concurrently cannot both close it.
--
-- Outcome buckets (docs/rpc.md has the full synonym table). The caller's outcome text is
-- lower-cased, every run of non-alphanumerics becomes '_', and the result is mapped:
--   do_not_call        do_not_call, dnc, do_not_contact, stop_calling, remove_from_list
--   bad_number         bad_number, wrong_number, disconnected, invalid_number, not_in_service,
--                      number_not_in_service, fax
--   reached_hot        reached_hot, hot, interested, very_interested
--   reached_warm       reached_warm, warm, somewhat_interested
--   (by interest)      reached, connected, answered, spoke, talked, contacted:
--                      interest hot -> reached_hot, warm -> reached_warm, cold/none ->
--                      not_interested, no interest -> contacted
--   no_answer          no_answer, busy, rang_out, no_response
--   left_voicemail     left_voicemail, voicemail, vm, left_message
--   callback_scheduled callback_scheduled, callback, call_back, call_back_later, callback_requested
--   not_interested     not_interested, declined, refused, cold
--   signed             signed, agreement_signed, retained
-- Terminal buckets (no follow-up task is created): do_not_call, bad_number, not_interested,
-- signed.
--
-- Errors: 22023 invalid argument (unknown outcome or interest, follow-up not in the future,
-- task of another plaintiff, task that is not a call); P0002 unknown plaintiff or task;
-- 55000 task already closed.

create or replace function public.log_call_outcome(
    plaintiff_id uuid,
    task_id uuid,
    outcome text,
    interest text default null,
    notes text default null,
    follow_up_at timestamptz default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    v_plaintiff_id uuid := log_call_outcome.plaintiff_id;
    v_task_id uuid := log_call_outcome.task_id;
    v_outcome text := nullif(pg_catalog.btrim(log_call_outcome.outcome), '');
    v_interest text := pg_catalog.lower(nullif(pg_catalog.btrim(log_call_outcome.interest), ''));
    v_notes text := nullif(pg_catalog.btrim(log_call_outcome.notes), '');
    v_follow_up_at timestamptz := log_call_outcome.follow_up_at;
    v_key text;
    v_bucket text;
    v_terminal boolean;
    v_task record;
    v_previous_status text;
    v_actor text;
    v_attempt_id uuid;
    v_history_id uuid;
    v_follow_up_id uuid;
    v_claims jsonb;
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
                pg_catalog.quote_literal(log_call_outcome.interest)
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

    v_key := pg_catalog.btrim(
        pg_catalog.regexp_replace(pg_catalog.lower(v_outcome), '[^a-z0-9]+', '_', 'g'), '_'
    );
    v_bucket := case
        when v_key = any (array['do_not_call', 'dnc', 'do_not_contact', 'stop_calling', 'remove_from_list'])
            then 'do_not_call'
        when v_key = any (array['bad_number', 'wrong_number', 'disconnected', 'invalid_number',
                                'not_in_service', 'number_not_in_service', 'fax'])
            then 'bad_number'
        when v_key = any (array['reached_hot', 'hot', 'interested', 'very_interested'])
            then 'reached_hot'
        when v_key = any (array['reached_warm', 'warm', 'somewhat_interested'])
            then 'reached_warm'
        when v_key = any (array['reached', 'connected', 'answered', 'spoke', 'talked', 'contacted'])
            then case v_interest
                when 'hot' then 'reached_hot'
                when 'warm' then 'reached_warm'
                when 'cold' then 'not_interested'
                when 'none' then 'not_interested'
                else 'contacted'
            end
        when v_key = any (array['no_answer', 'busy', 'rang_out', 'no_response'])
            then 'no_answer'
        when v_key = any (array['left_voicemail', 'voicemail', 'vm', 'left_message'])
            then 'left_voicemail'
        when v_key = any (array['callback_scheduled', 'callback', 'call_back', 'call_back_later',
                                'callback_requested'])
            then 'callback_scheduled'
        when v_key = any (array['not_interested', 'declined', 'refused', 'cold'])
            then 'not_interested'
        when v_key = any (array['signed', 'agreement_signed', 'retained'])
            then 'signed'
    end;
    if v_bucket is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'log_call_outcome: unknown outcome %s', pg_catalog.quote_literal(v_outcome)
            ),
            hint = 'Use a bucket (do_not_call, bad_number, reached_hot, reached_warm, no_answer, '
                   'left_voicemail, callback_scheduled, not_interested, signed) or a documented synonym.';
    end if;
    v_terminal := v_bucket = any (array['do_not_call', 'bad_number', 'not_interested', 'signed']);

    -- Lock the task, then the plaintiff: concurrent calls on one task serialize here.
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

    v_claims := auth.jwt();
    v_actor := coalesce(
        nullif(v_claims ->> 'email', ''),
        nullif(v_claims ->> 'sub', ''),
        nullif(v_claims ->> 'role', ''),
        session_user::text
    );

    insert into public.plaintiff_call_attempts
        (plaintiff_id, task_id, outcome, outcome_bucket, interest, notes, follow_up_at, created_by)
    values
        (v_plaintiff_id, v_task_id, v_outcome, v_bucket, v_interest, v_notes, v_follow_up_at, v_actor)
    returning id into v_attempt_id;

    if v_previous_status is distinct from v_bucket then
        update public.plaintiffs as p set status = v_bucket where p.id = v_plaintiff_id;
        insert into public.plaintiff_status_history (plaintiff_id, previous_status, status, reason, changed_by)
        values (v_plaintiff_id, v_previous_status, v_bucket,
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
        'status', v_bucket,
        'status_changed', v_history_id is not null,
        'status_history_id', v_history_id,
        'follow_up_task_id', v_follow_up_id,
        'follow_up_at', case when v_follow_up_id is not null then v_follow_up_at end
    );
end;
$$;

comment on function public.log_call_outcome(uuid, uuid, text, text, text, timestamptz) is
    'Record a call on a plaintiff''s open call/follow_up task: normalizes outcome into a status bucket, '
    'writes plaintiff_call_attempts, closes the task (result + metadata), moves plaintiffs.status with a '
    'plaintiff_status_history row when it changes, and opens a follow_up task when the bucket is not '
    'terminal and follow_up_at is given. Returns what it did as JSON. 22023 bad input, P0002 unknown '
    'plaintiff or task, 55000 task already closed.';

revoke execute on function public.log_call_outcome(uuid, uuid, text, text, text, timestamptz)
    from public, anon, authenticated, service_role;
grant execute on function public.log_call_outcome(uuid, uuid, text, text, text, timestamptz)
    to anon, authenticated, service_role, enforcement_operator, dragonfly_worker;
