-- dragonfly.schedule_next_action(): when the enforce planner wants to see a case again.
--
-- Why a function of its own: set_enforcement_stage() sets next_action_at when a case
-- changes stage, but most plans do not change the stage (an action is in flight, a levy is
-- queued in a later stage, a review is due). Calling set_enforcement_stage() with the same
-- stage would reset stage_entered_at and write a false case_stage_changed event. This
-- function moves only next_action_at, under the same case lock the enforcement RPCs take,
-- and records the change in enforcement_history (actor_type automation), not on the
-- timeline: a new follow-up date is bookkeeping, not an event in the world.
-- Fleet and service_role only.

create function dragonfly.schedule_next_action(
    p_case_id uuid,
    p_next_action_at timestamptz,
    p_actor text,
    p_note text default null
)
returns timestamptz
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'schedule_next_action';
    v_case public.enforcement_cases;
begin
    if p_case_id is null then
        raise exception using errcode = '22023', message = 'schedule_next_action: case_id is required';
    end if;
    if p_next_action_at is null or not pg_catalog.isfinite(p_next_action_at) then
        raise exception using
            errcode = '22023', message = 'schedule_next_action: next_action_at must be a finite timestamp';
    end if;
    if p_actor is null or pg_catalog.btrim(p_actor) = '' then
        raise exception using errcode = '22023', message = 'schedule_next_action: actor is required';
    end if;

    -- P0002 when missing, DF001 when closed; same lock (and order) as every enforcement RPC.
    v_case := enforcement_private.lock_case(c_rpc, p_case_id);

    if v_case.next_action_at is not distinct from p_next_action_at then
        return p_next_action_at;
    end if;

    update public.enforcement_cases as c
       set next_action_at = p_next_action_at
     where c.id = p_case_id;

    insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta, note)
    values (
        p_case_id, p_actor, 'automation', 'next_action_scheduled',
        pg_catalog.jsonb_build_object(
            'next_action_at',
            pg_catalog.jsonb_build_object('from', v_case.next_action_at, 'to', p_next_action_at)
        ),
        p_note
    );
    return p_next_action_at;
end;
$$;

comment on function dragonfly.schedule_next_action(uuid, timestamptz, text, text) is
    'Sets next_action_at of an open case (locking it like the enforcement RPCs) and records the change '
    'in enforcement_history (action next_action_scheduled, actor_type automation). No-op when unchanged. '
    '22023 on bad input, P0002 when the case is missing, DF001 when it is closed. Fleet and service_role only.';

revoke execute on function dragonfly.schedule_next_action(uuid, timestamptz, text, text) from public;
grant execute on function dragonfly.schedule_next_action(uuid, timestamptz, text, text)
    to service_role, dragonfly_worker;
