-- Administering tenants and their members: the functions `dragonfly tenants` and
-- `dragonfly members` call.
--
-- Why: 20261203090000 made public.tenants and public.tenant_members the source of truth for
-- who may see and change which cases, but left writing them to hand-made SQL. These
-- functions are the one way the tooling does it, with the same rules everywhere:
--   * tenancy.find_tenant(ref)         a tenant by slug or id;
--   * tenancy.list_tenants()           the tenants with their member and case counts;
--   * tenancy.create_tenant(slug, name)
--   * tenancy.find_user(email)         a user of auth.users by email;
--   * tenancy.add_member(tenant, user, role), tenancy.remove_member(tenant, user),
--     tenancy.list_members(tenant).
-- Tenants are created by internal callers only (the fleet's service tooling, the owner).
-- Members are managed by whoever may administer the tenant (tenancy.caller_tenants('admin'):
-- internal callers and enforcement_operator everywhere, a signed-in admin in their tenants);
-- a tenant the caller cannot see answers exactly like a tenant that does not exist (P0002).
-- They live in the tenancy schema, which PostgREST does not serve, and only service_role
-- (and the owner) may execute them: a deployment that wants its console's admins to manage
-- members grants add_member, remove_member and list_members to authenticated, and the rule
-- above already holds for them.

-- A tenant by slug (any case) or id, among those the caller may read.
create function tenancy.find_tenant(p_ref text)
returns public.tenants
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_ref text := pg_catalog.btrim(p_ref);
    v_tenant public.tenants;
begin
    if v_ref is null or v_ref = '' then
        raise exception using errcode = '22023', message = 'find_tenant: a tenant slug or id is required';
    end if;
    if v_ref ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
        select t.* into v_tenant
          from public.tenants as t
         where t.id = v_ref::uuid and t.id = any (tenancy.caller_tenants('read'));
    else
        select t.* into v_tenant
          from public.tenants as t
         where t.slug = pg_catalog.lower(v_ref) and t.id = any (tenancy.caller_tenants('read'));
    end if;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('find_tenant: tenant %s does not exist', enforcement_private.quoted_input(v_ref));
    end if;
    return v_tenant;
end;
$$;

comment on function tenancy.find_tenant(text) is
    'The tenant named by p_ref: a tenant id, or a slug (case-insensitive). Only tenants the caller may read '
    'are found; any other is P0002, like a tenant that does not exist. 22023 blank.';

revoke execute on function tenancy.find_tenant(text) from public;
grant execute on function tenancy.find_tenant(text) to service_role;

create function tenancy.list_tenants()
returns table (id uuid, slug text, name text, created_at timestamptz, members bigint, cases bigint)
language sql
stable
security definer
set search_path = ''
as $$
    select t.id, t.slug, t.name, t.created_at,
           (select pg_catalog.count(*) from public.tenant_members as m where m.tenant_id = t.id),
           (select pg_catalog.count(*) from public.enforcement_cases as c where c.tenant_id = t.id)
      from public.tenants as t
     where t.id = any (tenancy.caller_tenants('read'))
     order by t.slug
$$;

comment on function tenancy.list_tenants() is
    'The tenants the caller may read, by slug: id, slug, name, created_at, how many members and how many '
    'enforcement cases each has.';

revoke execute on function tenancy.list_tenants() from public;
grant execute on function tenancy.list_tenants() to service_role;

create function tenancy.create_tenant(p_slug text, p_name text default null)
returns public.tenants
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_slug text := pg_catalog.btrim(p_slug);
    v_name text := pg_catalog.btrim(p_name);
    v_tenant public.tenants;
begin
    if dragonfly.caller_trust_level() <> 'internal' then
        raise exception using
            errcode = '42501',
            message = 'create_tenant: tenants are created by the service tooling only';
    end if;
    if v_slug is null or v_slug !~ '^[a-z0-9][a-z0-9-]{0,62}$' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'create_tenant: a slug is 1 to 63 lowercase letters, digits and hyphens, not starting with a hyphen (got %s)',
                enforcement_private.quoted_input(p_slug)
            );
    end if;
    -- A slug that reads as an id would make "slug or id" ambiguous.
    if v_slug ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('create_tenant: slug %s looks like a tenant id', pg_catalog.quote_literal(v_slug));
    end if;
    if p_name is not null and (v_name = '' or pg_catalog.length(v_name) > 200) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'create_tenant: a name is 1 to 200 characters (got %s)', enforcement_private.quoted_input(p_name)
            );
    end if;

    insert into public.tenants as t (slug, name)
    values (v_slug, coalesce(v_name, v_slug))
    on conflict (slug) do nothing
    returning t.* into v_tenant;
    if not found then
        raise exception using
            errcode = '23505',
            message = pg_catalog.format('create_tenant: tenant %s already exists', pg_catalog.quote_literal(v_slug));
    end if;
    return v_tenant;
end;
$$;

comment on function tenancy.create_tenant(text, text) is
    'Create the tenant p_slug (1-63 of a-z, 0-9 and -, not starting with -, not shaped like an id) named '
    'p_name (default: the slug). Internal callers only (42501). 22023 bad slug or name, 23505 the slug exists.';

revoke execute on function tenancy.create_tenant(text, text) from public;
grant execute on function tenancy.create_tenant(text, text) to service_role;

-- Users by email: who is registered is not for everyone to ask.
create function tenancy.find_user(p_email text)
returns uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_email text := pg_catalog.lower(pg_catalog.btrim(p_email));
    v_ids uuid[];
