-- The database functions the workers call find rows only in the caller's tenants.
--
-- Why: a worker acts for one job at a time and sets dragonfly.acting_tenant to the job's
-- tenant (the envelope's "tenant", 20261203120000_job_tenants.sql) for exactly that job, so
-- tenancy.caller_tenants() answers that one tenant (docs/worker-runtime.md, "Tenants"). The
-- enforcement RPCs already ask it through enforcement_private.lock_case()
-- (20261203090000_tenants.sql); the SECURITY DEFINER readers and writers below ran as their
-- owner and found any row by id. A job whose row is not in its tenant (a forged or misrouted
-- envelope) now finds nothing: P0002, the answer for a row that does not exist, which the
-- worker dead-letters as permanent, with no effect. Without a narrowing (the fleet outside a
-- job, service_role, an internal job that crosses tenants) they reach every tenant, as
-- before.
--
-- Each function is redefined with create or replace from its latest definition (named above
-- it) and only the tenant condition added, except enforcement_sla_due(), which also returns
-- each case's tenant so the SLA sweep names it in the job (a new result column: dropped and
-- created again).
--
-- In statements over several rows the tenants are read once, as an InitPlan
-- ((select tenancy.caller_tenants(...))::uuid[]), not once per row.

-- enforcement_sla_due(): as in 20261127005510, with each case's tenant, in the caller's read
-- tenants.
drop function dragonfly.enforcement_sla_due(timestamptz, integer);

create function dragonfly.enforcement_sla_due(p_now timestamptz, p_limit integer)
returns table (case_id uuid, next_action_at timestamptz, tenant_id uuid)
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
        select c.id, c.next_action_at, c.tenant_id
          from public.enforcement_cases as c
         where c.closed_at is null
           and c.next_action_at <= p_now
           and c.tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[])
         order by c.next_action_at, c.id
         limit p_limit;
end;
$$;

comment on function dragonfly.enforcement_sla_due(timestamptz, integer) is
    'Open enforcement cases whose next_action_at is at or before p_now, oldest first, at most '
    'p_limit, with their tenant: what the scheduler''s SLA sweep enqueues plan jobs for (each in its '
    'case''s tenant). Only cases of the caller''s read tenants. Fleet and service_role only.';

revoke execute on function dragonfly.enforcement_sla_due(timestamptz, integer) from public;
grant execute on function dragonfly.enforcement_sla_due(timestamptz, integer) to service_role, dragonfly_worker;

