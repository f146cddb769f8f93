-- Tenants and their members: who may see and change which cases.
--
-- Why: an operator used to be only the PostgreSQL role enforcement_operator, and every
-- operator saw every case. On Supabase, Auth issues every signed-in user the role
-- `authenticated`; what an Ops user may do must follow from a table of memberships, as in
-- Supabase's "Custom Claims & Role-based Access Control" guide:
--   * public.tenants                 one row per tenant (a default one for single-tenant use);
--   * public.tenant_members          (tenant_id, user_id, role): admin | operator | viewer;
--   * public.custom_access_token_hook(event)  puts the memberships in the token (claim
--                                    `tenant_roles`) for the console to show;
--   * tenancy.caller_tenants(need)   the one answer to "in which tenants may the caller do
--                                    <need>" (read | write | admin), used by every policy;
--   * tenancy.may_on_case(need, id)  the same question for one case, used by the RPCs.
--
-- The database decides from the table, not from the token: removing a member takes effect
-- on their next request, not when their token expires. The token's claim is what the
-- console shows.
--
-- Who reaches which tenants (docs/security.md, "Tenants"):
--   a signed-in user (JWT sub)  the tenants they are a member of: viewer reads, operator and
--                               admin also write, admin also manages members;
--   enforcement_operator (the PostgreSQL role, service tooling) and internal callers (the
--                               fleet, service_role, the owner): every tenant;
--   everyone else (anon, a signed-in non-member): no tenant.
-- The setting dragonfly.acting_tenant narrows any caller to one tenant and never widens:
-- a worker sets it for each job from the job's envelope, so the fleet acts inside the
-- tenant the job names.
--
-- Rows carry their tenant: plaintiffs (the root), judgments, court cases (judgments.cases)
-- and enforcement cases carry tenant_id, filled from the parent row by triggers and never
-- changed; events, history, actions, documents and a case's tasks inherit their case's
-- visibility through their existing policies. Existing rows move into the default tenant
-- (a constant default: no table rewrite).

-- ---------------------------------------------------------------------------------------
-- Roles and auth.users where Supabase's are missing (plain PostgreSQL, the embedded server)

do $$
begin
    if not exists (select 1 from pg_catalog.pg_roles where rolname = 'supabase_auth_admin') then
        begin
            create role supabase_auth_admin nologin noinherit;
        exception when duplicate_object or unique_violation then
            null;
        end;
    end if;
end
$$;

-- Supabase keeps its users in auth.users; elsewhere a table of the same name and the two
-- columns this project reads stands in, so memberships can reference users everywhere.
create table if not exists auth.users (
    id uuid primary key,
    email text
);

-- ---------------------------------------------------------------------------------------
-- Tenants and memberships

create schema if not exists tenancy;

comment on schema tenancy is
    'The tenant-access helpers every policy and RPC asks (caller_tenants, may_on_case). Not exposed '
    'by PostgREST; API roles have USAGE so row-level security policies can call them.';

-- Functions here are executed by whom they are granted to, not by PUBLIC.
alter default privileges in schema tenancy revoke execute on functions from public;

-- anon gets nothing here: no policy it meets calls these (it reaches no tenant anyway).
grant usage on schema tenancy
    to authenticated, enforcement_operator, dragonfly_worker, service_role, supabase_auth_admin;

create table public.tenants (
    id uuid primary key default gen_random_uuid(),
    slug text not null check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name text not null check (pg_catalog.btrim(name) <> '' and pg_catalog.length(name) <= 200),
    created_at timestamptz not null default now(),
    constraint tenants_slug_key unique (slug)
);

comment on table public.tenants is
    'The organisations whose cases this deployment enforces. Every case and everything hanging off it '
    'belongs to one. The default tenant (slug default) is created by the migration.';

create function tenancy.default_tenant_id()
returns uuid
language sql
immutable
parallel safe
set search_path = ''
as $$
    select '00000000-0000-4000-8000-000000000001'::uuid
$$;

