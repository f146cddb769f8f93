-- The entity rules: how names, phones and emails are normalized, and insert_or_get_entity().
--
-- Why here, once: insert_or_get_entity(), upsert_enrichment_bundle() and
-- process_simplicity_imports() must agree on what "the same person" or "the same phone" is.
-- The rules are small pure SQL functions in the intake schema (not exposed over the API).
-- They are deliberately IMMUTABLE functions without SECURITY DEFINER or a SET clause: they
-- run once or twice per staged row of an import, and a SET clause costs a configuration
-- save/restore on every call (and stops SQL functions from being inlined). Every name in
-- them is schema-qualified, so the caller's search_path cannot change what they do.
--
-- Name rule (intake.normalize_entity_name):
--   1. lower-case; for a person written "Last, First" -> "first last";
--   2. '&' -> ' and '; apostrophes, periods and backticks are dropped ("O'Brien" -> "obrien",
--      "L.L.C." -> "llc"); every other character that is not a letter, digit or space
--      becomes a space;
--   3. whitespace collapsed to single spaces and trimmed;
--   4. organizations only: a leading "the" and trailing corporate suffixes (inc,
--      incorporated, llc, llp, lp, ltd, limited, corp, corporation, co, company, pc, pllc,
--      plc) are removed, unless nothing would be left.
--   A name with no letter or digit normalizes to null (the callers refuse it).
-- An entity's identity is entity_type || ':' || normalized name (entities.normalized_key).

create or replace function intake.normalize_entity_name(entity_type text, name text)
returns text
language plpgsql
immutable
parallel safe
as $$
declare
    n text := pg_catalog.lower(name);
    stripped text;
begin
    -- strpos first: most names have no comma, and it is cheaper than the regular expression.
    if entity_type = 'person' and pg_catalog.strpos(n, ',') > 0 and n ~ '^[^,]+,[^,]+$' then
        n := pg_catalog.regexp_replace(n, '^\s*([^,]*?)\s*,\s*(.*?)\s*$', '\2 \1');
    end if;
    -- Plain lower-case words separated by single spaces (most names) need no rewriting: one
    -- regular expression finds any other character, or a leading, trailing or double space.
    if n ~ '[^a-z0-9 ]|^ | $|  ' then
        n := pg_catalog.btrim(
            pg_catalog.regexp_replace(
                pg_catalog.regexp_replace(
                    pg_catalog.regexp_replace(pg_catalog.replace(n, '&', ' and '), '[''.`’]', '', 'g'),
                    '[^[:alnum:][:space:]]', ' ', 'g'
                ),
                '[[:space:]]+', ' ', 'g'
            )
        );
    end if;
    if entity_type = 'organization' then
        stripped := pg_catalog.btrim(
            pg_catalog.regexp_replace(
                pg_catalog.regexp_replace(n, '^the ', ''),
                '( (inc|incorporated|llc|llp|lp|ltd|limited|corp|corporation|co|company|pc|pllc|plc))+$',
                ''
            )
        );
        if stripped <> '' then
            n := stripped;
        end if;
    end if;
    return nullif(n, '');
end;
$$;

comment on function intake.normalize_entity_name(text, text) is
    'The entity name rule: lower-case, "Last, First" -> "first last" for people, punctuation dropped, '
    'whitespace collapsed, corporate suffixes removed for organizations. Null when nothing is left.';

revoke execute on function intake.normalize_entity_name(text, text) from public;
grant execute on function intake.normalize_entity_name(text, text) to service_role, dragonfly_worker;

create or replace function intake.guess_entity_type(name text)
returns text
language sql
immutable
parallel safe
as $$
    select case
        when pg_catalog.lower($1) ~ '(^|[^[:alnum:]])(inc|incorporated|llc|l\.l\.c|llp|lp|ltd|limited|corp|corporation|co|company|pc|pllc|plc|bank|trust|association|partners|group|holdings|services|fund|capital|credit union)([^[:alnum:]]|$)'
            then 'organization'
        else 'person'
    end
$$;

comment on function intake.guess_entity_type(text) is
    'organization when the name carries a corporate word (inc, llc, corp, bank, trust, group...), else '
    'person. Used by the Simplicity import when debtor_type is blank and for plaintiffs.';

