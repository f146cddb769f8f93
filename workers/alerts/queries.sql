-- Every query the alert listener and `dragonfly alerts` run, by name.
-- workers/alerts/store.py loads this file; each query starts with a "-- name:" line.
-- Schema, grants and the SECURITY DEFINER readers live in sql/migrations/20261127006*.

-- name: load_rules
-- All rules, enabled or not, by name.
select name, tenant_id, description, enabled, event_kinds::text[] as event_kinds, tiers,
       min_amount, sinks, job_kind, job_payload, email_to
from dragonfly.alert_rules
order by name;

-- name: find_tenant
-- The tenant named by id or slug (for --tenant); the fleet's role reads it through the
-- SECURITY DEFINER function.
select id, slug from dragonfly.alert_tenant(%(ref)s);

-- name: tenant_slugs
-- Every tenant's slug, for listings.
select id, slug from dragonfly.alert_tenant_slugs();

-- name: event_contexts
-- The given events with their case context (absent: not committed, rolled back or deleted).
select * from dragonfly.alert_event_context(%(ids)s::uuid[]);

-- name: unrouted_events
-- Catch-up: the oldest events the cursor window holds that have no routing marker yet.
select * from dragonfly.alert_unrouted_events(make_interval(secs => %(lookback)s), %(limit)s);

-- name: record_routing
-- Route events in one statement: a marker per event (the first listener wins; a concurrent
-- one waits on the primary key, then skips), then the winners' deliveries.
with marked as (
    insert into dragonfly.alert_routed_events (event_id, event_created_at, deliveries, routed_by)
    select m.event_id, m.event_created_at, m.deliveries, %(routed_by)s
    from jsonb_to_recordset(%(events)s::jsonb)
        as m (event_id uuid, event_created_at timestamptz, deliveries integer)
    order by m.event_created_at, m.event_id
    on conflict (event_id) do nothing
    returning event_id
),
created as (
    insert into dragonfly.alert_deliveries
        (event_id, case_id, tenant_id, event_kind, event_created_at, rule, sink, target, context)
    select d.event_id, d.case_id, d.tenant_id, d.event_kind, d.event_created_at, d.rule, d.sink,
           d.target, d.context
    from jsonb_to_recordset(%(deliveries)s::jsonb)
        as d (event_id uuid, case_id uuid, tenant_id uuid, event_kind text,
              event_created_at timestamptz, rule text, sink text, target jsonb, context jsonb)
    where d.event_id in (select event_id from marked)
    on conflict (event_id, rule, sink) do nothing
    returning id
)
select (select count(*) from marked) as events, (select count(*) from created) as deliveries;

-- name: advance_cursor
-- After a catch-up pass that saw every unrouted event: events created before this
-- transaction began are routed (late commits are the lookback's job).
update dragonfly.alert_listener_state
set caught_up_to = greatest(caught_up_to, now()),
    updated_at = now();

-- name: prune_routing_markers
-- Markers a week older than the oldest event catch-up can still scan.
delete from dragonfly.alert_routed_events r
using dragonfly.alert_listener_state s
where r.event_created_at < s.caught_up_to - make_interval(secs => %(lookback)s) - interval '7 days';

-- name: claim_due_delivery
-- The oldest due delivery for a sink this process has. SKIP LOCKED: a row another
-- listener is sending is invisible here; the lock lasts until that listener commits.
select id, event_id, case_id, event_kind, event_created_at, rule, sink, target, context,
       status, attempts, last_error, created_at, tenant_id
from dragonfly.alert_deliveries
where status in ('pending', 'failed')
  and next_attempt_at <= clock_timestamp()
  and sink = any (%(sinks)s::text[])
order by next_attempt_at, id
limit 1
for update skip locked;

-- name: mark_delivered
-- Same transaction as the claim; returns seconds from event creation to delivery.
update dragonfly.alert_deliveries
set status = 'delivered',
    attempts = %(attempt)s,
    delivered_at = clock_timestamp(),
    delivered_by = %(by)s,
    dead_at = null
where id = %(id)s
returning extract(epoch from delivered_at - event_created_at)::float8 as latency;

-- name: mark_failed
-- A failed attempt: retry later, or dead.
update dragonfly.alert_deliveries
set status = case when %(dead)s then 'dead' else 'failed' end,
    attempts = %(attempt)s,
    last_error = %(error)s,
    next_attempt_at = case
        when %(dead)s then next_attempt_at
        else clock_timestamp() + make_interval(secs => %(delay)s)
    end,
    dead_at = case when %(dead)s then clock_timestamp() end
where id = %(id)s;

-- name: seconds_until_due
-- When the next delivery this process can send is due (negative: overdue; null: none).
select extract(epoch from min(next_attempt_at) - clock_timestamp())::float8 as seconds
from dragonfly.alert_deliveries
where status in ('pending', 'failed')
  and sink = any (%(sinks)s::text[]);

-- name: list_deliveries
-- On-call listing, newest first; every filter optional.
select id, event_id, case_id, event_kind, rule, sink, status, attempts, last_error,
       next_attempt_at, delivered_at, delivered_by, dead_at, created_at, updated_at,
       context ->> 'case_number' as case_number, tenant_id,
       context ->> 'tenant_slug' as tenant_slug
from dragonfly.alert_deliveries
where (%(status)s::text is null or status = %(status)s::text)
  and (%(tenant_id)s::uuid is null or tenant_id = %(tenant_id)s::uuid)
  and (%(event_id)s::uuid is null or event_id = %(event_id)s::uuid)
  and (%(case_id)s::uuid is null or case_id = %(case_id)s::uuid)
  and (%(sink)s::text is null or sink = %(sink)s::text)
order by id desc
limit %(limit)s;

-- name: count_deliveries
-- Deliveries per status.
select status, count(*) as n
from dragonfly.alert_deliveries
group by status
order by status;

-- name: retry_deliveries
-- On-call retry (dead -> pending with fresh attempts; failed -> due now); wakes listeners.
select id from dragonfly.retry_alert_deliveries(p_ids => %(ids)s::bigint[], p_all_dead => %(all_dead)s) as id;

-- name: upsert_rule
-- Insert a rule; with replace, overwrite the rule of the same name. No row: it exists.
insert into dragonfly.alert_rules
    (name, tenant_id, description, enabled, event_kinds, tiers, min_amount, sinks, job_kind,
     job_payload, email_to)
values (
    %(name)s, %(tenant_id)s::uuid, %(description)s, %(enabled)s,
    %(event_kinds)s::public.enforcement_event_kind[],
    %(tiers)s::text[], %(min_amount)s, %(sinks)s::text[], %(job_kind)s,
    coalesce(%(job_payload)s::jsonb, '{}'::jsonb), %(email_to)s::text[]
)
on conflict (name) do update
set tenant_id = excluded.tenant_id,
    description = excluded.description,
    enabled = excluded.enabled,
    event_kinds = excluded.event_kinds,
    tiers = excluded.tiers,
    min_amount = excluded.min_amount,
    sinks = excluded.sinks,
    job_kind = excluded.job_kind,
    job_payload = excluded.job_payload,
    email_to = excluded.email_to
where %(replace)s
returning name;

-- name: set_rule_enabled
update dragonfly.alert_rules set enabled = %(enabled)s where name = %(name)s returning name;

-- name: delete_rule
delete from dragonfly.alert_rules where name = %(name)s returning name;