comment on function tenancy.default_tenant_id() is
    'The id of the default tenant (slug default): where rows land when nobody names a tenant.';

grant execute on function tenancy.default_tenant_id()
    to authenticated, enforcement_operator, dragonfly_worker, service_role;

insert into public.tenants (id, slug, name)
values (tenancy.default_tenant_id(), 'default', 'Default tenant');

create table public.tenant_members (
    tenant_id uuid not null references public.tenants (id) on delete cascade,
    user_id uuid not null references auth.users (id) on delete cascade,
    role text not null check (role in ('admin', 'operator', 'viewer')),
    created_at timestamptz not null default now(),
    constraint tenant_members_pkey primary key (tenant_id, user_id)
);

comment on table public.tenant_members is
    'Who belongs to which tenant, with which role: viewer reads, operator also writes through the RPCs '
    'and queues jobs, admin also manages members. The source of truth for tenant access; the access '
    'token hook copies it into the claim tenant_roles.';

create index tenant_members_user_id_idx on public.tenant_members (user_id);

alter table public.tenants enable row level security;
alter table public.tenant_members enable row level security;

revoke all on public.tenants, public.tenant_members from public, anon, authenticated, enforcement_operator;
grant select on public.tenants, public.tenant_members to authenticated, enforcement_operator;
grant all on public.tenants, public.tenant_members to service_role;
-- The access token hook reads memberships as supabase_auth_admin (Supabase's guide).
grant select on public.tenant_members to supabase_auth_admin;

-- ---------------------------------------------------------------------------------------
-- Who the caller is and where they reach

-- No exception block (a subtransaction per call): the claims PostgREST sets are JSON; a
-- session that sets claims that are not fails its statement (22P02), which grants nothing.
create function tenancy.caller_user_id()
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
    v_setting text := pg_catalog.current_setting('request.jwt.claims', true);
    v_sub text;
begin
    if v_setting is null or v_setting = '' then
        return null;
    end if;
    v_sub := v_setting::json ->> 'sub';
    if v_sub ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
        return v_sub::uuid;
    end if;
    return null;
end;
$$;

comment on function tenancy.caller_user_id() is
    'The signed-in user''s id: the JWT''s sub claim when it is a uuid, else null (anon, the fleet). '
    'Claims that are not JSON are an error (22P02).';

grant execute on function tenancy.caller_user_id()
    to authenticated, enforcement_operator, dragonfly_worker, service_role;

create function tenancy.acting_tenant()
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
    v_setting text := pg_catalog.current_setting('dragonfly.acting_tenant', true);
begin
    if v_setting is null or v_setting = '' then
        return null;
    end if;
    -- A value that is not a uuid narrows to no tenant at all rather than being ignored.
    if v_setting !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
        return '00000000-0000-0000-0000-000000000000'::uuid;
    end if;
    return v_setting::uuid;
end;
$$;

comment on function tenancy.acting_tenant() is
    'The tenant the setting dragonfly.acting_tenant narrows this session to (a worker sets it per job), '
    'or null when unset. A value that is not a uuid narrows to no tenant.';

grant execute on function tenancy.acting_tenant()
    to authenticated, enforcement_operator, dragonfly_worker, service_role;

-- What caller_tenants() found, per need, is kept for the rest of the transaction in a
-- transaction-local setting, keyed by everything its answer depends on (the role, the
-- claims, the acting tenant and an epoch that every change of tenants or memberships in the
-- transaction bumps). Why: the policies ask it once per statement, but only when a row needs
-- filtering, so its cost was exactly the difference between reading another tenant's row
-- and reading a missing one (a timing oracle of some 60 us); cached, a request pays for it
-- once. A session that could forge the setting could as well forge request.jwt.claims, so
-- the cache gives nobody a reach they could not already claim. A membership change committed
-- by another transaction is seen by the next request.
create function tenancy.caller_tenants(p_need text default 'read')
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_role text := pg_catalog.current_setting('role');
    v_claims text := pg_catalog.current_setting('request.jwt.claims', true);
    v_acting_setting text := pg_catalog.current_setting('dragonfly.acting_tenant', true);
    v_slot text;
    v_key text;
    v_cached text;
    v_acting uuid;
    v_user uuid;
    v_sub text;
    v_tenants uuid[];
begin
    if p_need is null or p_need not in ('read', 'write', 'admin') then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('caller_tenants: need must be read, write or admin, not %s', p_need);
    end if;
    if v_role in ('none', '') then
        v_role := session_user::text;
    end if;

    v_slot := 'dragonfly.caller_tenants_' || p_need;
    -- The claims enter the key as their length and hash: the cache lives one transaction,
    -- in which PostgREST sets the claims once.
    -- The free-form parts are quoted literals, so no two states share a key.
    v_key := pg_catalog.format(
        '%s/%s/%s/%s/%s=',
        pg_catalog.quote_nullable(pg_catalog.current_setting('dragonfly.tenancy_epoch', true)),
        pg_catalog.length(v_claims), pg_catalog.hashtext(v_claims),
        pg_catalog.quote_nullable(v_acting_setting), pg_catalog.quote_nullable(v_role)
    );
    v_cached := pg_catalog.current_setting(v_slot, true);
    if v_cached is not null and pg_catalog.starts_with(v_cached, v_key) then
        return pg_catalog.substr(v_cached, pg_catalog.length(v_key) + 1)::uuid[];
    end if;

    if v_acting_setting is not null and v_acting_setting <> '' then
        -- A value that is not a uuid narrows to no tenant at all rather than being ignored.
        v_acting := case
            when v_acting_setting ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                then v_acting_setting::uuid
            else '00000000-0000-0000-0000-000000000000'::uuid
        end;
    end if;

    if v_role = 'authenticated' then
        -- Signed-in users reach their memberships.
        -- caller_user_id(), inline: this is the path every signed-in request takes.
        v_sub := v_claims::json ->> 'sub';
        if v_sub ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
            v_user := v_sub::uuid;
        end if;
        select coalesce(pg_catalog.array_agg(m.tenant_id), '{}')
          into v_tenants
          from public.tenant_members as m
         where m.user_id = v_user
           and (v_acting is null or m.tenant_id = v_acting)
           and case p_need
                   when 'read' then true
                   when 'write' then m.role in ('operator', 'admin')
                   else m.role = 'admin'
               end;
        v_tenants := coalesce(v_tenants, '{}');
    elsif v_role <> 'anon'
          and (dragonfly.caller_trust_level() = 'internal'
               or pg_catalog.pg_has_role(v_role, 'enforcement_operator', 'usage')) then
        -- The fleet, service tooling and the enforcement_operator role reach every tenant;
        -- narrowed, only a tenant that exists (an unknown or malformed setting reaches none).
        select coalesce(pg_catalog.array_agg(t.id), '{}')
          into v_tenants
          from public.tenants as t
         where v_acting is null or t.id = v_acting;
    else
        -- anon, and a JWT for any other role, are nobody's membership.
        v_tenants := '{}';
    end if;

    perform pg_catalog.set_config(v_slot, v_key || v_tenants::text, true);
    return v_tenants;
end;
$$;

create function tenancy.tg_bump_tenancy_epoch()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform pg_catalog.set_config(
        'dragonfly.tenancy_epoch',
        (coalesce(nullif(pg_catalog.current_setting('dragonfly.tenancy_epoch', true), ''), '0')::bigint + 1)::text,
        true
    );
    return null;
end;
$$;

comment on function tenancy.tg_bump_tenancy_epoch() is
    'Statement trigger on tenants and tenant_members: a change invalidates what caller_tenants() '
    'kept for the rest of the transaction.';

revoke execute on function tenancy.tg_bump_tenancy_epoch() from public;

create trigger tenants_bump_tenancy_epoch
    after insert or update or delete or truncate on public.tenants
    for each statement execute function tenancy.tg_bump_tenancy_epoch();
create trigger tenant_members_bump_tenancy_epoch
    after insert or update or delete or truncate on public.tenant_members
    for each statement execute function tenancy.tg_bump_tenancy_epoch();
alter table public.tenants enable always trigger tenants_bump_tenancy_epoch;
alter table public.tenant_members enable always trigger tenant_members_bump_tenancy_epoch;

comment on function tenancy.caller_tenants(text) is
    'The tenants in which the caller may do p_need (read | write | admin), decided from the session: '
    'internal callers and the enforcement_operator role reach every tenant; a signed-in user '
    '(authenticated, JWT sub) reaches their memberships (viewer: read; operator: read, write; admin: '
    'all three); anyone else none. dragonfly.acting_tenant narrows it to one tenant. Every tenant '
    'policy calls it once per statement.';

revoke execute on function tenancy.caller_tenants(text) from public;
grant execute on function tenancy.caller_tenants(text)
    to authenticated, enforcement_operator, dragonfly_worker, service_role;

create function tenancy.may(p_need text, p_tenant uuid)
returns boolean
language sql
stable
set search_path = ''
as $$
    select p_tenant is not null and p_tenant = any (tenancy.caller_tenants(p_need))
$$;

comment on function tenancy.may(text, uuid) is
    'Whether the caller may do p_need (read | write | admin) in tenant p_tenant.';

revoke execute on function tenancy.may(text, uuid) from public;
grant execute on function tenancy.may(text, uuid)
    to authenticated, enforcement_operator, dragonfly_worker, service_role;

-- ---------------------------------------------------------------------------------------
-- Signed-in operators are operators

-- caller_trust_level() gains its signed-in branch: a user who is an operator or admin of at
-- least one tenant is an operator (what they may touch is still decided per tenant). The
-- rest is unchanged from 20261202170050.
create or replace function dragonfly.caller_trust_level()
returns text
language plpgsql
stable
set search_path = ''
as $$
declare
    v_role text := dragonfly.caller_role();
    v_owner text;
    v_user uuid;
begin
    if v_role = 'service_role'
       or pg_catalog.pg_has_role(v_role, 'service_role', 'usage')
       or pg_catalog.pg_has_role(v_role, 'dragonfly_worker', 'usage') then
        return 'internal';
    end if;
    select n.nspowner::regrole::text into v_owner from pg_catalog.pg_namespace as n where n.nspname = 'dragonfly';
    if pg_catalog.pg_has_role(v_role, v_owner, 'usage') then
        return 'internal';
    end if;
    if pg_catalog.pg_has_role(v_role, 'enforcement_operator', 'usage') then
        return 'operator';
    end if;
    if v_role = 'authenticated' then
        v_user := tenancy.caller_user_id();
        -- public.tenant_members is read as this function's owner (it is called from
        -- SECURITY DEFINER RPCs and from tenancy.caller_tenants).
        if v_user is not null and exists (
            select 1 from public.tenant_members as m
             where m.user_id = v_user and m.role in ('operator', 'admin')
        ) then
            return 'operator';
        end if;
    end if;
    return 'public';
