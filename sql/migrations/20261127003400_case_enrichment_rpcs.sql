-- The enrichment maintenance RPCs: set_case_enrichment(), set_case_scores() and
-- upsert_enrichment_bundle(), the last one over enrichment.merge_bundles() (the same merge
-- for many bundles at once, which enrich's batch path uses too).
--
-- Why: the enrich worker, Copilot and the planners must read identical numbers, so the
-- score, its breakdown and the tier are written to judgments.cases by these functions only,
-- with the same validation everywhere: scores within 0-100, a tier that exists in
-- public.enforcement_tier_lookup (or, when the caller passes null, the tier whose band
-- holds the score). Vendor contacts and assets are merged on their natural keys, so a
-- re-sent bundle changes nothing.
--
-- Rights: service role and the fleet's role (dragonfly_worker, the enrich worker) only.
-- Errors: 22023 invalid argument, P0002 unknown case.

create or replace function public.set_case_enrichment(
    p_case_id uuid,
    p_collectability_score numeric,
    p_collectability_tier text,
    p_summary text default null
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_tier text := nullif(pg_catalog.btrim(p_collectability_tier), '');
begin
    if p_case_id is null then
        raise exception using errcode = '22023', message = 'set_case_enrichment: p_case_id is required';
    end if;
    if p_collectability_score is null or p_collectability_score < 0 or p_collectability_score > 100 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'set_case_enrichment: p_collectability_score must be between 0 and 100 (got %s)',
                coalesce(p_collectability_score::text, 'null')
            );
    end if;
    if v_tier is null then
        select t.tier into v_tier
          from public.enforcement_tier_lookup as t
         where t.min_score <= p_collectability_score
         order by t.min_score desc
         limit 1;
    elsif not exists (select 1 from public.enforcement_tier_lookup as t where t.tier = v_tier) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'set_case_enrichment: p_collectability_tier %s is not a tier (known: %s)',
                pg_catalog.quote_literal(v_tier),
                (select pg_catalog.string_agg(t.tier, ', ' order by t.rank) from public.enforcement_tier_lookup as t)
            );
    end if;
    if pg_catalog.length(p_summary) > 20000 then
        raise exception using
            errcode = '22023', message = 'set_case_enrichment: p_summary must be at most 20000 characters';
    end if;

    update judgments.cases as c
       set collectability_score = pg_catalog.round(p_collectability_score, 2),
           collectability_tier = v_tier,
           enrichment_summary = coalesce(nullif(pg_catalog.btrim(p_summary), ''), c.enrichment_summary),
           last_enriched_at = pg_catalog.now()
     where c.id = p_case_id;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('set_case_enrichment: case %s does not exist in judgments.cases', p_case_id);
    end if;
end;
$$;

comment on function public.set_case_enrichment(uuid, numeric, text, text) is
    'Store the latest collectability score (0-100) and tier on judgments.cases and stamp last_enriched_at. '
    'A null tier is derived from the score band; a null summary keeps the previous one. Service role only; '
    '22023 bad score or unknown tier, P0002 unknown case.';

revoke execute on function public.set_case_enrichment(uuid, numeric, text, text)
    from public, anon, authenticated, service_role;
grant execute on function public.set_case_enrichment(uuid, numeric, text, text) to service_role, dragonfly_worker;

