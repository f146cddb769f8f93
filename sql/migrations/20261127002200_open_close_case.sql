-- open_enforcement_case() and close_enforcement_case(): the two ends of a case's life.
--
-- Why the unique index matters: "one open case per judgment" is enforced by
-- enforcement_cases_one_open_per_judgment, not by a read-then-insert check, so two
-- concurrent opens for one judgment can never both succeed: the second insert waits for
-- the first transaction and then fails with 23505, which is re-raised with a clear message.
--
-- Closing cancels every open action and every open task of the case, moves the case to the
-- terminal stage of the same name (the table's check requires it), and records the change
-- in the history and on the timeline (case_stage_changed and case_closed events).

create or replace function public.open_enforcement_case(payload jsonb)
returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'open_enforcement_case';
    v_judgment_id uuid;
    v_plaintiff_id uuid;
    v_tier text;
    v_score numeric;
    v_created_by text;
    v_notes text;
    v_judgment public.judgments;
    v_court_case judgments.cases;
    v_band public.enforcement_tier_lookup;
    v_tier_reason text;
    v_existing uuid;
    v_case_id uuid;
    v_constraint text;
    v_now timestamptz := pg_catalog.now();
begin
    -- 1. Validate the payload before touching anything.
    perform enforcement_private.require_payload(
        c_rpc, payload,
        array['judgment_id', 'plaintiff_id', 'tier', 'collectability_score', 'created_by', 'notes']
    );
    v_judgment_id := enforcement_private.field_uuid(c_rpc, payload, 'judgment_id', true);
    v_plaintiff_id := enforcement_private.field_uuid(c_rpc, payload, 'plaintiff_id', false);
    v_tier := enforcement_private.field_text(c_rpc, payload, 'tier', false, 20);
    v_score := enforcement_private.field_numeric(c_rpc, payload, 'collectability_score', false, 0, 100);
    v_created_by := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'created_by', false),
        enforcement_private.request_actor()
    );
    v_notes := enforcement_private.field_text(c_rpc, payload, 'notes', false, 4000);

    if v_tier is not null and not exists (
        select 1 from public.enforcement_tier_lookup as t where t.tier = v_tier
    ) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: tier must be one of tier0, tier1, tier2, tier3 (got %s)', c_rpc, v_tier);
    end if;

    -- 2. The judgment, its plaintiff and its court case.
    select j.* into v_judgment from public.judgments as j where j.id = v_judgment_id;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('%s: judgment %s not found', c_rpc, v_judgment_id);
    end if;

    if v_plaintiff_id is not null and v_plaintiff_id <> v_judgment.plaintiff_id then
        if not exists (select 1 from public.plaintiffs as p where p.id = v_plaintiff_id) then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('%s: plaintiff %s not found', c_rpc, v_plaintiff_id);
        end if;
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: plaintiff_id %s is not the plaintiff of judgment %s', c_rpc, v_plaintiff_id, v_judgment_id
            );
    end if;

    if v_judgment.status <> 'active' then
        raise exception using
            errcode = 'DF005',
            message = pg_catalog.format(
                '%s: judgment %s is %s; only active judgments can be enforced', c_rpc, v_judgment_id, v_judgment.status
            );
    end if;

    select existing.id into v_existing
      from public.enforcement_cases as existing
     where existing.judgment_id = v_judgment_id and existing.closed_at is null;
    if found then
        raise exception using
            errcode = '23505',
            message = pg_catalog.format(
                '%s: judgment %s already has an open enforcement case (%s)', c_rpc, v_judgment_id, v_existing
            ),
            hint = 'Close the open case first, or work on it.';
    end if;

    -- 3. Tier: the one given, else the band of the score (given, else the court case's),
    --    else the court case's stored tier.
    select cc.* into v_court_case from judgments.cases as cc where cc.judgment_id = v_judgment_id;
    v_score := coalesce(v_score, v_court_case.collectability_score);
    if v_tier is not null then
        v_tier_reason := 'given at opening';
    else
        v_band := enforcement_private.tier_for_score(v_score);
        if v_band.tier is not null then
            v_tier := v_band.tier;
            v_tier_reason := 'score>=' || pg_catalog.trim_scale(v_band.min_score)::text;
        elsif v_court_case.collectability_tier is not null then
            v_tier := v_court_case.collectability_tier;
            v_tier_reason := 'court case tier';
        end if;
    end if;

    -- 4. Write. The unique partial index decides a race between two opens.
    begin
        insert into public.enforcement_cases (
            judgment_id, plaintiff_id, tier, tier_reason, tier_as_of, collectability_score,
            current_stage, stage_entered_at, next_action_at, current_balance, opened_at, notes, created_by
        )
        values (
            v_judgment_id, v_judgment.plaintiff_id, v_tier, v_tier_reason,
            case when v_tier is not null then v_now end, v_score,
            'pre_enforcement', v_now, enforcement_private.stage_due_at('pre_enforcement', v_now),
            v_judgment.balance_due, v_now, v_notes, v_created_by
        )
        returning id into v_case_id;
    exception when unique_violation then
        get stacked diagnostics v_constraint = constraint_name;
        if v_constraint = 'enforcement_cases_one_open_per_judgment' then
            raise exception using
                errcode = '23505',
                message = pg_catalog.format(
                    '%s: judgment %s already has an open enforcement case (opened concurrently)',
                    c_rpc, v_judgment_id
                ),
                hint = 'Close the open case first, or work on it.';
        end if;
        raise;
    end;

    insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta, note)
    values (
        v_case_id, v_created_by, 'rpc', 'case_opened',
        pg_catalog.jsonb_build_object(
            'stage', pg_catalog.jsonb_build_object('from', null, 'to', 'pre_enforcement'),
            'tier', pg_catalog.jsonb_build_object('from', null, 'to', v_tier),
            'current_balance', pg_catalog.jsonb_build_object('from', null, 'to', v_judgment.balance_due)
        ),
        v_notes
    );

    perform enforcement_private.append_event(
        c_rpc, v_case_id, 'case_opened',
        pg_catalog.jsonb_build_object(
            'judgment_id', v_judgment_id,
            'plaintiff_id', v_judgment.plaintiff_id,
            'tier', v_tier,
            'collectability_score', v_score,
            'current_balance', v_judgment.balance_due
        ),
        null, null, v_created_by
    );

    return v_case_id;