end;
$$;

-- The function is not SECURITY DEFINER; a signed-in caller reading tenant_members through it
-- sees what the membership policies below let it see, which includes its own rows.

-- ---------------------------------------------------------------------------------------
-- The access token hook

create function public.custom_access_token_hook(event jsonb)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_claims jsonb := event -> 'claims';
    v_user uuid;
    v_roles jsonb;
begin
    if pg_catalog.jsonb_typeof(v_claims) is distinct from 'object' then
        v_claims := '{}'::jsonb;
    end if;
    begin
        v_user := (event ->> 'user_id')::uuid;
    exception when invalid_text_representation then
        v_user := null;
    end;
    select coalesce(pg_catalog.jsonb_object_agg(m.tenant_id::text, m.role), '{}'::jsonb)
      into v_roles
      from public.tenant_members as m
     where m.user_id = v_user;
    return pg_catalog.jsonb_set(
        event,
        '{claims}',
        v_claims || pg_catalog.jsonb_build_object('tenant_roles', v_roles)
    );
end;
$$;

comment on function public.custom_access_token_hook(jsonb) is
    'Supabase Auth''s custom access token hook: adds the claim tenant_roles {"<tenant id>": "admin" | '
    '"operator" | "viewer"} ({} for a non-member) and keeps every other claim. Executable by '
    'supabase_auth_admin only; install it in the dashboard (Authentication > Hooks) or config.toml.';

