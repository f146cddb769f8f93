-- dragonfly.case_copilot_context(): everything Case Copilot may know about one case, as JSON.
--
-- Why one function: the brief must be built from one consistent snapshot (case, judgment,
-- plaintiff, score breakdown, recent timeline, open actions, payments, the planner's
-- inputs), and the fleet's role has no SELECT on those tables. Running as its owner, this
-- function reads them, including public.v_enforcement_timeline, and hands back only what a
-- brief needs: no plaintiff contact details (only whether an email/phone is on file), no
-- debtor contacts. The case_copilot worker validates the result with pydantic
-- (workers/case_copilot/models.py: CaseContext). Fleet and service_role only.

create function dragonfly.case_copilot_context(p_case_id uuid, p_timeline_limit integer default 25)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_case public.enforcement_cases;
    v_result jsonb;
begin
    if p_case_id is null then
        raise exception using errcode = '22023', message = 'case_copilot_context: case_id is required';
    end if;
    if p_timeline_limit is null or p_timeline_limit < 0 or p_timeline_limit > 500 then
        raise exception using
            errcode = '22023', message = 'case_copilot_context: timeline limit must be between 0 and 500';
    end if;

    select c.* into v_case from public.enforcement_cases as c where c.id = p_case_id;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('case_copilot_context: enforcement case %s not found', p_case_id);
    end if;

    select pg_catalog.jsonb_build_object(
        'as_of', pg_catalog.now(),
        'case', pg_catalog.jsonb_build_object(
            'id', v_case.id,
            'stage', v_case.current_stage,
            'tier', case
                        when v_case.tier_override is not null
                             and (v_case.override_expires_at is null
                                  or v_case.override_expires_at > pg_catalog.now())
                        then v_case.tier_override
                        else v_case.tier
                    end,
            'tier_reason', v_case.tier_reason,
            'collectability_score', v_case.collectability_score,
            'current_balance', v_case.current_balance,
            'asset_flags', v_case.asset_flags,
            'next_action_at', v_case.next_action_at,
            'stage_entered_at', v_case.stage_entered_at,
            'opened_at', v_case.opened_at,
            'closed_at', v_case.closed_at,
            'closure_reason', v_case.closure_reason,
            'levy_status', v_case.levy_status,
            'garnishment_status', v_case.garnishment_status,
            'marshal_status', v_case.marshal_status
        ),
        'judgment', (
            select pg_catalog.jsonb_build_object(
                'id', j.id,
                'case_number', jc.case_number,
                'debtor_name', j.debtor_name,
                'judgment_amount', j.judgment_amount,
                'balance_due', j.balance_due,
                'judgment_date', j.judgment_date,
                'county', j.county,
                'state', j.state,
                'court', j.court,
                'priority_level', j.priority_level,
                'status', j.status
            )
              from public.judgments as j
              left join judgments.cases as jc on jc.judgment_id = j.id
             where j.id = v_case.judgment_id
        ),
        'plaintiff', (
            select pg_catalog.jsonb_build_object(
                'id', p.id,
                'name', p.name,
                'status', p.status,
                'has_email', p.email is not null,
                'has_phone', p.phone is not null
            )
              from public.plaintiffs as p
             where p.id = v_case.plaintiff_id
        ),
        'scores', (
            select pg_catalog.jsonb_build_object(
                'identity_score', jc.identity_score,
                'contactability_score', jc.contactability_score,
                'asset_score', jc.asset_score,
                'recency_amount_score', jc.recency_amount_score,
                'adverse_penalty', jc.adverse_penalty,
                'collectability_score', jc.collectability_score,
                'collectability_tier', jc.collectability_tier,
                'last_scored_at', jc.last_scored_at,
                'last_enriched_at', jc.last_enriched_at
            )
              from judgments.cases as jc
             where jc.judgment_id = v_case.judgment_id
        ),
        -- The newest entries, returned oldest first.
        'timeline', coalesce((
            select pg_catalog.jsonb_agg(
                       pg_catalog.jsonb_build_object(
                           'occurred_at', t.occurred_at,
                           'kind', t.entry_type || ':' || t.kind,
                           'summary', pg_catalog.left(
                               coalesce(
                                   t.details ->> 'reason',
                                   t.details ->> 'note',
                                   t.status,
                                   t.details ->> 'status_reason'
                               ),
                               300
                           )
                       )
                       order by t.occurred_at, t.entry_id
                   )
              from (
                    select tl.*
                      from public.v_enforcement_timeline as tl
                     where tl.case_id = v_case.id
                     order by tl.occurred_at desc, tl.entry_id desc
                     limit p_timeline_limit
                   ) as t
        ), '[]'::jsonb),
        'open_actions', coalesce((
            select pg_catalog.jsonb_agg(
                       pg_catalog.jsonb_build_object(
                           'action_type', a.action_type, 'status', a.status, 'opened_at', a.opened_at
                       )
                       order by a.opened_at, a.id
                   )
              from public.enforcement_actions as a
             where a.enforcement_case_id = v_case.id
               and a.closed_at is null
        ), '[]'::jsonb),
        'payments', coalesce((
            select pg_catalog.jsonb_agg(
                       pg_catalog.jsonb_build_object(
                           'amount', e.payload -> 'amount',
                           'received_at', e.occurred_at,
                           'source', e.payload ->> 'source'
                       )
                       order by e.occurred_at, e.id
                   )
              from public.enforcement_events as e
             where e.enforcement_case_id = v_case.id
               and e.event_kind = 'payment_received'
        ), '[]'::jsonb),
        'plan_input', (
            select pg_catalog.jsonb_build_object(
                       'stage', pi -> 'stage',
                       'closed', pi -> 'closed',
                       'tier', pi -> 'tier',
                       'hints', pi -> 'hints',
                       'open_actions', pi -> 'open_actions',
                       'tried_actions', pi -> 'tried_actions',
                       'review_pending', pi -> 'review_pending'
                   )
              from dragonfly.enforce_plan_input(v_case.id, false) as pi
        )
    ) into v_result;

    return v_result;
end;
$$;

comment on function dragonfly.case_copilot_context(uuid, integer) is
    'Case Copilot''s input for one enforcement case as JSON: as_of, case (effective tier, stage, balance, '
    'flags, statuses), judgment (with case_number), plaintiff (name, status, has_email/has_phone; no contact '
    'details), scores (judgments.cases breakdown), the newest p_timeline_limit entries of '
    'v_enforcement_timeline (oldest first), open actions, payments, and the enforce planner''s inputs. '
    'P0002 when the case does not exist. Fleet and service_role only.';

revoke execute on function dragonfly.case_copilot_context(uuid, integer) from public;
grant execute on function dragonfly.case_copilot_context(uuid, integer) to service_role, dragonfly_worker;