end;
$$;

comment on function public.open_enforcement_case(jsonb) is
    'Opens an enforcement case on an active judgment. Payload: judgment_id (uuid, required), plaintiff_id '
    '(uuid, must be the judgment''s), tier (tier0-tier3), collectability_score (0-100), created_by, notes. '
    'Stage pre_enforcement, balance = judgments.balance_due, history row (actor_type rpc) and case_opened '
    'event. Returns the case id. Errors: 22023, P0002, 23505 (an open case exists), DF005 (judgment not '
    'active). Callable by enforcement_operator and service_role.';

revoke execute on function public.open_enforcement_case(jsonb) from public, anon, authenticated;
grant execute on function public.open_enforcement_case(jsonb) to enforcement_operator, service_role;

create or replace function public.close_enforcement_case(payload jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'close_enforcement_case';
    v_case_id uuid;
    v_status text;
    v_note text;
    v_closed_by text;
    v_case public.enforcement_cases;
    v_action record;
    v_actions_closed integer := 0;
    v_tasks_cancelled integer := 0;
    v_now timestamptz := pg_catalog.now();
begin
    perform enforcement_private.require_payload(c_rpc, payload, array['case_id', 'status', 'note', 'closed_by']);
    v_case_id := enforcement_private.field_uuid(c_rpc, payload, 'case_id', true);
    v_status := enforcement_private.field_choice(
        c_rpc, payload, 'status', true, array['satisfied', 'uncollectible', 'withdrawn']
    );
    v_note := enforcement_private.field_text(c_rpc, payload, 'note', false, 4000);
    v_closed_by := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'closed_by', false),
        enforcement_private.request_actor()
    );

    v_case := enforcement_private.lock_case(c_rpc, v_case_id, false);
    if v_case.closed_at is not null then
        raise exception using
            errcode = 'DF001',
            message = pg_catalog.format(
                '%s: enforcement case %s is already closed (%s at %s)',
                c_rpc, v_case_id, v_case.closure_reason, v_case.closed_at
            );
    end if;

    -- Every open action ends with the case.
    for v_action in
        update public.enforcement_actions as a
           set status = 'cancelled',
               status_reason = 'case closed: ' || v_status,
               closed_at = greatest(v_now, a.opened_at),
               updated_by = v_closed_by
         where a.enforcement_case_id = v_case_id and a.closed_at is null
        returning a.id, a.action_type
    loop
        v_actions_closed := v_actions_closed + 1;
        perform enforcement_private.append_event(
            c_rpc, v_case_id, 'action_closed',
            pg_catalog.jsonb_build_object(
                'action_id', v_action.id,
                'action_type', v_action.action_type,
                'status', 'cancelled',
                'status_reason', 'case closed: ' || v_status
            ),
            null, null, v_closed_by
        );
    end loop;

    update public.plaintiff_tasks as t
       set status = 'cancelled',
           closed_at = v_now,
           closed_by = v_closed_by,
           result = pg_catalog.jsonb_build_object('cancelled_because', 'case closed: ' || v_status)
     where t.enforcement_case_id = v_case_id and t.status in ('open', 'in_progress');
    get diagnostics v_tasks_cancelled = row_count;

    update public.enforcement_cases as c
       set closed_at = v_now,
           closure_reason = v_status,
           closed_by = v_closed_by,
           current_stage = v_status,
           stage_entered_at = v_now,
           next_action_at = null
     where c.id = v_case_id;

    insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta, note)
    values (
        v_case_id, v_closed_by, 'rpc', 'case_closed',
        pg_catalog.jsonb_build_object(
            'stage', pg_catalog.jsonb_build_object('from', v_case.current_stage, 'to', v_status),
            'tier', pg_catalog.jsonb_build_object('from', v_case.tier, 'to', v_case.tier),
            'closure_reason', v_status,
            'actions_closed', v_actions_closed,
            'tasks_cancelled', v_tasks_cancelled
        ),
        v_note
    );

    perform enforcement_private.append_event(
        c_rpc, v_case_id, 'case_stage_changed',
        pg_catalog.jsonb_build_object(
            'from', v_case.current_stage, 'to', v_status, 'override', false, 'note', v_note
        ),
        null, null, v_closed_by
    );
    perform enforcement_private.append_event(
        c_rpc, v_case_id, 'case_closed',
        pg_catalog.jsonb_build_object(
            'closure_reason', v_status, 'note', v_note, 'current_balance', v_case.current_balance
        ),
        null, null, v_closed_by
    );

    return pg_catalog.jsonb_build_object(
        'case_id', v_case_id,
        'closure_reason', v_status,
        'closed_at', v_now,
        'actions_closed', v_actions_closed,
        'tasks_cancelled', v_tasks_cancelled
    );
end;
$$;

comment on function public.close_enforcement_case(jsonb) is
    'Closes an open enforcement case. Payload: case_id (uuid), status (satisfied | uncollectible | withdrawn), '
    'note, closed_by. Sets closed_at, closure_reason and the terminal stage, cancels open actions and open '
    'tasks of the case, writes history and case_stage_changed + case_closed events. Returns {case_id, '
    'closure_reason, closed_at, actions_closed, tasks_cancelled}. Errors: 22023, P0002, DF001 (already '
    'closed). Callable by enforcement_operator and service_role.';

revoke execute on function public.close_enforcement_case(jsonb) from public, anon, authenticated;
grant execute on function public.close_enforcement_case(jsonb) to enforcement_operator, service_role;