revoke execute on function public.custom_access_token_hook(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin;
grant usage on schema public to supabase_auth_admin;

-- ---------------------------------------------------------------------------------------
-- Membership rows: a member sees their own; a tenant's admins see its members; the hook's
-- role reads all of them.

create policy "Members see their own memberships"
    on public.tenant_members
    for select
    to authenticated
    using (user_id = tenancy.caller_user_id());

create policy "Admins see their tenants' members"
    on public.tenant_members
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('admin'))::uuid[]));

create policy "The access token hook reads memberships"
    on public.tenant_members
    as permissive
    for select
    to supabase_auth_admin
    using (true);

create policy "Members see their tenants"
    on public.tenants
    for select
    to authenticated, enforcement_operator
    using (id = any ((select tenancy.caller_tenants('read'))::uuid[]));

-- ---------------------------------------------------------------------------------------
-- Rows carry their tenant

alter table public.plaintiffs
    add column tenant_id uuid not null default tenancy.default_tenant_id()
        references public.tenants (id) on delete restrict;
alter table public.judgments
    add column tenant_id uuid not null default tenancy.default_tenant_id()
        references public.tenants (id) on delete restrict;
alter table judgments.cases
    add column tenant_id uuid not null default tenancy.default_tenant_id()
        references public.tenants (id) on delete restrict;
