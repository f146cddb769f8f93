-- queue_enforcement_action(): create or move the long-running action of a case (bank levy,
-- garnishment, subpoena, marshal) through its state machine.
--
-- Why a unique partial index: the spec keys the upsert on (case, action type, status in
-- the active set), i.e. at most one active action per type per case. The index
-- enforcement_actions_one_active_per_type makes that a fact of the table, so no writer
-- (RPC or service_role) can create a second active levy on a case.
--
-- The state machine (enforcement_private.action_transition_allowed):
--   active statuses:   queued, in_progress, awaiting_response
--   terminal statuses: completed, cancelled (the action is closed: closed_at is set)
--   (none)            -> queued | in_progress | awaiting_response      (creates the action)
--   queued            -> queued | in_progress | awaiting_response | completed | cancelled
--   in_progress       -> in_progress | awaiting_response | completed | cancelled
--   awaiting_response -> awaiting_response | in_progress | completed | cancelled
-- Anything else (back to queued, completing an action that does not exist, changing a
-- closed action) is refused with DF003. Repeating the current status only merges metadata
-- and emits no event, so a retried worker call is harmless.

alter table public.enforcement_actions
    add constraint enforcement_actions_status_known check (
        status in ('queued', 'in_progress', 'awaiting_response', 'completed', 'cancelled')
    ),
    -- With the existing enforcement_actions_finished_are_closed: closed exactly when finished.
    add constraint enforcement_actions_active_are_open check (
        status not in ('queued', 'in_progress', 'awaiting_response') or closed_at is null
    );

comment on constraint enforcement_actions_status_known on public.enforcement_actions is
    'The statuses of queue_enforcement_action()''s state machine: active queued, in_progress, '
    'awaiting_response; terminal completed, cancelled.';

create unique index enforcement_actions_one_active_per_type
    on public.enforcement_actions (enforcement_case_id, action_type)
    where status in ('queued', 'in_progress', 'awaiting_response');

create or replace function enforcement_private.action_transition_allowed(p_from text, p_to text)
returns boolean
language sql
immutable
set search_path = ''
as $$
    select case
        when p_from is null then p_to in ('queued', 'in_progress', 'awaiting_response')
        when p_from = 'queued' then
            p_to in ('queued', 'in_progress', 'awaiting_response', 'completed', 'cancelled')
        when p_from = 'in_progress' then
            p_to in ('in_progress', 'awaiting_response', 'completed', 'cancelled')
        when p_from = 'awaiting_response' then
            p_to in ('awaiting_response', 'in_progress', 'completed', 'cancelled')
        else false
    end
$$;

comment on function enforcement_private.action_transition_allowed(text, text) is
    'The enforcement action state machine: whether an action may go from p_from (null = no active action) '
    'to p_to. See the migration header or docs/rpc.md for the table. Internal.';

revoke execute on function enforcement_private.action_transition_allowed(text, text) from public;

create or replace function enforcement_private.upsert_action(
    p_rpc text,
    p_case_id uuid,
    p_action_type text,
    p_status text,
    p_metadata jsonb,
    p_status_reason text,
    p_actor text
)
returns uuid
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_action public.enforcement_actions;
    v_action_id uuid;
    v_now timestamptz := pg_catalog.now();
