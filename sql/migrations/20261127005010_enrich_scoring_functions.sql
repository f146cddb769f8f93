-- The two database calls of an enrich job (workers/enrich/handler.py, docs/scoring.md).
--
-- Why functions and not queries assembled in Python: an enrich job must be cheap (the
-- benchmark runs thousands per second), so each of its two steps is one round trip:
--
--   enrichment.prepare_scoring(case_id, bundle, lock)  locks the case, stores the bundle through
--       upsert_enrichment_bundle() plus the bundle's signals, and returns the facts the
--       scoring model needs (counts of contacts and assets, identity and adverse signals,
--       judgment age and balance) with the case's current tier;
--   enrichment.record_case_scores(case_id, ...)   maps the score to a tier through
--       enforcement_tier_lookup, persists it as set_case_scores() and set_case_enrichment()
--       would (their checks and columns, in one UPDATE of the row), carries score and tier over to the judgment's open
--       enforcement case (tier, tier_reason, tier_as_of, collectability_score: what the
--       planner reads), and returns the previous and new tiers, so the worker can enqueue
--       a plan job for the enforcement case when its tier changed.
--
-- The model itself stays in Python (workers/enrich/scoring.py), where its weights live.
-- Both functions lock the judgments.cases row first (FOR NO KEY UPDATE), so two enrich
-- jobs for one case run one after the other and the second scores what the first stored.
-- SECURITY DEFINER with an empty search_path: the fleet needs EXECUTE only, no table rights.
--
-- prepare_scoring runs with enable_seqscan = off: each of its statements (and those of
-- upsert_enrichment_bundle it calls) reads one case's rows through an index led by the case
-- id. PL/pgSQL caches its plans for the life of a worker's session; planned while the
-- enrichment tables were still empty (a fresh install, the first minute of an import) they
-- were sequential scans, and stayed so as the tables grew until autovacuum's next ANALYZE:
-- each job then read every row. jit = off as well: a statement with no index path would
-- otherwise carry the disabled-seqscan cost penalty past jit_above_cost and be compiled on
-- every call (~15 ms). record_case_scores keeps the defaults: its tier lookup scans the
-- four-row lookup table.
--
-- Errors: 22023 invalid argument (the message names it), P0002 unknown case; errors of
-- upsert_enrichment_bundle(), set_case_scores() and set_case_enrichment() pass through.

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
        select true into v_found from judgments.cases as c where c.id = p_case_id for no key update;
    else
        select true into v_found from judgments.cases as c where c.id = p_case_id;
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
            insert into enrichment.case_signals as s
                (case_id, source, identity_confidence, bankruptcy, deceased)
            values (
                p_case_id,
                coalesce(nullif(pg_catalog.btrim(p_bundle ->> 'source'), ''), 'vendor'),
                (v_signals ->> 'identity_confidence')::numeric(3, 2),
                coalesce((v_signals ->> 'bankruptcy')::boolean, false),
                coalesce((v_signals ->> 'deceased')::boolean, false)
            )
            on conflict (case_id, source) do update
                set identity_confidence = excluded.identity_confidence,
                    bankruptcy = excluded.bankruptcy,
                    deceased = excluded.deceased
                where (s.identity_confidence, s.bankruptcy, s.deceased)
                      is distinct from (excluded.identity_confidence, excluded.bankruptcy, excluded.deceased);
        elsif v_signals is not null and pg_catalog.jsonb_typeof(v_signals) <> 'null' then
            raise exception using
                errcode = '22023',
                message = 'prepare_scoring: p_bundle.signals must be a JSON object';
        end if;
    end if;

    -- Everything the model reads, in one statement (this runs thousands of times a second).
    select pg_catalog.jsonb_build_object(
               'case', pg_catalog.jsonb_build_object(
                   'case_id', c.id,
                   'case_number', c.case_number,
                   'judgment_id', j.id,
                   'debtor_name', j.debtor_name,
                   'state', coalesce(c.state, j.state),
                   'county', coalesce(c.county, j.county),
                   'previous_tier', c.collectability_tier
               ),
               'stored', v_stored,
               'inputs', pg_catalog.jsonb_build_object(
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
           )
      into v_result
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
     where c.id = p_case_id;

    return v_result;
end;
$$;

comment on function enrichment.prepare_scoring(uuid, jsonb, boolean) is
    'Step 1 of an enrich job: lock the case (judgments.cases.id; p_lock = false only reads, for the '
    'context a vendor call needs), store p_bundle when given (contacts '
    'and assets through upsert_enrichment_bundle(), signals into enrichment.case_signals) and return '
    '{"case": {...context, previous_tier}, "stored": <upsert counts or null>, "inputs": {...the '
    'scoring model''s facts}}. Service role and fleet only; 22023 bad argument, P0002 unknown case.';

revoke execute on function enrichment.prepare_scoring(uuid, jsonb, boolean) from public, anon, authenticated;
grant execute on function enrichment.prepare_scoring(uuid, jsonb, boolean) to service_role, dragonfly_worker;

create or replace function enrichment.record_case_scores(
    p_case_id uuid,
    p_identity_score numeric,
    p_contactability_score numeric,
    p_asset_score numeric,
    p_recency_amount_score numeric,
    p_adverse_penalty numeric,
    p_collectability_score numeric,
    p_summary text default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_previous text;
    v_judgment_id uuid;
    v_tier text;
    v_enforcement_id uuid;
    v_enforcement_tier text;
    v_enforcement_score numeric;
    v_names constant text[] := array[
        'p_identity_score', 'p_contactability_score', 'p_asset_score', 'p_recency_amount_score',
        'p_adverse_penalty', 'p_collectability_score'
    ];
    v_values numeric[] := array[
        p_identity_score, p_contactability_score, p_asset_score, p_recency_amount_score,
        p_adverse_penalty, p_collectability_score
    ];
begin
    if p_case_id is null then
        raise exception using errcode = '22023', message = 'record_case_scores: p_case_id is required';
    end if;
    if p_collectability_score is null or p_collectability_score < 0 or p_collectability_score > 100 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'record_case_scores: p_collectability_score must be between 0 and 100 (got %s)',
                coalesce(p_collectability_score::text, 'null')
            );
    end if;

    select c.collectability_tier, c.judgment_id
      into v_previous, v_judgment_id
      from judgments.cases as c
     where c.id = p_case_id
       for no key update;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('record_case_scores: case %s not found in judgments.cases', p_case_id);
    end if;

    -- The band with the greatest min_score not above the score (docs/schema.md).
    select t.tier
      into v_tier
      from public.enforcement_tier_lookup as t
     where t.min_score <= p_collectability_score
     order by t.min_score desc
     limit 1;

    -- What set_case_scores() and set_case_enrichment() would do, in one UPDATE of the row
    -- (one new row version, one run of its row triggers): the same checks with the same
    -- messages, the same columns. The tier comes from the lookup, so it needs no check.
    for i in 1 .. pg_catalog.array_length(v_names, 1) loop
        if v_values[i] is null or v_values[i] < 0 or v_values[i] > 100 then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'set_case_scores: %s must be between 0 and 100 (got %s)',
                    v_names[i], coalesce(v_values[i]::text, 'null')
                );
        end if;
    end loop;
    if pg_catalog.length(p_summary) > 20000 then
        raise exception using
            errcode = '22023', message = 'set_case_enrichment: p_summary must be at most 20000 characters';
    end if;

    update judgments.cases as c
       set identity_score = pg_catalog.round(p_identity_score, 2),
           contactability_score = pg_catalog.round(p_contactability_score, 2),
           asset_score = pg_catalog.round(p_asset_score, 2),
           recency_amount_score = pg_catalog.round(p_recency_amount_score, 2),
           adverse_penalty = pg_catalog.round(p_adverse_penalty, 2),
           collectability_score = pg_catalog.round(p_collectability_score, 2),
           collectability_tier = v_tier,
           enrichment_summary = coalesce(nullif(pg_catalog.btrim(p_summary), ''), c.enrichment_summary),
           last_scored_at = pg_catalog.now(),
           last_enriched_at = pg_catalog.now()
     where c.id = p_case_id;

    -- The judgment's open enforcement case (at most one) carries the automated tier the
    -- planner reads; keep it in step. tier_override is left alone: it still wins while live.
    select e.id, e.tier, e.collectability_score
      into v_enforcement_id, v_enforcement_tier, v_enforcement_score
      from public.enforcement_cases as e
     where e.judgment_id = v_judgment_id
       and e.closed_at is null
       for no key update;

    if v_enforcement_id is not null
       and (v_enforcement_tier, v_enforcement_score)
           is distinct from (v_tier, pg_catalog.round(p_collectability_score, 2)) then
        update public.enforcement_cases as e
           set tier = v_tier,
               tier_reason = pg_catalog.format('collectability %s (enrich)', pg_catalog.round(p_collectability_score, 2)),
               tier_as_of = pg_catalog.now(),
               collectability_score = pg_catalog.round(p_collectability_score, 2)
         where e.id = v_enforcement_id;
    end if;

    return pg_catalog.jsonb_build_object(
        'previous_tier', v_previous,
        'tier', v_tier,
        'tier_changed', v_previous is distinct from v_tier,
        'enforcement_case_id', v_enforcement_id,
        'enforcement_previous_tier', v_enforcement_tier,
        'enforcement_tier_changed', v_enforcement_id is not null and v_enforcement_tier is distinct from v_tier
    );
end;
$$;

comment on function enrichment.record_case_scores(uuid, numeric, numeric, numeric, numeric, numeric, numeric, text) is
    'Step 2 of an enrich job: map the collectability score to its tier through enforcement_tier_lookup, '
    'persist the breakdown, score, tier and summary as set_case_scores() and set_case_enrichment() would '
    '(one UPDATE), copy score and tier to the judgment''s open enforcement case, and return '
    '{"previous_tier", "tier", "tier_changed", "enforcement_case_id", "enforcement_previous_tier", '
    '"enforcement_tier_changed"}. Service role and fleet only; 22023 bad argument, P0002 unknown case.';

revoke execute on function enrichment.record_case_scores(uuid, numeric, numeric, numeric, numeric, numeric, numeric, text)
    from public, anon, authenticated;
grant execute on function enrichment.record_case_scores(uuid, numeric, numeric, numeric, numeric, numeric, numeric, text)
    to service_role, dragonfly_worker;