alter table public.enforcement_cases
    add column tenant_id uuid not null default tenancy.default_tenant_id()
        references public.tenants (id) on delete restrict;

-- Children take their parent's tenant: the default only placed the existing rows.
alter table public.judgments alter column tenant_id drop default;
alter table judgments.cases alter column tenant_id drop default;
alter table public.enforcement_cases alter column tenant_id drop default;

comment on column public.plaintiffs.tenant_id is
    'The tenant this plaintiff, and everything of theirs, belongs to (the default tenant when not named).';
comment on column public.judgments.tenant_id is 'Its plaintiff''s tenant (set by a trigger; never changes).';
comment on column judgments.cases.tenant_id is 'Its judgment''s tenant (set by a trigger; never changes).';
comment on column public.enforcement_cases.tenant_id is 'Its judgment''s tenant (set by a trigger; never changes).';

-- Plaintiffs and court cases get indexes leading with tenant_id from their per-tenant unique
-- keys (20261203130000); judgments and enforcement cases get their own.
create index judgments_tenant_id_idx on public.judgments (tenant_id);
create index enforcement_cases_tenant_id_idx on public.enforcement_cases (tenant_id);

-- The children take their parent's tenant. A tenant given that differs from the parent's
-- is refused (a case cannot sit in another tenant than its judgment), and a row never moves
-- between tenants. Static SQL per parent (no dynamic EXECUTE): imports insert these rows by
-- the hundred thousand.
create function tenancy.inherited_tenant(
    p_op text,
    p_table text,
    p_parent_tenant uuid,
    p_new_tenant uuid,
    p_old_tenant uuid
)
returns uuid
language plpgsql
immutable
set search_path = ''
as $$
begin
    if p_parent_tenant is null then
        -- No parent: the foreign key reports it.
        return p_new_tenant;
    end if;
    if p_op = 'UPDATE' and (p_new_tenant is distinct from p_old_tenant or p_parent_tenant <> p_old_tenant) then
        raise exception using
            errcode = '23514',
            message = pg_catalog.format('%s: a row cannot move to another tenant', p_table);
    end if;
    if p_op = 'INSERT' and p_new_tenant is not null and p_new_tenant <> p_parent_tenant then
        raise exception using
            errcode = '23514',
            message = pg_catalog.format('%s: tenant_id must be its parent''s tenant', p_table);
    end if;
    return p_parent_tenant;