revoke execute on function intake.guess_entity_type(text) from public;
grant execute on function intake.guess_entity_type(text) to service_role, dragonfly_worker;

-- Phone rule: digits only; 10 digits -> +1XXXXXXXXXX; 11 digits starting with 1 -> +1...;
-- a number written with a leading '+' and 8-15 digits -> '+' || digits; anything else null.
create or replace function intake.normalize_phone(phone text)
returns text
language plpgsql
immutable
parallel safe
as $$
declare
    digits text := pg_catalog.regexp_replace(coalesce(phone, ''), '[^0-9]', '', 'g');
begin
    if pg_catalog.length(digits) = 10 and pg_catalog.left(digits, 1) not in ('0', '1') then
        return '+1' || digits;
    elsif pg_catalog.length(digits) = 11 and pg_catalog.left(digits, 1) = '1' then
        return '+' || digits;
    elsif pg_catalog.btrim(phone) ~ '^\+' and digits ~ '^[1-9][0-9]{7,14}$' then
        return '+' || digits;
    end if;
    return null;
end;
$$;

comment on function intake.normalize_phone(text) is
    'E.164 form of a phone number: 10 US digits -> +1..., 11 digits starting with 1 -> +1..., '
    '"+" and 8-15 digits kept; null when it is not a phone number.';

revoke execute on function intake.normalize_phone(text) from public;
grant execute on function intake.normalize_phone(text) to service_role, dragonfly_worker;

-- Email rule: trimmed and lower-cased; null unless it looks like local@domain.tld.
create or replace function intake.normalize_email(email text)
returns text
language sql
immutable
parallel safe
as $$
    select case
        when pg_catalog.lower(pg_catalog.btrim($1)) ~ '^[^@[:space:]]+@[^@[:space:].]+(\.[^@[:space:].]+)+$'
            then pg_catalog.lower(pg_catalog.btrim($1))
    end
$$;

comment on function intake.normalize_email(text) is
    'Trimmed, lower-cased email; null unless it looks like local@domain.tld.';

revoke execute on function intake.normalize_email(text) from public;
grant execute on function intake.normalize_email(text) to service_role, dragonfly_worker;

-- insert_or_get_entity(payload) -> entities.id
--
-- payload: {"entity_type": "person"|"organization", "name": text (required),
--           "tax_id_last4": "1234", "birth_year": 1970 (people only),
--           "address_line1", "address_line2", "city", "state" (two letters), "postal_code",
--           "plaintiff_id": uuid  -- link plaintiffs.entity_id to the entity,
--           "judgment_id": uuid   -- link judgments.debtor_entity_id to the entity}
-- Exactly one row per normalized identity, also under concurrent calls: the insert is
-- ON CONFLICT (normalized_key) DO NOTHING, and a caller that loses the race reads the winner's
-- row. An existing entity only gains attributes it lacks (nulls are filled, values never
-- overwritten). Linking never moves an existing link: a plaintiff or judgment already linked
-- to another entity, or an entity that already has a plaintiff, is refused with 23505.
create or replace function public.insert_or_get_entity(payload jsonb)
returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_allowed constant text[] := array[
        'entity_type', 'name', 'tax_id_last4', 'birth_year', 'address_line1', 'address_line2',
        'city', 'state', 'postal_code', 'plaintiff_id', 'judgment_id'
    ];
    v_unknown text;
    v_field text;
    v_type text;
    v_name text;
    v_normalized text;
    v_tax text;
    v_birth_year integer;
    v_state text;
    v_plaintiff_id uuid;
    v_judgment_id uuid;
    v_id uuid;
    v_inserted boolean := false;
    v_linked uuid;
    v_other uuid;
