-- Alerts name their tenant, and a routing rule may be scoped to one tenant.
--
-- Why: cases belong to tenants (20261203090000_tenants.sql), and the people an alert goes to
-- (a Slack channel, an on-call address) are usually one tenant's. An alert said which case,
-- never whose; and a rule sent every tenant's events to the same place.
--   * dragonfly.alert_event (what the listener reads of an event) gains the case's tenant id
--     and slug; the message text and the stored delivery (its context, and a tenant_id column
--     for on-call listings) carry them;
--   * dragonfly.alert_rules.tenant_id (nullable): a rule with a tenant matches only that
--     tenant's events; null matches every tenant, as every rule did (the default rules keep
--     null);
--   * alert_event_context() and alert_unrouted_events() find events only in the caller's read
--     tenants (the listener is not narrowed: every tenant), like the other SECURITY DEFINER
--     readers of the fleet (20261203120100_worker_tenant_narrowing.sql);
--   * dragonfly.alert_tenant(ref) resolves a tenant by id or slug for `dragonfly alerts rules
--     add --tenant`, and dragonfly.alert_tenant_slugs() names them in listings (the fleet's
--     role has no right on public.tenants).

alter table dragonfly.alert_rules
    add column tenant_id uuid references public.tenants (id) on delete cascade;

comment on column dragonfly.alert_rules.tenant_id is
    'The tenant whose events the rule routes; null = every tenant''s.';

create index alert_rules_tenant_id_idx on dragonfly.alert_rules (tenant_id);

-- No foreign key, like event_id and case_id: the record outlives what it names.
alter table dragonfly.alert_deliveries add column tenant_id uuid;

comment on column dragonfly.alert_deliveries.tenant_id is
    'The tenant of the event''s case at routing time (its slug is in context.tenant_slug); null for '
    'deliveries routed before alerts named tenants.';

create index alert_deliveries_tenant_id_idx on dragonfly.alert_deliveries (tenant_id, id);

alter type dragonfly.alert_event add attribute tenant_id uuid, add attribute tenant_slug text;

comment on type dragonfly.alert_event is
    'An enforcement event as the alert listener sees it: the event row plus its case''s number, '
    'debtor, effective tier, stage, balance and tenant (id and slug).';

-- As in 20261127006010, with the case's tenant, and only events of the caller's read tenants.
create or replace function dragonfly.alert_event_context(p_event_ids uuid[])
returns setof dragonfly.alert_event
language sql
stable
security definer
set search_path = ''
as $$
    select
        e.id,
        e.enforcement_case_id,
        c.judgment_id,
        e.event_kind::text,
        e.occurred_at,
        e.created_at,
        e.payload,
        e.document_path,
        e.actor,
        jc.case_number,
        j.debtor_name,
        case
            when c.tier_override is not null
                 and (c.override_expires_at is null or c.override_expires_at > pg_catalog.now())
                then c.tier_override
            else c.tier
        end,
        c.current_stage,
        c.current_balance,
        c.closed_at is not null,
        c.tenant_id,
        t.slug
    from public.enforcement_events e
    join public.enforcement_cases c on c.id = e.enforcement_case_id
    join public.tenants t on t.id = c.tenant_id
    left join public.judgments j on j.id = c.judgment_id
    left join judgments.cases jc on jc.judgment_id = c.judgment_id
    where e.id = any (p_event_ids)
      and c.tenant_id = any ((select tenancy.caller_tenants('read'))::uuid[])
    order by e.created_at, e.id
$$;

comment on function dragonfly.alert_event_context(uuid[]) is
    'The given enforcement events (those visible to the caller''s snapshot: a rolled-back or not yet '
    'committed event is absent; only events of the caller''s read tenants) with their case context '
    'and tenant, oldest first.';

-- Unchanged (20261127006010); created again so that its result follows the type's new columns.
create or replace function dragonfly.alert_unrouted_events(p_lookback interval, p_limit integer)
returns setof dragonfly.alert_event
language sql
stable
security definer
set search_path = ''
as $$
    select ctx.*
    from dragonfly.alert_event_context(array(
        select e.id
        from public.enforcement_events e
        cross join dragonfly.alert_listener_state s
        where e.created_at >= greatest(s.not_before, s.caught_up_to - p_lookback)
          and not exists (
              select 1 from dragonfly.alert_routed_events r where r.event_id = e.id
          )
        order by e.created_at, e.id
        limit p_limit
    )) ctx
$$;

create function dragonfly.alert_tenant(p_ref text)
returns table (id uuid, slug text)
language sql
stable
security definer
set search_path = ''
as $$
    select t.id, t.slug
      from public.tenants as t
     where t.slug = pg_catalog.lower(pg_catalog.btrim(p_ref))
        or t.id::text = pg_catalog.lower(pg_catalog.btrim(p_ref))
$$;

comment on function dragonfly.alert_tenant(text) is
    'The tenant whose id or slug is p_ref (no row: none), for `dragonfly alerts rules add --tenant` '
    'and the rule listing. Fleet and service_role only.';

revoke execute on function dragonfly.alert_tenant(text) from public;
grant execute on function dragonfly.alert_tenant(text) to service_role, dragonfly_worker;

create function dragonfly.alert_tenant_slugs()
returns table (id uuid, slug text)
language sql
stable
security definer
set search_path = ''
as $$
    select t.id, t.slug from public.tenants as t order by t.slug
$$;

comment on function dragonfly.alert_tenant_slugs() is
    'Every tenant''s id and slug, for `dragonfly alerts rules list` and `dragonfly alerts list`. '
    'Fleet and service_role only.';

revoke execute on function dragonfly.alert_tenant_slugs() from public;
grant execute on function dragonfly.alert_tenant_slugs() to service_role, dragonfly_worker;
