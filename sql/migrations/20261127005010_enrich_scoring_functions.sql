-- The database calls of an enrich job (workers/enrich/handler.py, docs/scoring.md).
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
-- The batch path (the runtime hands the enrich kind a whole batch of jobs at once) makes the
-- same two steps for many jobs in two calls:
--
--   enrichment.prepare_scoring_batch(jobs)   locks all the jobs' cases (in id order, so two
--       workers cannot deadlock), merges every valid bundle in a few set-based statements and
--       returns per job either the same {"case", "stored", "inputs"} as prepare_scoring or an
--       error, in which case nothing was written for that job (the worker then runs it alone
--       through prepare_scoring, which reports the problem the usual way);
--   enrichment.record_case_scores_batch(scores)  record_case_scores for many cases at once.
--
-- One implementation serves both paths, so they cannot drift apart: the bundle's validation,
-- normalization and merge are enrichment.merge_bundles() (20261127003400, behind
-- upsert_enrichment_bundle), the signals' merge is enrichment.merge_case_signals(), the model's
-- inputs are enrichment.scoring_inputs(), and record_case_scores() is
-- record_case_scores_batch() of one case. Set-based statements cost more to start than
-- PL/pgSQL's simple expressions but nearly nothing per extra row, so one job alone pays a
-- little more than it did with per-item code and a batch of 200 pays far less per job
-- (docs/scoring.md, "Performance").
--
-- The model itself stays in Python (workers/enrich/scoring.py), where its weights live.
-- Both steps lock the judgments.cases row first (FOR NO KEY UPDATE), so two enrich
-- jobs for one case run one after the other and the second scores what the first stored.
-- SECURITY DEFINER with an empty search_path: the fleet needs EXECUTE only, no table rights.
--
-- The functions run with enable_seqscan = off: each of their statements reads the rows of
-- the given cases through an index led by the case id. PL/pgSQL caches its plans for the
-- life of a worker's session; planned while the enrichment tables were still empty (a fresh
-- install, the first minute of an import) they were sequential scans, and stayed so as the
-- tables grew until autovacuum's next ANALYZE: each job then read every row. jit = off as
-- well: a statement with no index path (the four-row tier lookup) would otherwise carry the
-- disabled-seqscan cost penalty past jit_above_cost and be compiled on every call (~15 ms).
-- The set-based functions also use plan_cache_mode = force_generic_plan: their arguments are
-- jsonb lists and uuid arrays whose values cannot improve a plan, and PL/pgSQL's default would
-- re-plan their statements with the values on the first calls of a session, and on every call
-- when a one-element array makes the custom plan look cheaper (scoring_inputs for one case:
-- ~0.5 ms of planning a call).
--
-- Errors: 22023 invalid argument (the message names it), P0002 unknown case; errors of
-- upsert_enrichment_bundle(), set_case_scores() and set_case_enrichment() pass through.

-- scoring_inputs(case_ids) -> (case_id, context, inputs) per case found
--
-- Everything the model reads, in one statement (this runs thousands of times a second):
-- context = {case_id, case_number, judgment_id, debtor_name, state, county, previous_tier},
-- inputs = the fields of workers.enrich.scoring.ScoringInputs.
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
     where c.id = any (p_case_ids);
end;
$$;

comment on function enrichment.scoring_inputs(uuid[]) is
    'The facts the collectability model scores, for each given court case (judgments.cases.id) that '
    'exists: (case_id, context {case_id, case_number, judgment_id, debtor_name, state, county, '
    'previous_tier}, inputs {...ScoringInputs}). Read by prepare_scoring() and prepare_scoring_batch(). '
    'Service role and fleet only.';

revoke execute on function enrichment.scoring_inputs(uuid[]) from public, anon, authenticated;
grant execute on function enrichment.scoring_inputs(uuid[]) to service_role, dragonfly_worker;

-- merge_case_signals(bundles): bundles = [{"case_id": uuid, "bundle": {...}}]
--
-- Stores the "signals" object of each bundle (those without one are skipped) as the case's
-- row for the bundle's source (default 'vendor'): re-sending the same signals changes
-- nothing, other values replace the row's. A value that is not a number 0-1
-- (identity_confidence) or a boolean (bankruptcy, deceased) fails the cast or the table's
-- check and the whole call with it; prepare_scoring_batch() hands only JSON numbers 0-1 and
-- booleans in, so one bad job cannot fail its batch. A case may appear once per call.
create or replace function enrichment.merge_case_signals(p_bundles jsonb)
returns void
language plpgsql
volatile
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
as $$
begin
    insert into enrichment.case_signals as s
        (case_id, source, identity_confidence, bankruptcy, deceased)
    select (x.value ->> 'case_id')::uuid,
           coalesce(nullif(pg_catalog.btrim(x.value -> 'bundle' ->> 'source'), ''), 'vendor'),
           (x.value -> 'bundle' -> 'signals' ->> 'identity_confidence')::numeric(3, 2),
           coalesce((x.value -> 'bundle' -> 'signals' ->> 'bankruptcy')::boolean, false),
           coalesce((x.value -> 'bundle' -> 'signals' ->> 'deceased')::boolean, false)
      from pg_catalog.jsonb_array_elements(p_bundles) as x
     where pg_catalog.jsonb_typeof(x.value -> 'bundle' -> 'signals') = 'object'
     order by 1, 2
        on conflict (case_id, source) do update
           set identity_confidence = excluded.identity_confidence,
               bankruptcy = excluded.bankruptcy,
               deceased = excluded.deceased
         where (s.identity_confidence, s.bankruptcy, s.deceased)
               is distinct from (excluded.identity_confidence, excluded.bankruptcy, excluded.deceased);