end;
$$;

revoke execute on function tenancy.inherited_tenant(text, text, uuid, uuid, uuid) from public;

create function tenancy.tg_tenant_from_plaintiff()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    new.tenant_id := tenancy.inherited_tenant(
        tg_op, tg_table_schema || '.' || tg_table_name,
        (select p.tenant_id from public.plaintiffs as p where p.id = new.plaintiff_id),
        new.tenant_id,
        case when tg_op = 'UPDATE' then old.tenant_id end
    );
    return new;
end;
$$;

create function tenancy.tg_tenant_from_judgment()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    new.tenant_id := tenancy.inherited_tenant(
        tg_op, tg_table_schema || '.' || tg_table_name,
        (select j.tenant_id from public.judgments as j where j.id = new.judgment_id),
        new.tenant_id,
        case when tg_op = 'UPDATE' then old.tenant_id end
    );
    return new;
end;
$$;

comment on function tenancy.tg_tenant_from_plaintiff() is
    'BEFORE INSERT OR UPDATE trigger: tenant_id is the plaintiff''s; another tenant or a move is 23514.';
comment on function tenancy.tg_tenant_from_judgment() is
    'BEFORE INSERT OR UPDATE trigger: tenant_id is the judgment''s; another tenant or a move is 23514.';

revoke execute on function tenancy.tg_tenant_from_plaintiff() from public;
revoke execute on function tenancy.tg_tenant_from_judgment() from public;

create trigger judgments_inherit_tenant
    before insert or update of tenant_id, plaintiff_id on public.judgments
    for each row execute function tenancy.tg_tenant_from_plaintiff();

create trigger cases_inherit_tenant
    before insert or update of tenant_id, judgment_id on judgments.cases
    for each row execute function tenancy.tg_tenant_from_judgment();

create trigger enforcement_cases_inherit_tenant
    before insert or update of tenant_id, judgment_id on public.enforcement_cases
    for each row execute function tenancy.tg_tenant_from_judgment();

-- Like the overview rollup's triggers, these follow every change, also under
-- session_replication_role = replica (bulk loads): a row without its tenant is no row at all.
alter table public.judgments enable always trigger judgments_inherit_tenant;
alter table judgments.cases enable always trigger cases_inherit_tenant;
alter table public.enforcement_cases enable always trigger enforcement_cases_inherit_tenant;

-- A plaintiff never moves: its judgments and cases would be left in the old tenant.
create function tenancy.tg_tenant_is_fixed()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.tenant_id is distinct from old.tenant_id then
        raise exception using
            errcode = '23514',
            message = pg_catalog.format('%s %s cannot move to another tenant', tg_table_name, old.id);
    end if;
    return new;
end;
$$;

revoke execute on function tenancy.tg_tenant_is_fixed() from public;

create trigger plaintiffs_tenant_is_fixed
    before update of tenant_id on public.plaintiffs
    for each row execute function tenancy.tg_tenant_is_fixed();

alter table public.plaintiffs enable always trigger plaintiffs_tenant_is_fixed;

-- ---------------------------------------------------------------------------------------
-- Row-level security: the tenant decides

-- Signed-in members read what the PostgreSQL role enforcement_operator reads, narrowed to
-- their tenants by the same policies.
grant select
    on public.enforcement_cases,
       public.enforcement_events,
       public.enforcement_history,
       public.enforcement_actions,
       public.enforcement_documents,
       public.plaintiff_tasks,
       public.judgments,
       public.plaintiffs,
       judgments.cases,
       public.v_enforcement_overview,
       public.v_enforcement_recent,
       public.v_enforcement_timeline,
       public.v_collectability_snapshot,
       public.v_priority_pipeline,
       public.outreach_campaigns
    to authenticated;
grant usage on schema judgments to authenticated;
grant execute on function public.judgment_priority_of(text) to authenticated;
-- The overview's totals: no policy lets a signed-in user see a row of them yet, so the view
-- counts such a caller's visible cases itself (exact, and nothing of another tenant).
grant select on public.enforcement_overview_rollup, public.enforcement_overview_rollup_deltas to authenticated;