begin
    if payload is null or pg_catalog.jsonb_typeof(payload) <> 'object' then
        raise exception using errcode = '22023', message = 'insert_or_get_entity: payload must be a JSON object';
    end if;
    select pg_catalog.string_agg(k, ', ' order by k) into v_unknown
      from pg_catalog.jsonb_object_keys(payload) as k
     where k <> all (v_allowed);
    if v_unknown is not null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('insert_or_get_entity: unknown field(s) %s', v_unknown);
    end if;

    -- Every present text field must be a string (or null) of sane length.
    foreach v_field in array array['entity_type', 'name', 'tax_id_last4', 'address_line1', 'address_line2',
                                   'city', 'state', 'postal_code', 'plaintiff_id', 'judgment_id'] loop
        if pg_catalog.jsonb_typeof(payload -> v_field) not in ('string', 'null') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('insert_or_get_entity: %s must be a string', v_field);
        end if;
        if pg_catalog.length(payload ->> v_field) > 500 then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('insert_or_get_entity: %s must be at most 500 characters', v_field);
        end if;
    end loop;

    v_type := pg_catalog.lower(pg_catalog.btrim(payload ->> 'entity_type'));
    if v_type is null or v_type not in ('person', 'organization') then
        raise exception using
            errcode = '22023',
            message = 'insert_or_get_entity: entity_type must be person or organization';
    end if;

    v_name := nullif(pg_catalog.btrim(payload ->> 'name'), '');
    if v_name is null then
        raise exception using errcode = '22023', message = 'insert_or_get_entity: name is required';
    end if;
    v_normalized := intake.normalize_entity_name(v_type, v_name);
    if v_normalized is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'insert_or_get_entity: name %s has no letters or digits', pg_catalog.quote_literal(v_name)
            );
    end if;

    v_tax := nullif(pg_catalog.btrim(payload ->> 'tax_id_last4'), '');
    if v_tax is not null and v_tax !~ '^[0-9]{4}$' then
        raise exception using
            errcode = '22023', message = 'insert_or_get_entity: tax_id_last4 must be exactly four digits';
    end if;

    if pg_catalog.jsonb_typeof(payload -> 'birth_year') = 'number' then
        if (payload ->> 'birth_year')::numeric not between 1850 and 2100
           or (payload ->> 'birth_year')::numeric <> pg_catalog.trunc((payload ->> 'birth_year')::numeric) then
            raise exception using
                errcode = '22023',
                message = 'insert_or_get_entity: birth_year must be a whole year between 1850 and 2100';
        end if;
        v_birth_year := (payload ->> 'birth_year')::integer;
        if v_type <> 'person' then
            raise exception using
                errcode = '22023', message = 'insert_or_get_entity: birth_year is only for people';
        end if;
    elsif pg_catalog.jsonb_typeof(payload -> 'birth_year') is distinct from 'null'
          and payload ? 'birth_year' then
        raise exception using
            errcode = '22023',
            message = 'insert_or_get_entity: birth_year must be a whole year between 1850 and 2100';
    end if;

    v_state := pg_catalog.upper(nullif(pg_catalog.btrim(payload ->> 'state'), ''));
    if v_state is not null and v_state !~ '^[A-Z]{2}$' then
        raise exception using
            errcode = '22023', message = 'insert_or_get_entity: state must be a two-letter code';
    end if;

    foreach v_field in array array['plaintiff_id', 'judgment_id'] loop
        if nullif(pg_catalog.btrim(payload ->> v_field), '') is not null
           and pg_catalog.btrim(payload ->> v_field)
               !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format('insert_or_get_entity: %s must be a uuid', v_field);
        end if;
    end loop;
    v_plaintiff_id := nullif(pg_catalog.btrim(payload ->> 'plaintiff_id'), '')::uuid;
    v_judgment_id := nullif(pg_catalog.btrim(payload ->> 'judgment_id'), '')::uuid;

    -- Insert, or find the row that won.
    for attempt in 1..3 loop
        insert into public.entities as e
            (entity_type, display_name, normalized_name, tax_id_last4, birth_year,
             address_line1, address_line2, city, state, postal_code)
        values (
            v_type, v_name, v_normalized, v_tax, v_birth_year,
            nullif(pg_catalog.btrim(payload ->> 'address_line1'), ''),
            nullif(pg_catalog.btrim(payload ->> 'address_line2'), ''),
            nullif(pg_catalog.btrim(payload ->> 'city'), ''),
            v_state,
            nullif(pg_catalog.btrim(payload ->> 'postal_code'), '')
        )
        on conflict (normalized_key) do nothing
        returning e.id into v_id;
        if v_id is not null then
            v_inserted := true;
            exit;
        end if;
        select e.id into v_id from public.entities as e
         where e.normalized_key = v_type || ':' || v_normalized;
        exit when v_id is not null;
    end loop;
    if v_id is null then
        raise exception using
            errcode = '40001',
            message = 'insert_or_get_entity: the entity changed concurrently; retry';
    end if;

    if not v_inserted then
        update public.entities as e
           set tax_id_last4 = coalesce(e.tax_id_last4, v_tax),
               birth_year = coalesce(e.birth_year, v_birth_year),
               address_line1 = coalesce(e.address_line1, nullif(pg_catalog.btrim(payload ->> 'address_line1'), '')),
               address_line2 = coalesce(e.address_line2, nullif(pg_catalog.btrim(payload ->> 'address_line2'), '')),
               city = coalesce(e.city, nullif(pg_catalog.btrim(payload ->> 'city'), '')),
               state = coalesce(e.state, v_state),
               postal_code = coalesce(e.postal_code, nullif(pg_catalog.btrim(payload ->> 'postal_code'), ''))
         where e.id = v_id
           and ((e.tax_id_last4 is null and v_tax is not null)
             or (e.birth_year is null and v_birth_year is not null)
             or (e.address_line1 is null and nullif(pg_catalog.btrim(payload ->> 'address_line1'), '') is not null)
             or (e.address_line2 is null and nullif(pg_catalog.btrim(payload ->> 'address_line2'), '') is not null)
             or (e.city is null and nullif(pg_catalog.btrim(payload ->> 'city'), '') is not null)
             or (e.state is null and v_state is not null)
             or (e.postal_code is null and nullif(pg_catalog.btrim(payload ->> 'postal_code'), '') is not null));
    end if;

    if v_plaintiff_id is not null then
        select p.entity_id into v_linked from public.plaintiffs as p where p.id = v_plaintiff_id for update;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('insert_or_get_entity: plaintiff %s does not exist', v_plaintiff_id);
        end if;
        if v_linked is not null and v_linked <> v_id then
            raise exception using
                errcode = '23505',
                message = pg_catalog.format(
                    'insert_or_get_entity: plaintiff %s is already linked to entity %s', v_plaintiff_id, v_linked
                );
        end if;
        select p.id into v_other from public.plaintiffs as p where p.entity_id = v_id and p.id <> v_plaintiff_id;
        if v_other is not null then
            raise exception using
                errcode = '23505',
                message = pg_catalog.format(
                    'insert_or_get_entity: entity %s already belongs to plaintiff %s', v_id, v_other
                );
        end if;
        if v_linked is null then
            update public.plaintiffs as p set entity_id = v_id where p.id = v_plaintiff_id;
        end if;
    end if;

    if v_judgment_id is not null then
        select j.debtor_entity_id into v_linked from public.judgments as j where j.id = v_judgment_id for update;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('insert_or_get_entity: judgment %s does not exist', v_judgment_id);
        end if;
        if v_linked is not null and v_linked <> v_id then
            raise exception using
                errcode = '23505',
                message = pg_catalog.format(
                    'insert_or_get_entity: judgment %s already has debtor entity %s', v_judgment_id, v_linked
                );
        end if;
        if v_linked is null then
            update public.judgments as j set debtor_entity_id = v_id where j.id = v_judgment_id;
        end if;
    end if;

    return v_id;
end;
$$;

comment on function public.insert_or_get_entity(jsonb) is
    'Return the id of the entity with this normalized identity (entity_type + normalized name), creating '
    'it if needed: exactly one row per identity, also under concurrency. Fills attributes the entity '
    'lacks; optionally links plaintiff_id (plaintiffs.entity_id) or judgment_id (judgments.debtor_entity_id). '
    '22023 bad input, P0002 unknown plaintiff/judgment, 23505 already linked elsewhere.';

revoke execute on function public.insert_or_get_entity(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.insert_or_get_entity(jsonb) to service_role, dragonfly_worker;