-- case_copilot_context(): as in 20261127005530; the case is found only in the caller's read
-- tenants (a worker acting for a job reaches the job's tenant alone), else P0002 as for a
-- case that does not exist. Everything else it reads hangs off that case.
create or replace function dragonfly.case_copilot_context(p_case_id uuid, p_timeline_limit integer default 25)
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

    select c.* into v_case
      from public.enforcement_cases as c
     where c.id = p_case_id
       and c.tenant_id = any (tenancy.caller_tenants('read'));
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

-- enforce_plan_input(): as in 20261127005510; the case is found (and locked) only in the
-- caller's tenants: read tenants to read, write tenants to lock. Other tenants' rows are
-- filtered before the lock, so a forged job never waits on (or learns of) another tenant's
-- case: P0002, as for a case that does not exist.
create or replace function dragonfly.enforce_plan_input(p_case_id uuid, p_lock boolean default false)
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
           and c.tenant_id = any (tenancy.caller_tenants('write'))
           for no key update;
    else
        select c.* into v_case from public.enforcement_cases as c
         where c.id = p_case_id
           and c.tenant_id = any (tenancy.caller_tenants('read'));
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

-- lock_enforcement_cases(): as in 20261202120100; only cases of the caller's write tenants are
-- locked and counted (the enforce worker calls it per tenant of a batch).
create or replace function dragonfly.lock_enforcement_cases(p_case_ids uuid[])
returns integer
language sql
volatile
security definer
set search_path = ''
as $$
    select pg_catalog.count(*)::integer
      from (select c.id
              from public.enforcement_cases as c
             where c.id = any (p_case_ids)
               and c.tenant_id = any ((select tenancy.caller_tenants('write'))::uuid[])
             order by c.id
               for no key update) as locked
$$;

-- The enrich functions (20261127005010): each finds its court cases only in the caller's
-- tenants (read to read, write to lock), so a case of another tenant is P0002 (or, in a
-- batch, a job left to the single path, which then fails it with P0002), exactly like a case
-- that does not exist, and nothing is written for it. The rest is unchanged.
create or replace function enrichment.scoring_inputs(p_case_ids uuid[])
returns table (case_id uuid, context jsonb, inputs jsonb)
language plpgsql
stable
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
set plan_cache_mode = force_generic_plan
as $$
begin
    return query
    select c.id,
           pg_catalog.jsonb_build_object(
               'case_id', c.id,
               'case_number', c.case_number,
               'judgment_id', j.id,
               'debtor_name', j.debtor_name,
               'state', coalesce(c.state, j.state),
               'county', coalesce(c.county, j.county),
               'previous_tier', c.collectability_tier
           ),
           pg_catalog.jsonb_build_object(
               'debtor_entity_linked', j.debtor_entity_id is not null,
               'debtor_tax_id_last4', e.tax_id_last4 is not null,
               'debtor_birth_year', e.birth_year is not null,
               'debtor_address', e.address_line1 is not null or k.addresses > 0,
               'identity_confidence', sg.identity_confidence,
               'phones', k.phones,
               'emails', k.emails,
               'addresses', k.addresses,
               'verified_contacts', k.verified,
               'best_contact_confidence', k.best_confidence,
               'banks', a.banks,
               'employers', a.employers,
               'real_properties', a.real_properties,
               'vehicles', a.vehicles,
               'other_assets', a.other_assets,
               'asset_value', a.asset_value,
               'judgment_age_years', case
                   when j.judgment_date is null then null
                   else pg_catalog.round(greatest(0, current_date - j.judgment_date) / 365.25, 4)
               end,
               'balance_due', j.balance_due,
               'judgment_inactive', j.status <> 'active',
               'deceased', sg.deceased,
               'bankruptcy', sg.bankruptcy,
               'other_judgments', o.other_judgments
           )
      from judgments.cases as c
      join public.judgments as j on j.id = c.judgment_id
      left join public.entities as e on e.id = j.debtor_entity_id
     cross join lateral (
            select pg_catalog.count(*) filter (where x.contact_type = 'phone') as phones,
                   pg_catalog.count(*) filter (where x.contact_type = 'email') as emails,
                   pg_catalog.count(*) filter (where x.contact_type = 'address') as addresses,
                   pg_catalog.count(*) filter (where x.is_verified) as verified,
                   coalesce(pg_catalog.max(x.confidence), 0) as best_confidence
              from enrichment.contacts as x
             where x.case_id = c.id
           ) as k
     cross join lateral (
            select pg_catalog.count(*) filter (where x.asset_type = 'bank') as banks,
                   pg_catalog.count(*) filter (where x.asset_type = 'employer') as employers,
                   pg_catalog.count(*) filter (where x.asset_type = 'real_property') as real_properties,
                   pg_catalog.count(*) filter (where x.asset_type = 'vehicle') as vehicles,
                   pg_catalog.count(*) filter (where x.asset_type = 'other') as other_assets,
                   coalesce(pg_catalog.sum(x.estimated_value), 0) as asset_value
              from enrichment.assets as x
             where x.case_id = c.id
           ) as a
     cross join lateral (
            select coalesce(pg_catalog.max(x.identity_confidence), 0) as identity_confidence,
                   coalesce(pg_catalog.bool_or(x.bankruptcy), false) as bankruptcy,
                   coalesce(pg_catalog.bool_or(x.deceased), false) as deceased
              from enrichment.case_signals as x
             where x.case_id = c.id
           ) as sg
     cross join lateral (
            select pg_catalog.count(*) as other_judgments
              from public.judgments as x
             where j.debtor_entity_id is not null
               and x.debtor_entity_id = j.debtor_entity_id
               and x.id <> j.id
               and x.status = 'active'
           ) as o
     where c.id = any (p_case_ids)
       and c.tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]);
