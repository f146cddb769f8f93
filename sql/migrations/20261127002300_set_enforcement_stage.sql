-- set_enforcement_stage(): move an open case on the stage ladder.
--
-- Why the rules live here: the Ops Console and the enforce workers both move cases, and
-- the ladder (enforcement_stage_lookup) is only meaningful if nobody can silently move a
-- case backwards. A lower ordinal needs override = true, which is recorded in the history
-- and on the event. Terminal stages are reached only through close_enforcement_case(),
-- which also closes the case's actions and tasks.

create or replace function public.set_enforcement_stage(payload jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'set_enforcement_stage';
    v_case_id uuid;
    v_stage text;
    v_actor text;
    v_note text;
    v_metadata jsonb;
    v_override boolean;
    v_next_action_at timestamptz;
    v_target public.enforcement_stage_lookup;
    v_current public.enforcement_stage_lookup;
    v_case public.enforcement_cases;
    v_event_id uuid;
    v_now timestamptz := pg_catalog.now();
begin
    perform enforcement_private.require_payload(
        c_rpc, payload, array['case_id', 'stage', 'actor', 'note', 'metadata', 'override', 'next_action_at']
    );
    v_case_id := enforcement_private.field_uuid(c_rpc, payload, 'case_id', true);
    v_stage := enforcement_private.field_text(c_rpc, payload, 'stage', true, 64);
    v_actor := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'actor', false),
        enforcement_private.request_actor()
    );
    v_note := enforcement_private.field_text(c_rpc, payload, 'note', false, 4000);
    v_metadata := enforcement_private.field_object(c_rpc, payload, 'metadata');
    v_override := enforcement_private.field_boolean(c_rpc, payload, 'override', false);
    v_next_action_at := enforcement_private.field_timestamptz(c_rpc, payload, 'next_action_at', false);

    select s.* into v_target from public.enforcement_stage_lookup as s where s.stage = v_stage;
    if not found then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: stage %s is not a stage of enforcement_stage_lookup', c_rpc, v_stage);
    end if;
    if v_target.is_terminal then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: stage %s is terminal; close the case with close_enforcement_case()', c_rpc, v_stage
            );
    end if;

    v_case := enforcement_private.lock_case(c_rpc, v_case_id);
    select s.* into v_current from public.enforcement_stage_lookup as s where s.stage = v_case.current_stage;

    if v_target.ordinal < v_current.ordinal and not v_override then
        raise exception using
            errcode = 'DF002',
            message = pg_catalog.format(
                '%s: case %s is in %s; moving back to %s needs override = true',
                c_rpc, v_case_id, v_case.current_stage, v_stage
            );
    end if;

    v_next_action_at := coalesce(v_next_action_at, enforcement_private.stage_due_at(v_stage, v_now));

    update public.enforcement_cases as c
       set current_stage = v_stage,
           stage_entered_at = v_now,
           next_action_at = v_next_action_at
     where c.id = v_case_id;

    insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta, note)
    values (
        v_case_id, v_actor, 'rpc', 'stage_changed',
        pg_catalog.jsonb_build_object(
            'stage', pg_catalog.jsonb_build_object('from', v_case.current_stage, 'to', v_stage),
            'tier', pg_catalog.jsonb_build_object('from', v_case.tier, 'to', v_case.tier),
            'next_action_at', pg_catalog.jsonb_build_object('from', v_case.next_action_at, 'to', v_next_action_at),
            'override', v_override
        ),
        v_note
    );

    v_event_id := enforcement_private.append_event(
        c_rpc, v_case_id, 'case_stage_changed',
        pg_catalog.jsonb_build_object(
            'from', v_case.current_stage,
            'to', v_stage,
            'override', v_override,
            'note', v_note,
            'next_action_at', v_next_action_at,
            'metadata', v_metadata
        ),
        null, null, v_actor
    );

    return pg_catalog.jsonb_build_object(
        'case_id', v_case_id,
        'previous_stage', v_case.current_stage,
        'stage', v_stage,
        'next_action_at', v_next_action_at,
        'event_id', v_event_id
    );
end;
$$;

comment on function public.set_enforcement_stage(jsonb) is
    'Moves an open case to another non-terminal stage. Payload: case_id (uuid), stage, actor, note, metadata '
    '(object), override (boolean, needed to move to a lower ordinal), next_action_at (default: now + the '
    'stage''s sla_days). Resets stage_entered_at, writes a history delta (stage, tier, next_action_at) and a '
    'case_stage_changed event. Returns {case_id, previous_stage, stage, next_action_at, event_id}. Errors: '
    '22023, P0002, DF001 (case closed), DF002 (backwards without override). Callable by enforcement_operator, '
    'dragonfly_worker and service_role.';

revoke execute on function public.set_enforcement_stage(jsonb) from public, anon, authenticated;
grant execute on function public.set_enforcement_stage(jsonb)
    to enforcement_operator, dragonfly_worker, service_role;
