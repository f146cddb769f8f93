-- issue_subpoena() and record_subpoena_response(): the information-subpoena workflow as two
-- dedicated RPCs over the generic action machinery.
--
-- Why dedicated RPCs: issuing a subpoena touches four tables (the subpoena action, the
-- subpoena_issued event, the document row, a follow-up task for the answer) and answering
-- it touches five (action closed, response event, linked tasks closed, review task, the
-- case's next_action_at). One call each keeps the Ops Console and the enforce worker from
-- reassembling that sequence, and makes it atomic.
--
-- One active subpoena action per case (the action upsert key): issuing a second while one
-- is awaiting its answer is refused with 23505; record the response (or cancel the action
-- with queue_enforcement_action) first.

create or replace function public.issue_subpoena(payload jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'issue_subpoena';
    v_case_id uuid;
    v_recipient text;
    v_recipient_type text;
    v_document_path text;
    v_due_at timestamptz;
    v_metadata jsonb;
    v_note text;
    v_actor text;
    v_case public.enforcement_cases;
    v_existing uuid;
    v_action_id uuid;
    v_event_id uuid;
    v_task_id uuid;
    v_document_id uuid;
    v_now timestamptz := pg_catalog.now();
begin
    perform enforcement_private.require_payload(
        c_rpc, payload,
        array['case_id', 'recipient', 'recipient_type', 'document_path', 'due_at', 'metadata', 'note', 'actor']
    );
    v_case_id := enforcement_private.field_uuid(c_rpc, payload, 'case_id', true);
    v_recipient := enforcement_private.field_text(c_rpc, payload, 'recipient', true);
    v_recipient_type := coalesce(
        enforcement_private.field_choice(
            c_rpc, payload, 'recipient_type', false, array['bank', 'employer', 'debtor', 'other']
        ),
        'other'
    );
    v_document_path := enforcement_private.field_storage_path(c_rpc, payload, 'document_path', true);
    v_due_at := enforcement_private.field_timestamptz(c_rpc, payload, 'due_at', false);
    if v_due_at is not null and v_due_at <= v_now then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: due_at must be in the future', c_rpc);
    end if;
    v_metadata := enforcement_private.field_object(c_rpc, payload, 'metadata');
    v_note := enforcement_private.field_text(c_rpc, payload, 'note', false, 4000);
    v_actor := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'actor', false),
        enforcement_private.request_actor()
    );

    v_case := enforcement_private.lock_case(c_rpc, v_case_id);
    v_due_at := coalesce(v_due_at, enforcement_private.stage_due_at('information_subpoena', v_now));

    select a.id into v_existing
      from public.enforcement_actions as a
     where a.enforcement_case_id = v_case_id
       and a.action_type = 'subpoena'
       and a.status in ('queued', 'in_progress', 'awaiting_response');
    if found then
        raise exception using
            errcode = '23505',
            message = pg_catalog.format(
                '%s: case %s already has an active subpoena action (%s)', c_rpc, v_case_id, v_existing
            ),
            hint = 'Record its response with record_subpoena_response() or cancel it first.';
    end if;

    v_action_id := enforcement_private.upsert_action(
        c_rpc, v_case_id, 'subpoena', 'awaiting_response',
        v_metadata || pg_catalog.jsonb_build_object(
            'recipient', v_recipient,
            'recipient_type', v_recipient_type,
            'due_at', v_due_at,
            'document_path', v_document_path
        ),
        null, v_actor
    );

    insert into public.plaintiff_tasks (
        plaintiff_id, enforcement_case_id, kind, status, due_at, metadata, created_by
    )
    values (
        v_case.plaintiff_id, v_case_id, 'follow_up', 'open', v_due_at,
        pg_catalog.jsonb_build_object(
            'action_id', v_action_id, 'purpose', 'subpoena_response', 'recipient', v_recipient
        ),
        v_actor
    )
    returning id into v_task_id;

    v_event_id := enforcement_private.append_event(
        c_rpc, v_case_id, 'subpoena_issued',
        pg_catalog.jsonb_build_object(
            'action_id', v_action_id,
            'recipient', v_recipient,
            'recipient_type', v_recipient_type,
            'due_at', v_due_at,
            'note', v_note
        ),
        v_document_path, v_task_id, v_actor
    );

    select d.id into v_document_id from public.enforcement_documents as d where d.event_id = v_event_id;

    update public.enforcement_cases as c
       set next_action_at = least(coalesce(c.next_action_at, v_due_at), v_due_at)
     where c.id = v_case_id;

    return pg_catalog.jsonb_build_object(
        'action_id', v_action_id,
        'event_id', v_event_id,
        'document_id', v_document_id,
        'task_id', v_task_id,
        'due_at', v_due_at
    );