end;
$$;


create or replace function enrichment.prepare_scoring(
    p_case_id uuid,
    p_bundle jsonb default null,
    p_lock boolean default true
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
as $$
declare
    v_found boolean;
    v_signals jsonb;
    v_stored jsonb;
    v_result jsonb;
begin
    if p_case_id is null then
        raise exception using errcode = '22023', message = 'prepare_scoring: p_case_id is required';
    end if;
    if p_bundle is not null and pg_catalog.jsonb_typeof(p_bundle) <> 'object' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'prepare_scoring: p_bundle must be a JSON object (got %s)',
                pg_catalog.jsonb_typeof(p_bundle)
            );
    end if;

    if p_bundle is not null and p_lock is not true then
        raise exception using
            errcode = '22023',
            message = 'prepare_scoring: storing a bundle needs p_lock = true';
    end if;

    if p_lock then
        select true into v_found
          from judgments.cases as c
         where c.id = p_case_id and c.tenant_id = any (tenancy.caller_tenants('write'))
           for no key update;
    else
        select true into v_found
          from judgments.cases as c
         where c.id = p_case_id and c.tenant_id = any (tenancy.caller_tenants('read'));
    end if;
    if v_found is null then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('prepare_scoring: case %s not found in judgments.cases', p_case_id);
    end if;

    if p_bundle is not null then
        v_stored := public.upsert_enrichment_bundle(
            (p_bundle - 'signals') || pg_catalog.jsonb_build_object('case_id', p_case_id)
        );

        v_signals := p_bundle -> 'signals';
        if v_signals is not null and pg_catalog.jsonb_typeof(v_signals) = 'object' then
            perform enrichment.merge_case_signals(pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('case_id', p_case_id, 'bundle', p_bundle)
            ));
        elsif v_signals is not null and pg_catalog.jsonb_typeof(v_signals) <> 'null' then
            raise exception using
                errcode = '22023',
                message = 'prepare_scoring: p_bundle.signals must be a JSON object';
        end if;
    end if;

    select pg_catalog.jsonb_build_object('case', s.context, 'stored', v_stored, 'inputs', s.inputs)
      into v_result
      from enrichment.scoring_inputs(array[p_case_id]) as s;

    return v_result;
end;
$$;


create or replace function enrichment.prepare_scoring_batch(p_jobs jsonb)
returns table (ref bigint, error text, prepared jsonb)
language plpgsql
volatile
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
set plan_cache_mode = force_generic_plan
as $$
declare
    v_refs bigint[];
    v_case_ids uuid[];
    v_errors text[];
    v_refused jsonb;
    v_stored jsonb;