end;
$$;

comment on function enrichment.merge_case_signals(jsonb) is
    'Store the "signals" of vendor bundles [{"case_id", "bundle"}] in enrichment.case_signals, one row per '
    'case and source; the same signals twice change nothing. Used by prepare_scoring() and '
    'prepare_scoring_batch(). Service role and fleet only.';

revoke execute on function enrichment.merge_case_signals(jsonb) from public, anon, authenticated;
grant execute on function enrichment.merge_case_signals(jsonb) to service_role, dragonfly_worker;

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

comment on function enrichment.prepare_scoring(uuid, jsonb, boolean) is
    'Step 1 of an enrich job: lock the case (judgments.cases.id; p_lock = false only reads, for the '
    'context a vendor call needs), store p_bundle when given (contacts '
    'and assets through upsert_enrichment_bundle(), signals into enrichment.case_signals) and return '
    '{"case": {...context, previous_tier}, "stored": <upsert counts or null>, "inputs": {...the '
    'scoring model''s facts}}. Service role and fleet only; 22023 bad argument, P0002 unknown case.';

revoke execute on function enrichment.prepare_scoring(uuid, jsonb, boolean) from public, anon, authenticated;
grant execute on function enrichment.prepare_scoring(uuid, jsonb, boolean) to service_role, dragonfly_worker;

-- prepare_scoring_batch(jobs) -> (ref, error, prepared) per job, in the jobs' order
--
-- jobs = [{"ref": integer (the worker's message id), "case_id": uuid, "bundle"?: {...}}], each
-- ref once. A malformed list (not an array, an element without an integer ref or a uuid
-- case_id, a ref twice) is refused whole with 22023/22P02: the worker built it, so that is a
-- bug, and the worker then runs every job alone. Otherwise, per job, either
--   prepared = {"case", "stored", "inputs"}, exactly what prepare_scoring(case_id, bundle, true)
--              returns (its bundle and signals are stored), error = null; or
--   error = why it was left alone (prepared = null) — its case does not exist or is in an
--              earlier job of the list, its bundle is not valid (the message upsert_enrichment_bundle
--              gives), or its signals are not plain JSON numbers 0-1 and booleans (prepare_scoring
--              also takes strings like "0.5" and "yes"; left to it so that a bad value fails
--              that job alone instead of this call). Nothing was written for such a job.
-- Every case named is locked FOR NO KEY UPDATE, in id order, before anything is written, and
-- stays locked to the end of the transaction, as with prepare_scoring.
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

comment on function enrichment.prepare_scoring_batch(jsonb) is
    'Step 1 of many enrich jobs at once: p_jobs = [{"ref", "case_id", "bundle"?}]. Locks every case (id '
    'order), stores the valid bundles as prepare_scoring() would (merge_bundles, merge_case_signals) and '
    'returns per job (ref, error, prepared): prepared = prepare_scoring()''s result, or error = why the job '
    'was left alone (nothing written for it; run it through prepare_scoring). Service role and fleet only; '
    '22023 malformed job list.';

revoke execute on function enrichment.prepare_scoring_batch(jsonb) from public, anon, authenticated;
grant execute on function enrichment.prepare_scoring_batch(jsonb) to service_role, dragonfly_worker;

-- record_case_scores_batch(scores) -> (case_id, recorded) per entry, in the entries' order
--
-- scores = [{"case_id", "identity_score", "contactability_score", "asset_score",
--            "recency_amount_score", "adverse_penalty", "collectability_score", "summary"?}]
-- (numbers or numeric strings), each case once. All or nothing: every entry is checked first,
-- with the checks and messages of record_case_scores in its order, and the first entry with a
-- problem raises it (22023, P0002). recorded is what record_case_scores returns.
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

comment on function enrichment.record_case_scores_batch(jsonb) is
    'Step 2 of many enrich jobs at once: record_case_scores() for each entry of p_scores = [{"case_id", '
    '"identity_score", "contactability_score", "asset_score", "recency_amount_score", "adverse_penalty", '
    '"collectability_score", "summary"?}] (each case once); returns (case_id, what record_case_scores '
    'returns) per entry. All or nothing: the first entry with a problem raises its error. Service role '
    'and fleet only; 22023 bad argument, P0002 unknown case.';

revoke execute on function enrichment.record_case_scores_batch(jsonb) from public, anon, authenticated;
grant execute on function enrichment.record_case_scores_batch(jsonb) to service_role, dragonfly_worker;

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
    v_result jsonb;
begin
    -- One case through the shared set-based implementation (record_case_scores_batch).
    select r.recorded
      into v_result
      from enrichment.record_case_scores_batch(pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
               'case_id', p_case_id,
               'identity_score', p_identity_score,
               'contactability_score', p_contactability_score,
               'asset_score', p_asset_score,
               'recency_amount_score', p_recency_amount_score,
               'adverse_penalty', p_adverse_penalty,
               'collectability_score', p_collectability_score,
               'summary', p_summary
           ))) as r;
    return v_result;
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