create or replace function public.set_case_scores(
    p_case_id uuid,
    p_identity_score numeric,
    p_contactability_score numeric,
    p_asset_score numeric,
    p_recency_amount_score numeric,
    p_adverse_penalty numeric,
    p_collectability_score numeric,
    p_collectability_tier text
)
returns void
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_tier text := nullif(pg_catalog.btrim(p_collectability_tier), '');
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
        raise exception using errcode = '22023', message = 'set_case_scores: p_case_id is required';
    end if;
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
    if v_tier is null then
        select t.tier into v_tier
          from public.enforcement_tier_lookup as t
         where t.min_score <= p_collectability_score
         order by t.min_score desc
         limit 1;
    elsif not exists (select 1 from public.enforcement_tier_lookup as t where t.tier = v_tier) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'set_case_scores: p_collectability_tier %s is not a tier (known: %s)',
                pg_catalog.quote_literal(v_tier),
                (select pg_catalog.string_agg(t.tier, ', ' order by t.rank) from public.enforcement_tier_lookup as t)
            );
    end if;

    update judgments.cases as c
       set identity_score = pg_catalog.round(p_identity_score, 2),
           contactability_score = pg_catalog.round(p_contactability_score, 2),
           asset_score = pg_catalog.round(p_asset_score, 2),
           recency_amount_score = pg_catalog.round(p_recency_amount_score, 2),
           adverse_penalty = pg_catalog.round(p_adverse_penalty, 2),
           collectability_score = pg_catalog.round(p_collectability_score, 2),
           collectability_tier = v_tier,
           last_scored_at = pg_catalog.now()
     where c.id = p_case_id;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('set_case_scores: case %s does not exist in judgments.cases', p_case_id);
    end if;
end;
$$;

comment on function public.set_case_scores(uuid, numeric, numeric, numeric, numeric, numeric, numeric, text) is
    'Store the full scoring breakdown (identity, contactability, asset, recency/amount, adverse penalty, '
    'each 0-100), the collectability score and its tier on judgments.cases and stamp last_scored_at. A null '
    'tier is derived from the score band. Service role only; 22023 bad score or unknown tier, P0002 unknown case.';

revoke execute on function public.set_case_scores(uuid, numeric, numeric, numeric, numeric, numeric, numeric, text)
    from public, anon, authenticated, service_role;
grant execute on function public.set_case_scores(uuid, numeric, numeric, numeric, numeric, numeric, numeric, text)
    to service_role, dragonfly_worker;