begin
    if p_jobs is null or pg_catalog.jsonb_typeof(p_jobs) <> 'array' then
        raise exception using errcode = '22023', message = 'prepare_scoring_batch: p_jobs must be a JSON array';
    end if;

    -- 1. Lock the cases (id order) and decide which jobs can be merged here. Arrays follow
    --    the jobs' order.
    with jobs as (
        select e.ordinality as pos,
               (e.value ->> 'ref')::bigint as ref,
               (e.value ->> 'case_id')::uuid as case_id,
               e.value -> 'bundle' as bundle
          from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e
    ),
    locked as materialized (
        select c.id
          from judgments.cases as c
         where c.id = any (array(select j.case_id from jobs as j))
           and c.tenant_id = any ((select tenancy.caller_tenants('write'))::uuid[])
         order by c.id
           for no key update
    ),
    checked as (
        select j.pos, j.ref, j.case_id,
               case
                   when l.id is null then
                       pg_catalog.format('prepare_scoring_batch: case %s not found in judgments.cases', j.case_id)
                   when pg_catalog.row_number() over (partition by j.case_id order by j.pos) > 1 then
                       pg_catalog.format('prepare_scoring_batch: case %s is in an earlier job of this batch', j.case_id)
                   when j.bundle is null or pg_catalog.jsonb_typeof(j.bundle) = 'null' then null
                   when pg_catalog.jsonb_typeof(j.bundle) <> 'object' then
                       'prepare_scoring_batch: bundle must be a JSON object'
                   when pg_catalog.jsonb_typeof(j.bundle -> 'signals') not in ('object', 'null') then
                       'prepare_scoring_batch: bundle.signals must be a JSON object'
                   when pg_catalog.jsonb_typeof(j.bundle -> 'signals') = 'object'
                        and not (
                            coalesce(pg_catalog.jsonb_typeof(j.bundle -> 'signals' -> 'identity_confidence'), 'null')
                                in ('number', 'null')
                            and coalesce(pg_catalog.jsonb_typeof(j.bundle -> 'signals' -> 'bankruptcy'), 'null')
                                in ('boolean', 'null')
                            and coalesce(pg_catalog.jsonb_typeof(j.bundle -> 'signals' -> 'deceased'), 'null')
                                in ('boolean', 'null')
                        ) then
                       'prepare_scoring_batch: signals other than JSON numbers and booleans are left to prepare_scoring'
                   when pg_catalog.jsonb_typeof(j.bundle -> 'signals' -> 'identity_confidence') = 'number'
                        and pg_catalog.round((j.bundle -> 'signals' ->> 'identity_confidence')::numeric, 2)
                            not between 0 and 1 then
                       'prepare_scoring_batch: signals.identity_confidence must be between 0 and 1'
               end as error
          from jobs as j
          left join locked as l on l.id = j.case_id
    )
    select pg_catalog.array_agg(k.ref order by k.pos),
           pg_catalog.array_agg(k.case_id order by k.pos),
           pg_catalog.array_agg(k.error order by k.pos)
      into v_refs, v_case_ids, v_errors
      from checked as k;

    if v_refs is null then
        return;
    end if;
    if pg_catalog.array_position(v_refs, null) is not null or pg_catalog.array_position(v_case_ids, null) is not null
       or (select pg_catalog.count(distinct r) from pg_catalog.unnest(v_refs) as r) <> pg_catalog.cardinality(v_refs) then
        raise exception using
            errcode = '22023',
            message = 'prepare_scoring_batch: every job needs an integer ref (each once) and a case_id';
    end if;

    -- 2. Contacts and assets of every bundle, through the one implementation of
    --    upsert_enrichment_bundle; a bundle it refuses is not written.
    select coalesce(pg_catalog.jsonb_object_agg(m.ref::text, m.error) filter (where m.error is not null), '{}'),
           coalesce(pg_catalog.jsonb_object_agg(m.ref::text, m.stored) filter (where m.error is null), '{}')
      into v_refused, v_stored
      from enrichment.merge_bundles((
               select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                          'ref', v_refs[e.ordinality],
                          'bundle', ((e.value -> 'bundle') - 'signals')
                                    || pg_catalog.jsonb_build_object('case_id', v_case_ids[e.ordinality])
                      ) order by e.ordinality), '[]'::jsonb)
                 from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e
                where v_errors[e.ordinality] is null
                  and pg_catalog.jsonb_typeof(e.value -> 'bundle') = 'object'
           )) as m;

    -- 3. Their signals, for the bundles stored.
    perform enrichment.merge_case_signals(coalesce((
        select pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'case_id', v_case_ids[e.ordinality], 'bundle', e.value -> 'bundle'))
          from pg_catalog.jsonb_array_elements(p_jobs) with ordinality as e
         where v_errors[e.ordinality] is null
           and pg_catalog.jsonb_typeof(e.value -> 'bundle' -> 'signals') = 'object'
           and v_stored ? v_refs[e.ordinality]::text
    ), '[]'::jsonb));

    -- 4. What the model reads, for every job left standing.
    return query
    select j.ref,
           coalesce(j.error, v_refused ->> j.ref::text),
           case when coalesce(j.error, v_refused ->> j.ref::text) is null then
               pg_catalog.jsonb_build_object(
                   'case', s.context,
                   'stored', v_stored -> j.ref::text,
                   'inputs', s.inputs
               )
           end
      from rows from (pg_catalog.unnest(v_refs), pg_catalog.unnest(v_case_ids), pg_catalog.unnest(v_errors))
           with ordinality as j(ref, case_id, error, pos)
      left join enrichment.scoring_inputs((
               select pg_catalog.array_agg(x.case_id)
                 from rows from (pg_catalog.unnest(v_case_ids), pg_catalog.unnest(v_errors)) as x(case_id, error)
                where x.error is null
           )) as s on s.case_id = j.case_id and j.error is null
     order by j.pos;
