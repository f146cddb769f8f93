-- What the enforce planner and the SLA sweep read, as two fleet-only functions.
--
-- Why functions: the enforcement tables are readable by service_role only, and the fleet's
-- role (dragonfly_worker) should not get blanket SELECT on them just to plan. These
-- SECURITY DEFINER functions return exactly the planner's inputs and the overdue cases, and
-- are executable by service_role and dragonfly_worker alone.
--
--   dragonfly.enforce_plan_input(case_id, lock)  the planner's input for one case; with
--       lock = true the case row is locked FOR NO KEY UPDATE until the job's transaction
--       ends, so two plan jobs for one case run one after the other and the second sees
--       what the first opened (no duplicate action). The enforcement RPCs take the same
--       lock first, so the lock order stays case -> judgment.
--   dragonfly.enforcement_sla_due(now, limit)   open cases whose next_action_at has passed,
--       oldest first, for the scheduler's SLA sweep.

create function dragonfly.enforce_plan_input(p_case_id uuid, p_lock boolean default false)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_case public.enforcement_cases;
    v_hints text[];
    v_open text[];
    v_tried text[];
    v_review boolean;
begin
    if p_case_id is null then
        raise exception using errcode = '22023', message = 'enforce_plan_input: case_id is required';
    end if;

    if p_lock then
        select c.* into v_case from public.enforcement_cases as c
         where c.id = p_case_id
           for no key update;
    else
        select c.* into v_case from public.enforcement_cases as c where c.id = p_case_id;
    end if;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('enforce_plan_input: enforcement case %s not found', p_case_id);
    end if;

    -- Hints: truthy asset_flags keys plus the asset types enrichment has stored for the
    -- judgment's court case ('other' is not a usable hint).
    select coalesce(pg_catalog.array_agg(distinct h order by h), '{}')
      into v_hints
      from (
            select f.key as h
              from pg_catalog.jsonb_each(v_case.asset_flags) as f
             where f.value not in ('false'::jsonb, 'null'::jsonb, '0'::jsonb, '""'::jsonb,
                                   '{}'::jsonb, '[]'::jsonb)
            union
            select a.asset_type
              from judgments.cases as jc
              join enrichment.assets as a on a.case_id = jc.id
             where jc.judgment_id = v_case.judgment_id
               and a.asset_type <> 'other'
           ) as hints;

    select coalesce(pg_catalog.array_agg(distinct a.action_type order by a.action_type)
                        filter (where a.closed_at is null), '{}'),
           coalesce(pg_catalog.array_agg(distinct a.action_type order by a.action_type)
                        filter (where a.closed_at is not null), '{}')
      into v_open, v_tried
      from public.enforcement_actions as a
     where a.enforcement_case_id = v_case.id;

    select exists (
        select 1
          from public.enforcement_events as e
         where e.enforcement_case_id = v_case.id
           and e.event_kind = 'note_added'
           and e.payload ->> 'review' = 'uncollectible'
           and e.created_at >= v_case.stage_entered_at
    ) into v_review;

    return pg_catalog.jsonb_build_object(
        'stage', v_case.current_stage,
        'closed', v_case.closed_at is not null,
        'tier', case
                    when v_case.tier_override is not null
                         and (v_case.override_expires_at is null
                              or v_case.override_expires_at > pg_catalog.now())
                    then v_case.tier_override
                    else v_case.tier
                end,
        'hints', pg_catalog.to_jsonb(v_hints),
        'open_actions', pg_catalog.to_jsonb(v_open),
        -- an action type that is open again is not "tried" for the planner's purposes
        'tried_actions', pg_catalog.to_jsonb(array(
            select t.a
              from (select pg_catalog.unnest(v_tried) except select pg_catalog.unnest(v_open)) as t (a)
             order by t.a
        )),
        'review_pending', v_review,
        -- not planner input: who a subpoena or levy is addressed to
        'debtor_name', (select j.debtor_name from public.judgments as j where j.id = v_case.judgment_id),
        'institutions', (
            select coalesce(pg_catalog.jsonb_object_agg(best.asset_type, best.institution), '{}'::jsonb)
              from (
                    select distinct on (a.asset_type) a.asset_type, a.institution
                      from judgments.cases as jc
                      join enrichment.assets as a on a.case_id = jc.id
                     where jc.judgment_id = v_case.judgment_id
                       and a.asset_type in ('bank', 'employer')
                       and a.institution is not null
                     order by a.asset_type, a.confidence desc nulls last, a.updated_at desc
                   ) as best
        )
    );
end;
$$;

comment on function dragonfly.enforce_plan_input(uuid, boolean) is
    'The enforce planner''s input for one case as JSON: stage, closed, effective tier (a live '
    'tier_override, else tier), hints (truthy asset_flags plus enrichment asset types), open and '
    'tried (closed) action types, review_pending (a note_added event with payload.review = uncollectible '
    'since the case entered its stage), plus debtor_name and institutions ({bank, employer}: the '
    'most confident institution enrichment found). p_lock locks the case row until the transaction '
    'ends. P0002 when the case does not exist. Fleet and service_role only.';

revoke execute on function dragonfly.enforce_plan_input(uuid, boolean) from public;
grant execute on function dragonfly.enforce_plan_input(uuid, boolean) to service_role, dragonfly_worker;

create function dragonfly.enforcement_sla_due(p_now timestamptz, p_limit integer)
returns table (case_id uuid, next_action_at timestamptz)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if p_now is null then
        raise exception using errcode = '22023', message = 'enforcement_sla_due: p_now is required';
    end if;
    if p_limit is null or p_limit < 1 then
        raise exception using errcode = '22023', message = 'enforcement_sla_due: p_limit must be at least 1';
    end if;
    -- Served by enforcement_cases_next_action_idx (partial on open cases).
    return query
        select c.id, c.next_action_at
          from public.enforcement_cases as c
         where c.closed_at is null
           and c.next_action_at <= p_now
         order by c.next_action_at, c.id
         limit p_limit;
end;
$$;

comment on function dragonfly.enforcement_sla_due(timestamptz, integer) is
    'Open enforcement cases whose next_action_at is at or before p_now, oldest first, at most '
    'p_limit: what the scheduler''s SLA sweep enqueues plan jobs for. Fleet and service_role only.';

revoke execute on function dragonfly.enforcement_sla_due(timestamptz, integer) from public;
grant execute on function dragonfly.enforcement_sla_due(timestamptz, integer) to service_role, dragonfly_worker;
