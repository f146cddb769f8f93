-- The enrichment maintenance RPCs: set_case_enrichment(), set_case_scores() and
-- upsert_enrichment_bundle().
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
create or replace function public.upsert_enrichment_bundle(bundle jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_case_id uuid;
    v_source text;
    v_item jsonb;
    v_index integer;
    v_unknown text;
    v_type text;
    v_value text;
    v_normalized text;
    v_item_source text;
    v_key text;
    v_contacts jsonb := '[]'::jsonb;
    v_assets jsonb := '[]'::jsonb;
    v_where text;
    c_inserted integer := 0;
    c_updated integer := 0;
    c_total integer := 0;
    a_inserted integer := 0;
    a_updated integer := 0;
    a_total integer := 0;
begin
    -- 1. Validate the whole bundle and build the normalized rows; nothing is written yet.
    if bundle is null or pg_catalog.jsonb_typeof(bundle) <> 'object' then
        raise exception using errcode = '22023', message = 'upsert_enrichment_bundle: bundle must be a JSON object';
    end if;
    -- (jsonb - keys) is a plain expression; the query naming the keys runs only on failure.
    if (bundle - array['case_id', 'source', 'contacts', 'assets']) <> '{}'::jsonb then
        select pg_catalog.string_agg(k, ', ' order by k) into v_unknown
          from pg_catalog.jsonb_object_keys(bundle) as k
         where k <> all (array['case_id', 'source', 'contacts', 'assets']);
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('upsert_enrichment_bundle: unknown field(s) %s', v_unknown);
    end if;

    if pg_catalog.jsonb_typeof(bundle -> 'case_id') is distinct from 'string'
       or (bundle ->> 'case_id') !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' then
        raise exception using
            errcode = '22023', message = 'upsert_enrichment_bundle: case_id must be a uuid string';
    end if;
    v_case_id := (bundle ->> 'case_id')::uuid;

    if pg_catalog.jsonb_typeof(bundle -> 'source') not in ('string', 'null') then
        raise exception using errcode = '22023', message = 'upsert_enrichment_bundle: source must be a string';
    end if;
    v_source := nullif(pg_catalog.btrim(bundle ->> 'source'), '');
    if pg_catalog.length(v_source) > 200 then
        raise exception using
            errcode = '22023', message = 'upsert_enrichment_bundle: source must be at most 200 characters';
    end if;

    foreach v_where in array array['contacts', 'assets'] loop
        if pg_catalog.jsonb_typeof(bundle -> v_where) not in ('array', 'null') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: %s must be an array', v_where);
        end if;
        if pg_catalog.jsonb_typeof(bundle -> v_where) = 'array'
           and pg_catalog.jsonb_array_length(bundle -> v_where) > 1000 then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: at most 1000 %s per bundle', v_where);
        end if;
    end loop;

    -- Contacts.
    for v_item, v_index in
        select e.value, e.ordinality - 1
          from pg_catalog.jsonb_array_elements(
                   case when pg_catalog.jsonb_typeof(bundle -> 'contacts') = 'array'
                        then bundle -> 'contacts' else '[]'::jsonb end
               ) with ordinality as e
    loop
        v_where := pg_catalog.format('contacts[%s]', v_index);
        if pg_catalog.jsonb_typeof(v_item) <> 'object' then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: %s must be an object', v_where);
        end if;
        -- (jsonb - keys) is a plain expression; the query naming the keys runs only on failure.
        if (v_item - array['contact_type', 'value', 'source', 'confidence', 'is_verified', 'metadata']) <> '{}'::jsonb then
            select pg_catalog.string_agg(k, ', ' order by k) into v_unknown
              from pg_catalog.jsonb_object_keys(v_item) as k
             where k <> all (array['contact_type', 'value', 'source', 'confidence', 'is_verified', 'metadata']);
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: %s: unknown field(s) %s', v_where, v_unknown);
        end if;
        v_type := case when pg_catalog.jsonb_typeof(v_item -> 'contact_type') = 'string'
                       then v_item ->> 'contact_type' end;
        if v_type is null or v_type not in ('phone', 'email', 'address') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s.contact_type must be phone, email or address', v_where
                );
        end if;
        v_value := case when pg_catalog.jsonb_typeof(v_item -> 'value') = 'string'
                        then nullif(pg_catalog.btrim(v_item ->> 'value'), '') end;
        if v_value is null or pg_catalog.length(v_value) > 1000 then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s.value must be a non-empty string of at most 1000 characters',
                    v_where
                );
        end if;
        v_normalized := case v_type
            when 'phone' then intake.normalize_phone(v_value)
            when 'email' then intake.normalize_email(v_value)
            else nullif(
                pg_catalog.btrim(pg_catalog.regexp_replace(pg_catalog.lower(v_value), '[[:space:]]+', ' ', 'g')),
                ''
            )
        end;
        if v_normalized is null then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s.value %s is not a valid %s',
                    v_where, pg_catalog.quote_literal(v_value), v_type
                );
        end if;
        if pg_catalog.jsonb_typeof(v_item -> 'source') not in ('string', 'null') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: %s.source must be a string', v_where);
        end if;
        v_item_source := coalesce(nullif(pg_catalog.btrim(v_item ->> 'source'), ''), v_source);
        if v_item_source is null or pg_catalog.length(v_item_source) > 200 then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s.source (or the bundle''s source) is required, at most 200 characters',
                    v_where
                );
        end if;
        if pg_catalog.jsonb_typeof(v_item -> 'confidence') not in ('number', 'null')
           or (pg_catalog.jsonb_typeof(v_item -> 'confidence') = 'number'
               and (v_item ->> 'confidence')::numeric not between 0 and 1) then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s.confidence must be a number between 0 and 1', v_where
                );
        end if;
        if pg_catalog.jsonb_typeof(v_item -> 'is_verified') not in ('boolean', 'null') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: %s.is_verified must be a boolean', v_where);
        end if;
        if pg_catalog.jsonb_typeof(v_item -> 'metadata') not in ('object', 'null') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: %s.metadata must be an object', v_where);
        end if;
        v_contacts := v_contacts || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'ord', v_index,
            'contact_type', v_type,
            'value', v_value,
            'normalized_value', v_normalized,
            'source', v_item_source,
            'confidence', case when pg_catalog.jsonb_typeof(v_item -> 'confidence') = 'number'
                               then pg_catalog.round((v_item ->> 'confidence')::numeric, 2) end,
            'is_verified', coalesce((v_item ->> 'is_verified')::boolean, false),
            'metadata', case when pg_catalog.jsonb_typeof(v_item -> 'metadata') = 'object'
                             then v_item -> 'metadata' else '{}'::jsonb end
        ));
    end loop;

    -- Assets.
    for v_item, v_index in
        select e.value, e.ordinality - 1
          from pg_catalog.jsonb_array_elements(
                   case when pg_catalog.jsonb_typeof(bundle -> 'assets') = 'array'
                        then bundle -> 'assets' else '[]'::jsonb end
               ) with ordinality as e
    loop
        v_where := pg_catalog.format('assets[%s]', v_index);
        if pg_catalog.jsonb_typeof(v_item) <> 'object' then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: %s must be an object', v_where);
        end if;
        -- (jsonb - keys) is a plain expression; the query naming the keys runs only on failure.
        if (v_item - array['asset_type', 'asset_key', 'description', 'institution', 'estimated_value',
                           'details', 'source', 'confidence']) <> '{}'::jsonb then
            select pg_catalog.string_agg(k, ', ' order by k) into v_unknown
              from pg_catalog.jsonb_object_keys(v_item) as k
             where k <> all (array['asset_type', 'asset_key', 'description', 'institution', 'estimated_value',
                                   'details', 'source', 'confidence']);
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: %s: unknown field(s) %s', v_where, v_unknown);
        end if;
        v_type := case when pg_catalog.jsonb_typeof(v_item -> 'asset_type') = 'string'
                       then v_item ->> 'asset_type' end;
        if v_type is null or v_type not in ('bank', 'employer', 'real_property', 'vehicle', 'other') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s.asset_type must be bank, employer, real_property, vehicle or other',
                    v_where
                );
        end if;
        foreach v_value in array array['asset_key', 'description', 'institution', 'source'] loop
            if pg_catalog.jsonb_typeof(v_item -> v_value) not in ('string', 'null')
               or pg_catalog.length(v_item ->> v_value) > 2000 then
                raise exception using
                    errcode = '22023',
                    message = pg_catalog.format(
                        'upsert_enrichment_bundle: %s.%s must be a string of at most 2000 characters',
                        v_where, v_value
                    );
            end if;
        end loop;
        if pg_catalog.jsonb_typeof(v_item -> 'details') not in ('object', 'null') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('upsert_enrichment_bundle: %s.details must be an object', v_where);
        end if;
        if pg_catalog.jsonb_typeof(v_item -> 'estimated_value') not in ('number', 'null')
           or (pg_catalog.jsonb_typeof(v_item -> 'estimated_value') = 'number'
               and ((v_item ->> 'estimated_value')::numeric < 0
                    or pg_catalog.round((v_item ->> 'estimated_value')::numeric, 2) >= 1e12)) then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s.estimated_value must be a number from 0 to 999999999999.99',
                    v_where
                );
        end if;
        if pg_catalog.jsonb_typeof(v_item -> 'confidence') not in ('number', 'null')
           or (pg_catalog.jsonb_typeof(v_item -> 'confidence') = 'number'
               and (v_item ->> 'confidence')::numeric not between 0 and 1) then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s.confidence must be a number between 0 and 1', v_where
                );
        end if;
        v_key := nullif(pg_catalog.btrim(pg_catalog.regexp_replace(pg_catalog.lower(coalesce(
            nullif(pg_catalog.btrim(v_item ->> 'asset_key'), ''),
            case v_type
                when 'bank' then nullif(pg_catalog.btrim(v_item ->> 'institution'), '')
                                 || coalesce(':' || nullif(pg_catalog.btrim(v_item -> 'details' ->> 'account_last4'), ''), '')
                when 'vehicle' then nullif(pg_catalog.btrim(v_item -> 'details' ->> 'vin'), '')
                when 'real_property' then nullif(pg_catalog.btrim(v_item -> 'details' ->> 'parcel_id'), '')
            end,
            nullif(pg_catalog.btrim(v_item ->> 'institution'), ''),
            nullif(pg_catalog.btrim(v_item ->> 'description'), '')
        )), '[[:space:]]+', ' ', 'g')), '');
        if v_key is null then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s needs an asset_key, an institution or a description', v_where
                );
        end if;
        v_item_source := coalesce(nullif(pg_catalog.btrim(v_item ->> 'source'), ''), v_source);
        if v_item_source is null then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'upsert_enrichment_bundle: %s.source (or the bundle''s source) is required', v_where
                );
        end if;
        v_assets := v_assets || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'ord', v_index,
            'asset_type', v_type,
            'asset_key', v_key,
            'description', nullif(pg_catalog.btrim(v_item ->> 'description'), ''),
            'institution', nullif(pg_catalog.btrim(v_item ->> 'institution'), ''),
            'estimated_value', case when pg_catalog.jsonb_typeof(v_item -> 'estimated_value') = 'number'
                                    then pg_catalog.round((v_item ->> 'estimated_value')::numeric, 2) end,
            'details', case when pg_catalog.jsonb_typeof(v_item -> 'details') = 'object'
                            then v_item -> 'details' else '{}'::jsonb end,
            'source', v_item_source,
            'confidence', case when pg_catalog.jsonb_typeof(v_item -> 'confidence') = 'number'
                               then pg_catalog.round((v_item ->> 'confidence')::numeric, 2) end
        ));
    end loop;

    -- The case must exist; lock it (key share) so it cannot disappear mid-merge.
    perform 1 from judgments.cases as c where c.id = v_case_id for key share;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('upsert_enrichment_bundle: case %s does not exist in judgments.cases', v_case_id);
    end if;

    -- 2. Merge, set-based. Rows the merge would not change are skipped by the WHERE of
    --    DO UPDATE, so they are neither rewritten nor counted.
    with items as (
        select distinct on (x.contact_type, x.normalized_value) x.*
          from pg_catalog.jsonb_to_recordset(v_contacts) as x(
                   ord integer, contact_type text, value text, normalized_value text, source text,
                   confidence numeric, is_verified boolean, metadata jsonb)
         order by x.contact_type, x.normalized_value, x.ord desc
    ),
    merged as (
        insert into enrichment.contacts as c
            (case_id, contact_type, value, normalized_value, source, confidence, is_verified, metadata)
        select v_case_id, i.contact_type, i.value, i.normalized_value, i.source, i.confidence,
               i.is_verified, i.metadata
          from items as i
         order by i.contact_type, i.normalized_value
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
        returning (c.xmax = 0) as inserted
    )
    select (select pg_catalog.count(*) from items),
           pg_catalog.count(*) filter (where m.inserted),
           pg_catalog.count(*) filter (where not m.inserted)
      into c_total, c_inserted, c_updated
      from merged as m;

    with items as (
        select distinct on (x.asset_type, x.asset_key) x.*
          from pg_catalog.jsonb_to_recordset(v_assets) as x(
                   ord integer, asset_type text, asset_key text, description text, institution text,
                   estimated_value numeric, details jsonb, source text, confidence numeric)
         order by x.asset_type, x.asset_key, x.ord desc
    ),
    merged as (
        insert into enrichment.assets as a
            (case_id, asset_type, asset_key, description, institution, estimated_value, details,
             source, confidence)
        select v_case_id, i.asset_type, i.asset_key, i.description, i.institution, i.estimated_value,
               i.details, i.source, i.confidence
          from items as i
         order by i.asset_type, i.asset_key
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
        returning (a.xmax = 0) as inserted
    )
    select (select pg_catalog.count(*) from items),
           pg_catalog.count(*) filter (where m.inserted),
           pg_catalog.count(*) filter (where not m.inserted)
      into a_total, a_inserted, a_updated
      from merged as m;

    return pg_catalog.jsonb_build_object(
        'case_id', v_case_id,
        'contacts', pg_catalog.jsonb_build_object(
            'inserted', c_inserted, 'updated', c_updated, 'unchanged', c_total - c_inserted - c_updated),
        'assets', pg_catalog.jsonb_build_object(
            'inserted', a_inserted, 'updated', a_updated, 'unchanged', a_total - a_inserted - a_updated),
        'inserted', c_inserted + a_inserted,
        'updated', c_updated + a_updated,
        'unchanged', (c_total - c_inserted - c_updated) + (a_total - a_inserted - a_updated)
    );
end;
$$;

comment on function public.upsert_enrichment_bundle(jsonb) is
    'Merge a vendor bundle {case_id, source, contacts: [...], assets: [...]} into enrichment.contacts and '
    'enrichment.assets on their natural keys; the same bundle twice changes nothing. Returns counts '
    '{contacts: {inserted, updated, unchanged}, assets: {...}, inserted, updated, unchanged}. Service role '
    'only; 22023 invalid bundle (message names the item), P0002 unknown case. Shape in docs/rpc.md.';

revoke execute on function public.upsert_enrichment_bundle(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.upsert_enrichment_bundle(jsonb) to service_role, dragonfly_worker;