-- upsert_enrichment_bundle(bundle) -> counts
--
-- bundle: {
--   "case_id": uuid of judgments.cases (required),
--   "source": vendor name, the default source of every item,
--   "contacts": [{"contact_type": "phone"|"email"|"address", "value": text, "source"?: text,
--                 "confidence"?: 0..1, "is_verified"?: bool, "metadata"?: {}}],
--   "assets":   [{"asset_type": "bank"|"employer"|"real_property"|"vehicle"|"other", "asset_key"?: text,
--                 "description"?: text, "institution"?: text, "estimated_value"?: number >= 0,
--                 "details"?: {}, "source"?: text, "confidence"?: 0..1}]
-- }
-- (the field names of workers/enrich/bundle.py). At most 1000 contacts and 1000 assets. Natural keys: contacts (case, type, normalized value:
-- E.164 phone, lower-case email, lower-case single-spaced address); assets (case, type,
-- asset_key): asset_key when given, else bank: institution[:details.account_last4], vehicle:
-- details.vin, real_property: details.parcel_id, then institution, then description —
-- lower-cased and single-spaced. Items of one bundle with the same key are merged, the
-- last one winning. Merge rules on an existing row: value/source are replaced, confidence,
-- description, institution and estimated_value are replaced when given, is_verified is
-- sticky (once true stays true), metadata/details are merged (existing || new). A row the
-- merge would not change is left alone and counted as unchanged.
-- Returns {"case_id", "contacts": {"inserted","updated","unchanged"}, "assets": {...},
--          "inserted", "updated", "unchanged"} (the last three are totals).
--
-- The rules live in ONE place, enrichment.merge_bundles(bundles), which validates,
-- normalizes and merges any number of bundles set-based; upsert_enrichment_bundle() is that
-- function applied to one bundle, raising the bundle's error, and enrich's batch path
-- (enrichment.prepare_scoring_batch) applies it to a batch of jobs' bundles in one call. So
-- the single and the batch paths cannot drift apart.
--
-- merge_bundles(p_bundles): p_bundles = [{"ref": integer, "bundle": <a bundle as above>}, ...].
-- Returns one row per element: (ref, errcode, error, stored). A bundle with a problem has
-- errcode and error (exactly what upsert_enrichment_bundle raises for it: 22023 and the first
-- problem in the order bundle fields, contacts[0..], assets[0..], each item's fields in a fixed
-- order; else P0002 when its case does not exist) and nothing of it is written; the others
-- are merged and get stored = the counts above. A case may appear in one element only (a later
-- element for the same case gets 22023): one INSERT ... ON CONFLICT may not touch a row twice.
-- Everything happens in one statement, so a few executor starts serve the whole batch; for a
-- single bundle that statement costs about as much as the per-item PL/pgSQL checks it replaced
-- (docs/scoring.md, "Performance").
--
-- enable_seqscan = off, jit = off as in enrichment.prepare_scoring (20261127005010): the plan
-- of this statement is cached for the life of a session, and planned while judgments.cases
-- was small it would scan the whole table on every later call. plan_cache_mode =
-- force_generic_plan: the argument's value cannot improve the plan (a jsonb array's length is
-- unknown to the planner either way), so re-planning this large statement on each of the first
-- calls, or on every call when the planner's cost comparison happens to favour custom plans,
-- would be pure overhead (~1 ms a call).
create or replace function enrichment.merge_bundles(p_bundles jsonb)
returns table (ref bigint, errcode text, error text, stored jsonb)
language plpgsql
volatile
security definer
set search_path = ''
set enable_seqscan = off
set jit = off
set plan_cache_mode = force_generic_plan
as $$
begin
    if p_bundles is null or pg_catalog.jsonb_typeof(p_bundles) <> 'array' then
        raise exception using errcode = '22023', message = 'merge_bundles: p_bundles must be a JSON array';
    end if;

    return query
    with input as (
        select e.ordinality as pos,
               (e.value ->> 'ref')::bigint as ref,
               coalesce(e.value -> 'bundle', 'null'::jsonb) as b
          from pg_catalog.jsonb_array_elements(p_bundles) with ordinality as e
    ),
    -- 1. Validate every bundle and build its normalized rows; nothing is written yet.
    --    Each CASE lists the checks in the order the single path reports them.
    bundles as materialized (
        select i.pos, i.ref, i.b,
               nullif(pg_catalog.btrim(i.b ->> 'source'), '') as source,
               case
                   when pg_catalog.jsonb_typeof(i.b) <> 'object' then
                       'upsert_enrichment_bundle: bundle must be a JSON object'
                   -- (jsonb - keys) is a plain expression; the query naming the keys runs only on failure.
                   when (i.b - array['case_id', 'source', 'contacts', 'assets']) <> '{}'::jsonb then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: unknown field(s) %s',
                           (select pg_catalog.string_agg(k, ', ' order by k)
                              from pg_catalog.jsonb_object_keys(i.b) as k
                             where k <> all (array['case_id', 'source', 'contacts', 'assets']))
                       )
                   when pg_catalog.jsonb_typeof(i.b -> 'case_id') is distinct from 'string'
                        or (i.b ->> 'case_id') !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' then
                       'upsert_enrichment_bundle: case_id must be a uuid string'
                   when pg_catalog.jsonb_typeof(i.b -> 'source') not in ('string', 'null') then
                       'upsert_enrichment_bundle: source must be a string'
                   when pg_catalog.length(nullif(pg_catalog.btrim(i.b ->> 'source'), '')) > 200 then
                       'upsert_enrichment_bundle: source must be at most 200 characters'
                   when pg_catalog.jsonb_typeof(i.b -> 'contacts') not in ('array', 'null') then
                       'upsert_enrichment_bundle: contacts must be an array'
                   when pg_catalog.jsonb_typeof(i.b -> 'contacts') = 'array'
                        and pg_catalog.jsonb_array_length(i.b -> 'contacts') > 1000 then
                       'upsert_enrichment_bundle: at most 1000 contacts per bundle'
                   when pg_catalog.jsonb_typeof(i.b -> 'assets') not in ('array', 'null') then
                       'upsert_enrichment_bundle: assets must be an array'
                   when pg_catalog.jsonb_typeof(i.b -> 'assets') = 'array'
                        and pg_catalog.jsonb_array_length(i.b -> 'assets') > 1000 then
                       'upsert_enrichment_bundle: at most 1000 assets per bundle'
               end as error
          from input as i
    ),
    contact_fields as (
        select b.pos, e.ordinality - 1 as ord, e.value as item,
               pg_catalog.format('contacts[%s]', e.ordinality - 1) as loc,
               case when pg_catalog.jsonb_typeof(e.value -> 'contact_type') = 'string'
                    then e.value ->> 'contact_type' end as contact_type,
               case when pg_catalog.jsonb_typeof(e.value -> 'value') = 'string'
                    then nullif(pg_catalog.btrim(e.value ->> 'value'), '') end as value,
               coalesce(nullif(pg_catalog.btrim(e.value ->> 'source'), ''), b.source) as source
          from bundles as b
         cross join lateral pg_catalog.jsonb_array_elements(
                   case when b.error is null and pg_catalog.jsonb_typeof(b.b -> 'contacts') = 'array'
                        then b.b -> 'contacts' else '[]'::jsonb end
               ) with ordinality as e
    ),
    contacts as materialized (
        select f.pos, f.ord, f.contact_type, f.value, n.normalized_value, f.source,
               case when pg_catalog.jsonb_typeof(f.item -> 'confidence') = 'number'
                    then pg_catalog.round((f.item ->> 'confidence')::numeric, 2) end as confidence,
               case when pg_catalog.jsonb_typeof(f.item -> 'is_verified') = 'boolean'
                    then (f.item ->> 'is_verified')::boolean else false end as is_verified,
               case when pg_catalog.jsonb_typeof(f.item -> 'metadata') = 'object'
                    then f.item -> 'metadata' else '{}'::jsonb end as metadata,
               case
                   when pg_catalog.jsonb_typeof(f.item) <> 'object' then
                       pg_catalog.format('upsert_enrichment_bundle: %s must be an object', f.loc)
                   when (f.item - array['contact_type', 'value', 'source', 'confidence', 'is_verified', 'metadata'])
                        <> '{}'::jsonb then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s: unknown field(s) %s', f.loc,
                           (select pg_catalog.string_agg(k, ', ' order by k)
                              from pg_catalog.jsonb_object_keys(f.item) as k
                             where k <> all (array['contact_type', 'value', 'source', 'confidence',
                                                   'is_verified', 'metadata']))
                       )
                   when f.contact_type is null or f.contact_type not in ('phone', 'email', 'address') then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.contact_type must be phone, email or address', f.loc)
                   when f.value is null or pg_catalog.length(f.value) > 1000 then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.value must be a non-empty string of at most 1000 characters',
                           f.loc)
                   when n.normalized_value is null then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.value %s is not a valid %s',
                           f.loc, pg_catalog.quote_literal(f.value), f.contact_type)
                   when pg_catalog.jsonb_typeof(f.item -> 'source') not in ('string', 'null') then
                       pg_catalog.format('upsert_enrichment_bundle: %s.source must be a string', f.loc)
                   when f.source is null or pg_catalog.length(f.source) > 200 then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.source (or the bundle''s source) is required, at most 200 characters',
                           f.loc)
                   when pg_catalog.jsonb_typeof(f.item -> 'confidence') not in ('number', 'null')
                        or (pg_catalog.jsonb_typeof(f.item -> 'confidence') = 'number'
                            and (f.item ->> 'confidence')::numeric not between 0 and 1) then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.confidence must be a number between 0 and 1', f.loc)
                   when pg_catalog.jsonb_typeof(f.item -> 'is_verified') not in ('boolean', 'null') then
                       pg_catalog.format('upsert_enrichment_bundle: %s.is_verified must be a boolean', f.loc)
                   when pg_catalog.jsonb_typeof(f.item -> 'metadata') not in ('object', 'null') then
                       pg_catalog.format('upsert_enrichment_bundle: %s.metadata must be an object', f.loc)
               end as error
          from contact_fields as f
         cross join lateral (
                select case f.contact_type
                           when 'phone' then intake.normalize_phone(f.value)
                           when 'email' then intake.normalize_email(f.value)
                           else nullif(pg_catalog.btrim(pg_catalog.regexp_replace(
                                    pg_catalog.lower(f.value), '[[:space:]]+', ' ', 'g')), '')
                       end as normalized_value
               ) as n
    ),
    asset_fields as (
        select b.pos, e.ordinality - 1 as ord, e.value as item,
               pg_catalog.format('assets[%s]', e.ordinality - 1) as loc,
               case when pg_catalog.jsonb_typeof(e.value -> 'asset_type') = 'string'
                    then e.value ->> 'asset_type' end as asset_type,
               coalesce(nullif(pg_catalog.btrim(e.value ->> 'source'), ''), b.source) as source
          from bundles as b
         cross join lateral pg_catalog.jsonb_array_elements(
                   case when b.error is null and pg_catalog.jsonb_typeof(b.b -> 'assets') = 'array'
                        then b.b -> 'assets' else '[]'::jsonb end
               ) with ordinality as e
    ),
    assets as materialized (
        select f.pos, f.ord, f.asset_type, k.asset_key,
               nullif(pg_catalog.btrim(f.item ->> 'description'), '') as description,
               nullif(pg_catalog.btrim(f.item ->> 'institution'), '') as institution,
               case when pg_catalog.jsonb_typeof(f.item -> 'estimated_value') = 'number'
                    then pg_catalog.round((f.item ->> 'estimated_value')::numeric, 2) end as estimated_value,
               case when pg_catalog.jsonb_typeof(f.item -> 'details') = 'object'
                    then f.item -> 'details' else '{}'::jsonb end as details,
               f.source,
               case when pg_catalog.jsonb_typeof(f.item -> 'confidence') = 'number'
                    then pg_catalog.round((f.item ->> 'confidence')::numeric, 2) end as confidence,
               case
                   when pg_catalog.jsonb_typeof(f.item) <> 'object' then
                       pg_catalog.format('upsert_enrichment_bundle: %s must be an object', f.loc)
                   when (f.item - array['asset_type', 'asset_key', 'description', 'institution', 'estimated_value',
                                        'details', 'source', 'confidence']) <> '{}'::jsonb then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s: unknown field(s) %s', f.loc,
                           (select pg_catalog.string_agg(k, ', ' order by k)
                              from pg_catalog.jsonb_object_keys(f.item) as k
                             where k <> all (array['asset_type', 'asset_key', 'description', 'institution',
                                                   'estimated_value', 'details', 'source', 'confidence']))
                       )
                   when f.asset_type is null
                        or f.asset_type not in ('bank', 'employer', 'real_property', 'vehicle', 'other') then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.asset_type must be bank, employer, real_property, vehicle or other',
                           f.loc)
                   when pg_catalog.jsonb_typeof(f.item -> 'asset_key') not in ('string', 'null')
                        or pg_catalog.length(f.item ->> 'asset_key') > 2000 then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.%s must be a string of at most 2000 characters',
                           f.loc, 'asset_key')
                   when pg_catalog.jsonb_typeof(f.item -> 'description') not in ('string', 'null')
                        or pg_catalog.length(f.item ->> 'description') > 2000 then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.%s must be a string of at most 2000 characters',
                           f.loc, 'description')
                   when pg_catalog.jsonb_typeof(f.item -> 'institution') not in ('string', 'null')
                        or pg_catalog.length(f.item ->> 'institution') > 2000 then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.%s must be a string of at most 2000 characters',
                           f.loc, 'institution')
                   when pg_catalog.jsonb_typeof(f.item -> 'source') not in ('string', 'null')
                        or pg_catalog.length(f.item ->> 'source') > 2000 then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.%s must be a string of at most 2000 characters',
                           f.loc, 'source')
                   when pg_catalog.jsonb_typeof(f.item -> 'details') not in ('object', 'null') then
                       pg_catalog.format('upsert_enrichment_bundle: %s.details must be an object', f.loc)
                   when pg_catalog.jsonb_typeof(f.item -> 'estimated_value') not in ('number', 'null')
                        or (pg_catalog.jsonb_typeof(f.item -> 'estimated_value') = 'number'
                            and ((f.item ->> 'estimated_value')::numeric < 0
                                 or pg_catalog.round((f.item ->> 'estimated_value')::numeric, 2) >= 1e12)) then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.estimated_value must be a number from 0 to 999999999999.99',
                           f.loc)
                   when pg_catalog.jsonb_typeof(f.item -> 'confidence') not in ('number', 'null')
                        or (pg_catalog.jsonb_typeof(f.item -> 'confidence') = 'number'
                            and (f.item ->> 'confidence')::numeric not between 0 and 1) then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.confidence must be a number between 0 and 1', f.loc)
                   when k.asset_key is null then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s needs an asset_key, an institution or a description', f.loc)
                   when f.source is null then
                       pg_catalog.format(
                           'upsert_enrichment_bundle: %s.source (or the bundle''s source) is required', f.loc)
               end as error
          from asset_fields as f
         cross join lateral (
                select nullif(pg_catalog.btrim(pg_catalog.regexp_replace(pg_catalog.lower(coalesce(
                           nullif(pg_catalog.btrim(f.item ->> 'asset_key'), ''),
                           case f.asset_type
                               when 'bank' then nullif(pg_catalog.btrim(f.item ->> 'institution'), '')
                                                || coalesce(':' || nullif(pg_catalog.btrim(
                                                       f.item -> 'details' ->> 'account_last4'), ''), '')
                               when 'vehicle' then nullif(pg_catalog.btrim(f.item -> 'details' ->> 'vin'), '')
                               when 'real_property' then nullif(pg_catalog.btrim(f.item -> 'details' ->> 'parcel_id'), '')
                           end,
                           nullif(pg_catalog.btrim(f.item ->> 'institution'), ''),
                           nullif(pg_catalog.btrim(f.item ->> 'description'), '')
                       )), '[[:space:]]+', ' ', 'g')), '') as asset_key
               ) as k
    ),
    -- The first problem of each bundle: its own fields, then its first bad contact, then its
    -- first bad asset (the order the single path reports them in).
    contact_errors as (
        select distinct on (c.pos) c.pos, c.error
          from contacts as c
         where c.error is not null
         order by c.pos, c.ord
    ),
    asset_errors as (
        select distinct on (a.pos) a.pos, a.error
          from assets as a
         where a.error is not null
         order by a.pos, a.ord
    ),
    checked as materialized (
        select b.pos, b.ref,
               case when coalesce(b.error, ce.error, ae.error) is null
                    then (b.b ->> 'case_id')::uuid end as case_id,
               coalesce(b.error, ce.error, ae.error) as error
          from bundles as b
          left join contact_errors as ce on ce.pos = b.pos
          left join asset_errors as ae on ae.pos = b.pos
    ),
    -- The cases must exist; lock them (key share, in id order) so none can disappear mid-merge.
    present as materialized (
        select c.id
          from judgments.cases as c
         where c.id = any (array(select k.case_id from checked as k where k.error is null))
         order by c.id
           for key share
    ),
    outcome as materialized (
        select k.pos, k.ref, k.case_id,
               case
                   when k.error is not null then '22023'
                   when pg_catalog.row_number() over (partition by k.case_id order by k.pos) > 1 then '22023'
                   when p.id is null then 'P0002'
               end as errcode,
               case
                   when k.error is not null then k.error
                   when pg_catalog.row_number() over (partition by k.case_id order by k.pos) > 1 then
                       pg_catalog.format('merge_bundles: case %s is in more than one bundle of this call', k.case_id)
                   when p.id is null then
                       pg_catalog.format('upsert_enrichment_bundle: case %s does not exist in judgments.cases', k.case_id)
               end as error
          from checked as k
          left join present as p on p.id = k.case_id
    ),
    -- 2. Merge the valid bundles, set-based. Items of one bundle with the same key: the last
    --    wins. Rows the merge would not change are skipped by the WHERE of DO UPDATE, so they
    --    are neither rewritten nor counted.
    contact_rows as (
        select distinct on (o.case_id, c.contact_type, c.normalized_value)
               o.case_id, c.contact_type, c.value, c.normalized_value, c.source, c.confidence,
               c.is_verified, c.metadata
          from outcome as o
          join contacts as c on c.pos = o.pos
         where o.errcode is null
         order by o.case_id, c.contact_type, c.normalized_value, c.ord desc
    ),
    contacts_merged as (
        insert into enrichment.contacts as c
            (case_id, contact_type, value, normalized_value, source, confidence, is_verified, metadata)
        select i.case_id, i.contact_type, i.value, i.normalized_value, i.source, i.confidence,
               i.is_verified, i.metadata
          from contact_rows as i
         order by i.case_id, i.contact_type, i.normalized_value
        on conflict (case_id, contact_type, normalized_value) do update
           set value = excluded.value,
               source = excluded.source,
               confidence = coalesce(excluded.confidence, c.confidence),
               is_verified = c.is_verified or excluded.is_verified,
               metadata = c.metadata || excluded.metadata
         where (c.value, c.source, c.confidence, c.is_verified, c.metadata)
               is distinct from
               (excluded.value, excluded.source, coalesce(excluded.confidence, c.confidence),
                c.is_verified or excluded.is_verified, c.metadata || excluded.metadata)
        returning c.case_id, (c.xmax = 0) as inserted
    ),
    asset_rows as (
        select distinct on (o.case_id, a.asset_type, a.asset_key)
               o.case_id, a.asset_type, a.asset_key, a.description, a.institution, a.estimated_value,
               a.details, a.source, a.confidence
          from outcome as o
          join assets as a on a.pos = o.pos
         where o.errcode is null
         order by o.case_id, a.asset_type, a.asset_key, a.ord desc
    ),
    assets_merged as (
        insert into enrichment.assets as a
            (case_id, asset_type, asset_key, description, institution, estimated_value, details,
             source, confidence)
        select i.case_id, i.asset_type, i.asset_key, i.description, i.institution, i.estimated_value,
               i.details, i.source, i.confidence
          from asset_rows as i
         order by i.case_id, i.asset_type, i.asset_key
        on conflict (case_id, asset_type, asset_key) do update
           set description = coalesce(excluded.description, a.description),
               institution = coalesce(excluded.institution, a.institution),
               estimated_value = coalesce(excluded.estimated_value, a.estimated_value),
               details = a.details || excluded.details,
               source = excluded.source,
               confidence = coalesce(excluded.confidence, a.confidence)
         where (a.description, a.institution, a.estimated_value, a.details, a.source, a.confidence)
               is distinct from
               (coalesce(excluded.description, a.description), coalesce(excluded.institution, a.institution),
                coalesce(excluded.estimated_value, a.estimated_value), a.details || excluded.details,
                excluded.source, coalesce(excluded.confidence, a.confidence))
        returning a.case_id, (a.xmax = 0) as inserted
    ),
    counts as (
        select x.case_id,
               pg_catalog.sum(x.c_total)::integer as c_total,
               pg_catalog.sum(x.c_inserted)::integer as c_inserted,
               pg_catalog.sum(x.c_updated)::integer as c_updated,
               pg_catalog.sum(x.a_total)::integer as a_total,
               pg_catalog.sum(x.a_inserted)::integer as a_inserted,
               pg_catalog.sum(x.a_updated)::integer as a_updated
          from (
                select r.case_id, 1 as c_total, 0 as c_inserted, 0 as c_updated,
                       0 as a_total, 0 as a_inserted, 0 as a_updated
                  from contact_rows as r
                union all
                select m.case_id, 0, m.inserted::integer, (not m.inserted)::integer, 0, 0, 0
                  from contacts_merged as m
                union all
                select r.case_id, 0, 0, 0, 1, 0, 0
                  from asset_rows as r
                union all
                select m.case_id, 0, 0, 0, 0, m.inserted::integer, (not m.inserted)::integer
                  from assets_merged as m
               ) as x
         group by x.case_id
    )
    select o.ref, o.errcode, o.error,
           case when o.errcode is null then pg_catalog.jsonb_build_object(
               'case_id', o.case_id,
               'contacts', pg_catalog.jsonb_build_object(
                   'inserted', coalesce(n.c_inserted, 0),
                   'updated', coalesce(n.c_updated, 0),
                   'unchanged', coalesce(n.c_total - n.c_inserted - n.c_updated, 0)),
               'assets', pg_catalog.jsonb_build_object(
                   'inserted', coalesce(n.a_inserted, 0),
                   'updated', coalesce(n.a_updated, 0),
                   'unchanged', coalesce(n.a_total - n.a_inserted - n.a_updated, 0)),
               'inserted', coalesce(n.c_inserted + n.a_inserted, 0),
               'updated', coalesce(n.c_updated + n.a_updated, 0),
               'unchanged', coalesce((n.c_total - n.c_inserted - n.c_updated)
                                     + (n.a_total - n.a_inserted - n.a_updated), 0)
           ) end
      from outcome as o
      left join counts as n on n.case_id = o.case_id and o.errcode is null
     order by o.pos;