begin
    -- The caller holds the case lock, so nobody else is changing this case's actions.
    select a.* into v_action
      from public.enforcement_actions as a
     where a.enforcement_case_id = p_case_id
       and a.action_type = p_action_type
       and a.status in ('queued', 'in_progress', 'awaiting_response');

    if not found then
        if not enforcement_private.action_transition_allowed(null, p_status) then
            raise exception using
                errcode = 'DF003',
                message = pg_catalog.format(
                    '%s: case %s has no active %s action to mark %s', p_rpc, p_case_id, p_action_type, p_status
                ),
                hint = 'Create the action with status queued, in_progress or awaiting_response first.';
        end if;

        insert into public.enforcement_actions (
            enforcement_case_id, action_type, status, status_reason, opened_at, metadata, created_by, updated_by
        )
        values (p_case_id, p_action_type, p_status, p_status_reason, v_now, p_metadata, p_actor, p_actor)
        returning id into v_action_id;

        perform enforcement_private.append_event(
            p_rpc, p_case_id, 'action_opened',
            pg_catalog.jsonb_build_object(
                'action_id', v_action_id, 'action_type', p_action_type, 'status', p_status,
                'status_reason', p_status_reason, 'metadata', p_metadata
            ),
            null, null, p_actor
        );
        return v_action_id;
    end if;

    if not enforcement_private.action_transition_allowed(v_action.status, p_status) then
        raise exception using
            errcode = 'DF003',
            message = pg_catalog.format(
                '%s: %s action %s cannot go from %s to %s', p_rpc, p_action_type, v_action.id, v_action.status, p_status
            );
    end if;

    update public.enforcement_actions as a
       set status = p_status,
           status_reason = coalesce(p_status_reason, case when p_status = v_action.status then a.status_reason end),
           metadata = a.metadata || p_metadata,
           closed_at = case when p_status in ('completed', 'cancelled') then greatest(v_now, a.opened_at) end,
           updated_by = p_actor
     where a.id = v_action.id;

    if p_status in ('completed', 'cancelled') then
        perform enforcement_private.append_event(
            p_rpc, p_case_id, 'action_closed',
            pg_catalog.jsonb_build_object(
                'action_id', v_action.id, 'action_type', p_action_type,
                'from', v_action.status, 'to', p_status, 'status_reason', p_status_reason
            ),
            null, null, p_actor
        );
    elsif p_status <> v_action.status then
        perform enforcement_private.append_event(
            p_rpc, p_case_id, 'action_status_changed',
            pg_catalog.jsonb_build_object(
                'action_id', v_action.id, 'action_type', p_action_type,
                'from', v_action.status, 'to', p_status, 'status_reason', p_status_reason
            ),
            null, null, p_actor
        );
    end if;

    return v_action.id;
end;
$$;

comment on function enforcement_private.upsert_action(text, uuid, text, text, jsonb, text, text) is
    'Creates the active action of (case, type) or moves it along the state machine, closing it on '
    'completed/cancelled, and emits action_opened / action_status_changed / action_closed. DF003 for a '
    'refused transition. The caller must hold the case lock. Internal: used by queue_enforcement_action(), '
    'issue_subpoena() and record_subpoena_response().';

revoke execute on function enforcement_private.upsert_action(text, uuid, text, text, jsonb, text, text) from public;

create or replace function public.queue_enforcement_action(payload jsonb)
returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'queue_enforcement_action';
    v_case_id uuid;
    v_action_type text;
    v_status text;
    v_metadata jsonb;
    v_status_reason text;
    v_actor text;
begin
    perform enforcement_private.require_payload(
        c_rpc, payload, array['case_id', 'action_type', 'status', 'metadata', 'status_reason', 'actor']
    );
    v_case_id := enforcement_private.field_uuid(c_rpc, payload, 'case_id', true);
    v_action_type := enforcement_private.field_choice(
        c_rpc, payload, 'action_type', true, array['bank_levy', 'garnishment', 'subpoena', 'marshal']
    );
    v_status := coalesce(
        enforcement_private.field_choice(
            c_rpc, payload, 'status', false,
            array['queued', 'in_progress', 'awaiting_response', 'completed', 'cancelled']
        ),
        'queued'
    );
    v_metadata := enforcement_private.field_object(c_rpc, payload, 'metadata');
    v_status_reason := enforcement_private.field_text(c_rpc, payload, 'status_reason', false, 1000);
    v_actor := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'actor', false),
        enforcement_private.request_actor()
    );

    perform enforcement_private.lock_case(c_rpc, v_case_id);

    return enforcement_private.upsert_action(
        c_rpc, v_case_id, v_action_type, v_status, v_metadata, v_status_reason, v_actor
    );
end;
$$;

comment on function public.queue_enforcement_action(jsonb) is
    'Creates or updates the active enforcement action of a case. Payload: case_id (uuid), action_type '
    '(bank_levy | garnishment | subpoena | marshal), status (queued (default) | in_progress | '
    'awaiting_response | completed | cancelled), metadata (object, merged), status_reason, actor. Upsert '
    'keyed on (case, action_type, active status); completed/cancelled close the action and emit '
    'action_closed. Returns the action id. Errors: 22023, P0002, DF001 (case closed), DF003 (transition '
    'refused). Callable by enforcement_operator, dragonfly_worker and service_role.';

revoke execute on function public.queue_enforcement_action(jsonb) from public, anon, authenticated;
grant execute on function public.queue_enforcement_action(jsonb)
    to enforcement_operator, dragonfly_worker, service_role;