begin
    if dragonfly.caller_trust_level() <> 'internal' then
        raise exception using errcode = '42501', message = 'find_user: users are looked up by the service tooling only';
    end if;
    if v_email is null or v_email = '' then
        raise exception using errcode = '22023', message = 'find_user: an email is required';
    end if;
    select pg_catalog.array_agg(u.id order by u.id) into v_ids
      from auth.users as u
     where pg_catalog.lower(u.email) = v_email;
    if v_ids is null then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('find_user: no user has email %s', enforcement_private.quoted_input(v_email));
    end if;
    if pg_catalog.cardinality(v_ids) > 1 then
        raise exception using
            errcode = '21000',
            message = pg_catalog.format(
                'find_user: %s users have email %s', pg_catalog.cardinality(v_ids), enforcement_private.quoted_input(v_email)
            ),
            hint = 'Name the user by id.';
    end if;
    return v_ids[1];
end;
$$;

comment on function tenancy.find_user(text) is
    'The id of the auth.users row with email p_email (case-insensitive). Internal callers only (42501). '
    '22023 blank, P0002 no such user, 21000 more than one.';

revoke execute on function tenancy.find_user(text) from public;
grant execute on function tenancy.find_user(text) to service_role;

-- The door of the member functions: admin of the tenant, or the tenant is not found.
create function tenancy.require_admin(p_rpc text, p_tenant uuid)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    if p_tenant is not null and tenancy.may('admin', p_tenant) then
        return;
    end if;
    if p_tenant is not null and tenancy.may('read', p_tenant) then
        raise exception using
            errcode = '42501',
            message = pg_catalog.format('%s: only an admin of tenant %s manages its members', p_rpc, p_tenant);
    end if;
    raise exception using
        errcode = 'P0002',
        message = pg_catalog.format('%s: tenant %s does not exist', p_rpc, coalesce(p_tenant::text, 'null'));
end;
$$;

comment on function tenancy.require_admin(text, uuid) is
    'Raise unless the caller may administer tenant p_tenant: 42501 when they may only read it, P0002 (the '
    'missing tenant''s message) when they cannot see it. Internal.';

revoke execute on function tenancy.require_admin(text, uuid) from public;

create function tenancy.add_member(p_tenant uuid, p_user uuid, p_role text)
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_before text;
begin
    perform tenancy.require_admin('add_member', p_tenant);
    if p_role is null or p_role not in ('admin', 'operator', 'viewer') then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'add_member: role must be admin, operator or viewer (got %s)', enforcement_private.quoted_input(p_role)
            );
    end if;
    if p_user is null or not exists (select 1 from auth.users as u where u.id = p_user) then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('add_member: user %s does not exist', coalesce(p_user::text, 'null'));
    end if;

    select m.role into v_before
      from public.tenant_members as m
     where m.tenant_id = p_tenant and m.user_id = p_user
       for update;
    if not found then
        -- Two adds at once: the later one's role stays.
        insert into public.tenant_members as m (tenant_id, user_id, role)
        values (p_tenant, p_user, p_role)
        on conflict (tenant_id, user_id) do update set role = excluded.role;
        return null;
    end if;
    if v_before <> p_role then
        update public.tenant_members as m
           set role = p_role
         where m.tenant_id = p_tenant and m.user_id = p_user;
    end if;
    return v_before;
end;
$$;

comment on function tenancy.add_member(uuid, uuid, text) is
    'Make user p_user a member of tenant p_tenant with role p_role (admin | operator | viewer), or change '
    'their role; returns the role they had (null: newly added). Takes effect on the member''s next request. '
    'Needs admin of the tenant: 42501 for a reader, P0002 for a tenant the caller cannot see. 22023 bad '
    'role, P0002 no such user.';

revoke execute on function tenancy.add_member(uuid, uuid, text) from public;
grant execute on function tenancy.add_member(uuid, uuid, text) to service_role;

create function tenancy.remove_member(p_tenant uuid, p_user uuid)
returns text
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_role text;
begin
    perform tenancy.require_admin('remove_member', p_tenant);
    delete from public.tenant_members as m
     where m.tenant_id = p_tenant and m.user_id = p_user
    returning m.role into v_role;
    return v_role;
end;
$$;

comment on function tenancy.remove_member(uuid, uuid) is
    'Remove user p_user from tenant p_tenant; returns the role they had (null: they were not a member). '
    'They lose access on their next request, whatever their token still says. Needs admin of the tenant '
    '(as add_member).';

revoke execute on function tenancy.remove_member(uuid, uuid) from public;
grant execute on function tenancy.remove_member(uuid, uuid) to service_role;

create function tenancy.list_members(p_tenant uuid)
returns table (user_id uuid, email text, role text, created_at timestamptz)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    perform tenancy.require_admin('list_members', p_tenant);
    return query
        select m.user_id, u.email, m.role, m.created_at
          from public.tenant_members as m
          left join auth.users as u on u.id = m.user_id
         where m.tenant_id = p_tenant
         order by case m.role when 'admin' then 1 when 'operator' then 2 else 3 end, u.email, m.user_id;
end;
$$;

comment on function tenancy.list_members(uuid) is
    'The members of tenant p_tenant: user id, email (auth.users), role, since when; admins first. Needs '
    'admin of the tenant (as add_member).';

revoke execute on function tenancy.list_members(uuid) from public;
grant execute on function tenancy.list_members(uuid) to service_role;