end;
$$;

comment on function enrichment.merge_bundles(jsonb) is
    'The validation, normalization and merge of upsert_enrichment_bundle() for many bundles at once: '
    'p_bundles = [{"ref": integer, "bundle": {...}}]; one row (ref, errcode, error, stored) per element. '
    'A bundle with a problem gets the error upsert_enrichment_bundle() raises for it (22023, P0002) and '
    'nothing of it is written; the others are merged and get its counts. Used by upsert_enrichment_bundle() '
    'and enrichment.prepare_scoring_batch(). Service role and fleet only.';

revoke execute on function enrichment.merge_bundles(jsonb) from public, anon, authenticated;
grant execute on function enrichment.merge_bundles(jsonb) to service_role, dragonfly_worker;

create or replace function public.upsert_enrichment_bundle(bundle jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_errcode text;
    v_error text;
    v_stored jsonb;
begin
    -- One bundle through the shared set-based implementation (see enrichment.merge_bundles).
    select m.errcode, m.error, m.stored
      into v_errcode, v_error, v_stored
      from enrichment.merge_bundles(
               pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('ref', 0, 'bundle', bundle))
           ) as m;
    if v_errcode is not null then
        raise exception using errcode = v_errcode, message = v_error;
    end if;
    return v_stored;
end;
$$;

comment on function public.upsert_enrichment_bundle(jsonb) is
    'Merge a vendor bundle {case_id, source, contacts: [...], assets: [...]} into enrichment.contacts and '
    'enrichment.assets on their natural keys; the same bundle twice changes nothing. Returns counts '
    '{contacts: {inserted, updated, unchanged}, assets: {...}, inserted, updated, unchanged}. Service role '
    'only; 22023 invalid bundle (message names the item), P0002 unknown case. Shape in docs/rpc.md.';

revoke execute on function public.upsert_enrichment_bundle(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.upsert_enrichment_bundle(jsonb) to service_role, dragonfly_worker;