end;
$$;

comment on function public.issue_subpoena(jsonb) is
    'Issues an information subpoena on an open case. Payload: case_id (uuid), recipient (text), '
    'recipient_type (bank | employer | debtor | other), document_path (storage key of the subpoena, '
    'required), due_at (future; default now + the information_subpoena SLA), metadata (object), note, actor. '
    'Creates the subpoena action (awaiting_response), a subpoena_issued event, its enforcement_documents row '
    'and a follow-up task due at due_at; next_action_at becomes at most due_at. Returns {action_id, event_id, '
    'document_id, task_id, due_at}. Errors: 22023, P0002, 23505 (an active subpoena exists), DF001 (case '
    'closed). Callable by enforcement_operator, dragonfly_worker and service_role.';

revoke execute on function public.issue_subpoena(jsonb) from public, anon, authenticated;
grant execute on function public.issue_subpoena(jsonb) to enforcement_operator, dragonfly_worker, service_role;

create or replace function public.record_subpoena_response(payload jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'record_subpoena_response';
    v_action_id uuid;
    v_case_id uuid;
    v_outcome text;
    v_received_at timestamptz;
    v_document_path text;
    v_response jsonb;
    v_review_due_at timestamptz;
    v_note text;
    v_actor text;
    v_action public.enforcement_actions;
    v_case public.enforcement_cases;
    v_event_id uuid;
    v_review_task_id uuid;
    v_tasks_closed integer;
    v_next_action_at timestamptz;
    v_now timestamptz := pg_catalog.now();
begin
    perform enforcement_private.require_payload(
        c_rpc, payload,
        array['action_id', 'case_id', 'outcome', 'received_at', 'document_path', 'response', 'review_due_at',
              'note', 'actor']
    );
    v_action_id := enforcement_private.field_uuid(c_rpc, payload, 'action_id', false);
    v_case_id := enforcement_private.field_uuid(c_rpc, payload, 'case_id', false);
    if v_action_id is null and v_case_id is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: action_id or case_id is required', c_rpc);
    end if;
    v_outcome := enforcement_private.field_choice(
        c_rpc, payload, 'outcome', true, array['complied', 'partial', 'objected', 'no_response']
    );
    v_received_at := enforcement_private.field_timestamptz(
        c_rpc, payload, 'received_at', false, v_now + interval '5 minutes'
    );
    v_document_path := enforcement_private.field_storage_path(c_rpc, payload, 'document_path', false);
    if v_outcome = 'complied' and v_document_path is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: document_path is required when outcome is complied', c_rpc);
    end if;
    v_response := enforcement_private.field_object(c_rpc, payload, 'response');
    v_review_due_at := enforcement_private.field_timestamptz(c_rpc, payload, 'review_due_at', false);
    if v_review_due_at is not null and v_review_due_at <= v_now then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: review_due_at must be in the future', c_rpc);
    end if;
    v_review_due_at := coalesce(v_review_due_at, v_now + interval '3 days');
    v_note := enforcement_private.field_text(c_rpc, payload, 'note', false, 4000);
    v_actor := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'actor', false),
        enforcement_private.request_actor()
    );

    -- Find the case (and the action when named), then lock the case and re-read the action.
    if v_action_id is not null then
        select a.* into v_action from public.enforcement_actions as a where a.id = v_action_id;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('%s: action %s not found', c_rpc, v_action_id);
        end if;
        if v_action.action_type <> 'subpoena' then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    '%s: action %s is a %s action, not a subpoena', c_rpc, v_action_id, v_action.action_type
                );
        end if;
        if v_case_id is not null and v_case_id <> v_action.enforcement_case_id then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    '%s: action %s does not belong to case %s', c_rpc, v_action_id, v_case_id
                );
        end if;
        v_case_id := v_action.enforcement_case_id;
    end if;

    v_case := enforcement_private.lock_case(c_rpc, v_case_id);

    if v_action_id is not null then
        select a.* into v_action from public.enforcement_actions as a where a.id = v_action_id;
        if v_action.closed_at is not null then
            raise exception using
                errcode = 'DF003',
                message = pg_catalog.format(
                    '%s: subpoena action %s is already closed (%s)', c_rpc, v_action_id, v_action.status
                );
        end if;
    else
        select a.* into v_action
          from public.enforcement_actions as a
         where a.enforcement_case_id = v_case_id
           and a.action_type = 'subpoena'
           and a.status in ('queued', 'in_progress', 'awaiting_response');
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('%s: case %s has no active subpoena action', c_rpc, v_case_id);
        end if;
        v_action_id := v_action.id;
    end if;

    v_event_id := enforcement_private.append_event(
        c_rpc, v_case_id,
        case when v_outcome = 'complied' then 'subpoena_complied' else 'subpoena_response_recorded' end
            ::public.enforcement_event_kind,
        pg_catalog.jsonb_build_object(
            'action_id', v_action_id, 'outcome', v_outcome, 'response', v_response, 'note', v_note
        ),
        v_document_path, null, v_actor, v_received_at
    );

    perform enforcement_private.upsert_action(
        c_rpc, v_case_id, 'subpoena', 'completed',
        pg_catalog.jsonb_build_object(
            'response', pg_catalog.jsonb_build_object(
                'outcome', v_outcome,
                'received_at', coalesce(v_received_at, v_now),
                'document_path', v_document_path,
                'event_id', v_event_id,
                'details', v_response
            )
        ),
        v_outcome, v_actor
    );

    update public.plaintiff_tasks as t
       set status = 'done',
           closed_at = v_now,
           closed_by = v_actor,
           result = pg_catalog.jsonb_build_object('subpoena_outcome', v_outcome, 'event_id', v_event_id)
     where t.enforcement_case_id = v_case_id
       and t.status in ('open', 'in_progress')
       and t.metadata ->> 'action_id' = v_action_id::text;
    get diagnostics v_tasks_closed = row_count;

    insert into public.plaintiff_tasks (
        plaintiff_id, enforcement_case_id, kind, status, due_at, metadata, created_by
    )
    values (
        v_case.plaintiff_id, v_case_id, 'review', 'open', v_review_due_at,
        pg_catalog.jsonb_build_object(
            'action_id', v_action_id, 'purpose', 'subpoena_review', 'outcome', v_outcome, 'event_id', v_event_id
        ),
        v_actor
    )
    returning id into v_review_task_id;

    v_next_action_at := least(coalesce(v_case.next_action_at, v_review_due_at), v_review_due_at);
    update public.enforcement_cases as c set next_action_at = v_next_action_at where c.id = v_case_id;

    perform enforcement_private.append_event(
        c_rpc, v_case_id, 'review_scheduled',
        pg_catalog.jsonb_build_object('task_id', v_review_task_id, 'due_at', v_review_due_at, 'action_id', v_action_id),
        null, v_review_task_id, v_actor
    );

    insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta, note)
    values (
        v_case_id, v_actor, 'rpc', 'subpoena_response_recorded',
        pg_catalog.jsonb_build_object(
            'action', pg_catalog.jsonb_build_object('id', v_action_id, 'from', v_action.status, 'to', 'completed'),
            'next_action_at', pg_catalog.jsonb_build_object('from', v_case.next_action_at, 'to', v_next_action_at),
            'outcome', v_outcome
        ),
        v_note
    );

    return pg_catalog.jsonb_build_object(
        'action_id', v_action_id,
        'event_id', v_event_id,
        'review_task_id', v_review_task_id,
        'tasks_closed', v_tasks_closed,
        'next_action_at', v_next_action_at
    );
end;
$$;

comment on function public.record_subpoena_response(jsonb) is
    'Records the answer to an active subpoena. Payload: action_id (uuid) or case_id (uuid; its active '
    'subpoena), outcome (complied | partial | objected | no_response), received_at (not in the future), '
    'document_path (required when complied), response (object), review_due_at (future; default now + 3 '
    'days), note, actor. Completes the action, writes subpoena_complied or subpoena_response_recorded, '
    'closes the subpoena''s open tasks, creates a review task (review_scheduled event) and pulls '
    'next_action_at to at most the review date. Returns {action_id, event_id, review_task_id, tasks_closed, '
    'next_action_at}. Errors: 22023, P0002, DF001 (case closed), DF003 (action already closed). Callable by '
    'enforcement_operator and service_role.';

revoke execute on function public.record_subpoena_response(jsonb) from public, anon, authenticated;
grant execute on function public.record_subpoena_response(jsonb) to enforcement_operator, service_role;