drop policy "Enforcement operators can read every case" on public.enforcement_cases;
create policy "Members read their tenants' cases"
    on public.enforcement_cases
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

drop policy "Enforcement operators can read judgments" on public.judgments;
create policy "Members read their tenants' judgments"
    on public.judgments
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

drop policy "Enforcement operators can read plaintiffs" on public.plaintiffs;
create policy "Members read their tenants' plaintiffs"
    on public.plaintiffs
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

drop policy "Enforcement operators can read court cases" on judgments.cases;
create policy "Members read their tenants' court cases"
    on judgments.cases
    for select
    to authenticated, enforcement_operator
    using (tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[]));

-- The children keep inheriting their case's visibility; they now apply to signed-in members.
alter policy "Events are visible to whoever can see their case"
    on public.enforcement_events to authenticated, enforcement_operator;
alter policy "History is visible to whoever can see its case"
    on public.enforcement_history to authenticated, enforcement_operator;
alter policy "Actions are visible to whoever can see their case"
    on public.enforcement_actions to authenticated, enforcement_operator;
alter policy "Documents are visible to whoever can see their case"
    on public.enforcement_documents to authenticated, enforcement_operator;
alter policy "Enforcement tasks are visible to whoever can see their case"
    on public.plaintiff_tasks to authenticated, enforcement_operator;

alter policy "Operators read the campaigns"
    on public.outreach_campaigns to authenticated, enforcement_operator;

-- ---------------------------------------------------------------------------------------
-- The enforcement RPCs lock their case through lock_case(): it now finds only a case the
-- caller may write in. A case the caller may only read is 42501; a case in a tenant the
-- caller does not reach is P0002 with the very message of a missing case. The rows of other
-- tenants are filtered before the lock is taken, so a lock held in another tenant is never
-- waited for (no timing oracle either).
create or replace function enforcement_private.lock_case(
    p_rpc text,
    p_case_id uuid,
    p_must_be_open boolean default true
)
returns public.enforcement_cases
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_case public.enforcement_cases;
begin
    select c.*
      into v_case
      from public.enforcement_cases as c
     where c.id = p_case_id
       and c.tenant_id = any (tenancy.caller_tenants('write'))
       for no key update;

    if not found then
        if exists (
            select 1 from public.enforcement_cases as c
             where c.id = p_case_id and c.tenant_id = any (tenancy.caller_tenants('read'))
        ) then
            raise exception using
                errcode = '42501',
                message = pg_catalog.format('%s: enforcement case %s is read-only for you', p_rpc, p_case_id),
                hint = 'Viewers read; an operator or admin of the case''s tenant may change it.';
        end if;
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('%s: enforcement case %s not found', p_rpc, p_case_id);
    end if;

    if p_must_be_open and v_case.closed_at is not null then
        raise exception using
            errcode = 'DF001',
            message = pg_catalog.format(
                '%s: enforcement case %s is closed (%s at %s)',
                p_rpc, p_case_id, v_case.closure_reason, v_case.closed_at
            ),
            hint = 'A closed case cannot change; open a new case for the judgment if enforcement resumes.';
    end if;

    return v_case;
end;
$$;

-- The single question every RPC asks of one case.
create function tenancy.may_on_case(p_need text, p_case_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
    select exists (
        select 1 from public.enforcement_cases as c
         where c.id = p_case_id and c.tenant_id = any (tenancy.caller_tenants(p_need))
    )
$$;

comment on function tenancy.may_on_case(text, uuid) is
    'Whether the caller may do p_need (read | write | admin) on enforcement case p_case_id: false for a '
    'missing case and for a case in a tenant the caller does not reach, alike.';

revoke execute on function tenancy.may_on_case(text, uuid) from public;
grant execute on function tenancy.may_on_case(text, uuid)
    to authenticated, enforcement_operator, dragonfly_worker, service_role;