end;
$$;


create or replace function enrichment.record_case_scores_batch(p_scores jsonb)
returns table (case_id uuid, recorded jsonb)
language plpgsql
volatile
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
set plan_cache_mode = force_generic_plan
as $$
declare
    v_errcode text;
    v_message text;
    -- Per entry, in p_scores' order.
    v_case_ids uuid[];
    v_judgment_ids uuid[];
    v_previous text[];
    v_tiers text[];
    v_identity numeric[];
    v_contactability numeric[];
    v_asset numeric[];
    v_recency numeric[];
    v_penalty numeric[];
    v_score numeric[];
    v_summary text[];
    -- Per open enforcement case of those judgments.
    v_enforcement_ids uuid[];
    v_enforcement_judgments uuid[];
    v_enforcement_tiers text[];
    v_enforcement_scores numeric[];
begin
    if p_scores is null or pg_catalog.jsonb_typeof(p_scores) <> 'array' then
        raise exception using errcode = '22023', message = 'record_case_scores_batch: p_scores must be a JSON array';
    end if;

    -- 1. Lock the cases (id order), read their previous tiers, map each score to its tier (the
    --    band with the greatest min_score not above it, docs/schema.md) and check every entry
    --    with the checks and messages of record_case_scores, in its order. Nothing is written
    --    yet. The statements below work from these arrays: each table is reached through its
    --    key index by one "= any (array)" scan or one probe per row, never by scanning it.
    with scores as (
        select e.ordinality as pos, x.*,
               pg_catalog.count(*) over (partition by x.case_id) as copies
          from pg_catalog.jsonb_array_elements(p_scores) with ordinality as e
         cross join lateral pg_catalog.jsonb_to_record(e.value) as x(
                   case_id uuid, identity_score numeric, contactability_score numeric, asset_score numeric,
                   recency_amount_score numeric, adverse_penalty numeric, collectability_score numeric,
                   summary text)
    ),
    locked as materialized (
        select c.id, c.collectability_tier, c.judgment_id
          from judgments.cases as c
         where c.id = any (array(select s.case_id from scores as s))
           and c.tenant_id = any ((select tenancy.caller_tenants('write'))::uuid[])
         order by c.id
           for no key update
    ),
    checked as (
        select s.*, l.collectability_tier as previous_tier, l.judgment_id, p0.errcode, p0.message,
               (select t.tier
                  from public.enforcement_tier_lookup as t
                 where t.min_score <= s.collectability_score
                 order by t.min_score desc
                 limit 1) as tier
          from scores as s
          left join locked as l on l.id = s.case_id
          left join lateral (
                select v.name, v.value
                  from (values (1, 'p_identity_score', s.identity_score),
                               (2, 'p_contactability_score', s.contactability_score),
                               (3, 'p_asset_score', s.asset_score),
                               (4, 'p_recency_amount_score', s.recency_amount_score),
                               (5, 'p_adverse_penalty', s.adverse_penalty),
                               (6, 'p_collectability_score', s.collectability_score)) as v(i, name, value)
                 where v.value is null or v.value < 0 or v.value > 100
                 order by v.i
                 limit 1
               ) as p on true
         cross join lateral (
                select case
                           when s.case_id is null then '22023'
                           when s.collectability_score is null or s.collectability_score < 0
                                or s.collectability_score > 100 then '22023'
                           when l.id is null then 'P0002'
                           when p.name is not null then '22023'
                           when pg_catalog.length(s.summary) > 20000 then '22023'
                           when s.copies > 1 then '22023'
                       end as errcode,
                       case
                           when s.case_id is null then 'record_case_scores: p_case_id is required'
                           when s.collectability_score is null or s.collectability_score < 0
                                or s.collectability_score > 100 then
                               pg_catalog.format(
                                   'record_case_scores: p_collectability_score must be between 0 and 100 (got %s)',
                                   coalesce(s.collectability_score::text, 'null'))
                           when l.id is null then
                               pg_catalog.format('record_case_scores: case %s not found in judgments.cases', s.case_id)
                           -- The checks of set_case_scores() and set_case_enrichment(), same messages.
                           when p.name is not null then
                               pg_catalog.format('set_case_scores: %s must be between 0 and 100 (got %s)',
                                                 p.name, coalesce(p.value::text, 'null'))
                           when pg_catalog.length(s.summary) > 20000 then
                               'set_case_enrichment: p_summary must be at most 20000 characters'
                           when s.copies > 1 then
                               pg_catalog.format('record_case_scores_batch: case %s is in p_scores more than once',
                                                 s.case_id)
                       end as message
               ) as p0
    )
    select (pg_catalog.array_agg(k.errcode order by k.pos) filter (where k.message is not null))[1],
           (pg_catalog.array_agg(k.message order by k.pos) filter (where k.message is not null))[1],
           pg_catalog.array_agg(k.case_id order by k.pos),
           pg_catalog.array_agg(k.judgment_id order by k.pos),
           pg_catalog.array_agg(k.previous_tier order by k.pos),
           pg_catalog.array_agg(k.tier order by k.pos),
           pg_catalog.array_agg(pg_catalog.round(k.identity_score, 2) order by k.pos),
           pg_catalog.array_agg(pg_catalog.round(k.contactability_score, 2) order by k.pos),
           pg_catalog.array_agg(pg_catalog.round(k.asset_score, 2) order by k.pos),
           pg_catalog.array_agg(pg_catalog.round(k.recency_amount_score, 2) order by k.pos),
           pg_catalog.array_agg(pg_catalog.round(k.adverse_penalty, 2) order by k.pos),
           pg_catalog.array_agg(pg_catalog.round(k.collectability_score, 2) order by k.pos),
           pg_catalog.array_agg(k.summary order by k.pos)
      into v_errcode, v_message, v_case_ids, v_judgment_ids, v_previous, v_tiers, v_identity,
           v_contactability, v_asset, v_recency, v_penalty, v_score, v_summary
      from checked as k;
    if v_message is not null then
        raise exception using errcode = v_errcode, message = v_message;
    end if;
    if v_case_ids is null then
        return;
    end if;

    -- 2. What set_case_scores() and set_case_enrichment() would write, in one UPDATE of each
    --    row (one new row version, one run of its row triggers).
    update judgments.cases as c
       set identity_score = s.identity_score,
           contactability_score = s.contactability_score,
           asset_score = s.asset_score,
           recency_amount_score = s.recency_amount_score,
           adverse_penalty = s.adverse_penalty,
           collectability_score = s.collectability_score,
           collectability_tier = s.tier,
           enrichment_summary = coalesce(nullif(pg_catalog.btrim(s.summary), ''), c.enrichment_summary),
           last_scored_at = pg_catalog.now(),
           last_enriched_at = pg_catalog.now()
      from rows from (
               pg_catalog.unnest(v_case_ids), pg_catalog.unnest(v_tiers), pg_catalog.unnest(v_identity),
               pg_catalog.unnest(v_contactability), pg_catalog.unnest(v_asset), pg_catalog.unnest(v_recency),
               pg_catalog.unnest(v_penalty), pg_catalog.unnest(v_score), pg_catalog.unnest(v_summary)
           ) as s(case_id, tier, identity_score, contactability_score, asset_score, recency_amount_score,
                  adverse_penalty, collectability_score, summary)
     where c.id = s.case_id;

    -- 3. The judgments' open enforcement cases (at most one each) carry the automated tier the
    --    planner reads; keep them in step. tier_override is left alone: it still wins while live.
    --    Locked in id order after the court cases, as record_case_scores does for one.
    select pg_catalog.array_agg(e.id order by e.id),
           pg_catalog.array_agg(e.judgment_id order by e.id),
           pg_catalog.array_agg(e.tier order by e.id),
           pg_catalog.array_agg(e.collectability_score order by e.id)
      into v_enforcement_ids, v_enforcement_judgments, v_enforcement_tiers, v_enforcement_scores
      from (
            select e.id, e.judgment_id, e.tier, e.collectability_score
              from public.enforcement_cases as e
             where e.judgment_id = any (v_judgment_ids)
               and e.closed_at is null
             order by e.id
               for no key update
           ) as e;

    if v_enforcement_ids is not null then
        update public.enforcement_cases as e
           set tier = k.tier,
               tier_reason = pg_catalog.format('collectability %s (enrich)', k.score),
               tier_as_of = pg_catalog.now(),
               collectability_score = k.score
          from rows from (
                   pg_catalog.unnest(v_enforcement_ids), pg_catalog.unnest(v_enforcement_judgments),
                   pg_catalog.unnest(v_enforcement_tiers), pg_catalog.unnest(v_enforcement_scores)
               ) as x(id, judgment_id, tier, score)
          join rows from (pg_catalog.unnest(v_judgment_ids), pg_catalog.unnest(v_tiers), pg_catalog.unnest(v_score))
               as k(judgment_id, tier, score) on k.judgment_id = x.judgment_id
         where e.id = x.id
           and (x.tier, x.score) is distinct from (k.tier, k.score);
    end if;

    return query
    select s.case_id,
           pg_catalog.jsonb_build_object(
               'previous_tier', s.previous_tier,
               'tier', s.tier,
               'tier_changed', s.previous_tier is distinct from s.tier,
               'enforcement_case_id', x.id,
               'enforcement_previous_tier', x.tier,
               'enforcement_tier_changed', x.id is not null and x.tier is distinct from s.tier
           )
      from rows from (pg_catalog.unnest(v_case_ids), pg_catalog.unnest(v_judgment_ids),
                      pg_catalog.unnest(v_previous), pg_catalog.unnest(v_tiers))
           with ordinality as s(case_id, judgment_id, previous_tier, tier, pos)
      left join rows from (pg_catalog.unnest(v_enforcement_ids), pg_catalog.unnest(v_enforcement_judgments),
                           pg_catalog.unnest(v_enforcement_tiers))
           as x(id, judgment_id, tier) on x.judgment_id = s.judgment_id
     order by s.pos;
end;
$$;

-- The outreach functions (begin_outreach, begin_outreach_email, record_outreach_attempt,
-- settle_outreach_email) are narrowed in 20261203100200_fleet_rpcs_tenant_checks.sql: the
-- plaintiff and every lookup by key keep to the caller's write tenants.
