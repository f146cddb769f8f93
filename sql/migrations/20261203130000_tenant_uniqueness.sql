-- Uniqueness per tenant: plaintiffs by (tenant, external id) and (tenant, entity), court
-- cases by (tenant, case number).
--
-- Why: 20261203090000 gave every row a tenant but left the identities unique across all
-- tenants. An import into tenant B of a case number or a plaintiff already in tenant A then
-- either collided (a unique violation: an oracle telling B that A holds that case) or
-- linked B's rows to A's plaintiff. Each tenant now has its own book: the same creditor is
-- one plaintiff per tenant, the same index number one court case per tenant. Entities
-- (public.entities) stay shared identities: a normalized name is the same person or
-- organization whichever tenant names it, and each tenant's plaintiff links to it.
--
-- Every lookup that relied on the old constraints follows: insert_or_get_entity (here),
-- the Simplicity import (20261203130100), the demo (workers/demo).

-- ---------------------------------------------------------------------------------------
-- Constraints

alter table public.plaintiffs
    drop constraint plaintiffs_entity_id_key,
    drop constraint plaintiffs_external_id_key,
    add constraint plaintiffs_tenant_id_entity_id_key unique (tenant_id, entity_id),
    add constraint plaintiffs_tenant_id_external_id_key unique (tenant_id, external_id);

-- The unique keys lead with tenant_id, so they serve the tenant foreign keys and the
-- members' policies; the foreign key to entities (on delete set null) needs its own index now
-- that entity_id no longer leads one.
create index plaintiffs_entity_id_idx on public.plaintiffs (entity_id);

alter table judgments.cases
    drop constraint cases_case_number_key,
    add constraint cases_tenant_id_case_number_key unique (tenant_id, case_number);

comment on column public.plaintiffs.entity_id is
    'The normalized identity (entities) of this plaintiff; at most one plaintiff per entity in a tenant '
    '(entities are shared by every tenant).';
comment on column public.plaintiffs.external_id is
    'Identifier in the source system (e.g. Simplicity); unique within the tenant when present, so '
    're-imports match.';
comment on column judgments.cases.case_number is
    'The court''s index number; unique within the tenant (another tenant may hold the same number).';

-- ---------------------------------------------------------------------------------------
-- insert_or_get_entity: links within the plaintiff's tenant
--
-- Redefined (last in 20261127003300) because its "entity already belongs to plaintiff"
-- check looked at every tenant's plaintiffs: a plaintiff of tenant B could not be linked to
-- an identity tenant A's plaintiff already had, and the refusal named A's plaintiff. Now the
-- check stays inside the plaintiff's tenant, and a plaintiff or judgment in a tenant the
-- caller does not write in is not found (P0002, the missing row's message). The rest is
-- unchanged.
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
    v_tenant uuid;
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
        -- A plaintiff in a tenant the caller does not write in is a plaintiff that does not
        -- exist: same code, same message.
        select p.entity_id, p.tenant_id into v_linked, v_tenant
          from public.plaintiffs as p
         where p.id = v_plaintiff_id
           and p.tenant_id = any (tenancy.caller_tenants('write'))
           for update;
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
        -- One plaintiff per entity within a tenant; another tenant's plaintiff of the same
        -- identity is theirs (and is never named here).
        select p.id into v_other
          from public.plaintiffs as p
         where p.tenant_id = v_tenant and p.entity_id = v_id and p.id <> v_plaintiff_id;
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
        select j.debtor_entity_id into v_linked
          from public.judgments as j
         where j.id = v_judgment_id
           and j.tenant_id = any (tenancy.caller_tenants('write'))
           for update;
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
    'Entities are shared by every tenant; a plaintiff links to an entity that no other plaintiff of its '
    'tenant has. 22023 bad input, P0002 unknown plaintiff/judgment (or one in a tenant the caller does not '
    'write in), 23505 already linked elsewhere in the tenant.';

revoke execute on function public.insert_or_get_entity(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.insert_or_get_entity(jsonb) to service_role, dragonfly_worker;
