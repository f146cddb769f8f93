-- The alert listener's tables: routing rules, one delivery record per (event, rule, sink),
-- the per-event routing marker and the catch-up cursor.
--
-- Why tables and not a config file: the rules are data that on-call changes without a
-- deploy (`dragonfly alerts rules ...`), and every listener process must see the same rules.
-- Why a delivery row per (event, rule, sink): NOTIFY is only a wake-up; the row is the record.
-- Its unique key makes routing idempotent (two listeners routing the same event create one
-- row), and a listener claims a row with FOR UPDATE SKIP LOCKED and marks it delivered in the
-- same transaction, so each row is delivered by one listener (docs/alerts.md, "Several
-- listeners"). The routing marker records that an event's rules were evaluated, also when no
-- rule matched, so catch-up never looks at it again; the cursor keeps catch-up scans short.
--
-- Everything lives in the fleet's private schema (dragonfly): only service_role and
-- dragonfly_worker see it; it is never exposed over PostgREST.

create table dragonfly.alert_rules (
    id bigint generated always as identity primary key,
    name text not null check (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    description text,
    enabled boolean not null default true,
    event_kinds public.enforcement_event_kind[]
        check (event_kinds is null or pg_catalog.cardinality(event_kinds) > 0),
    tiers text[] check (
        tiers is null
        or (pg_catalog.cardinality(tiers) > 0
            and tiers <@ array['tier0', 'tier1', 'tier2', 'tier3']::text[])
    ),
    min_amount numeric(14, 2) check (min_amount >= 0),
    sinks text[] not null check (
        pg_catalog.cardinality(sinks) > 0 and sinks <@ array['slack', 'email', 'queue']::text[]
    ),
    job_kind text check (job_kind in ('enrich', 'outreach', 'enforce', 'case_copilot')),
    job_payload jsonb not null default '{}'
        check (pg_catalog.jsonb_typeof(job_payload) = 'object'),
    email_to text[] check (email_to is null or pg_catalog.cardinality(email_to) > 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint alert_rules_name_key unique (name),
    constraint alert_rules_queue_sink_needs_job_kind check (('queue' = any (sinks)) = (job_kind is not null))
);

comment on table dragonfly.alert_rules is
    'Alert routing: an enabled rule matches an enforcement event when its kind is in event_kinds, the '
    'case''s effective tier is in tiers and the alert amount is at least min_amount (null = any), and '
    'then sends it to each of its sinks. Managed with `dragonfly alerts rules`; see docs/alerts.md.';
comment on column dragonfly.alert_rules.tiers is
    'Effective tiers (tier_override while it has not expired, else tier) that match; null = any tier, '
    'including a case with no tier yet.';
comment on column dragonfly.alert_rules.min_amount is
    'Threshold on the alert amount: the event payload''s "amount" when it has one, else the case''s '
    'current_balance. Null = no threshold.';
comment on column dragonfly.alert_rules.sinks is
    'Where a matching event goes: slack (incoming webhook), email (SMTP), queue (queue_job).';
comment on column dragonfly.alert_rules.job_kind is
    'For the queue sink: the job kind queue_job() enqueues; required exactly when sinks has queue.';
comment on column dragonfly.alert_rules.job_payload is
    'For the queue sink: fields merged into the job payload, which always carries case_id.';
comment on column dragonfly.alert_rules.email_to is
    'For the email sink: recipients; null = DRAGONFLY_ALERT_EMAIL_TO.';

create trigger alert_rules_touch_updated_at
    before update on dragonfly.alert_rules
    for each row execute function public.tg_touch_updated_at();

create table dragonfly.alert_deliveries (
    id bigint generated always as identity primary key,
    event_id uuid not null,
    case_id uuid not null,
    event_kind text not null,
    event_created_at timestamptz not null,
    rule text not null,
    sink text not null check (sink in ('slack', 'email', 'queue')),
    target jsonb not null default '{}' check (pg_catalog.jsonb_typeof(target) = 'object'),
    context jsonb not null check (pg_catalog.jsonb_typeof(context) = 'object'),
    status text not null default 'pending' check (status in ('pending', 'failed', 'delivered', 'dead')),
    attempts integer not null default 0 check (attempts >= 0),
    last_error text,
    next_attempt_at timestamptz not null default now(),
    delivered_at timestamptz,
    delivered_by text,
    dead_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint alert_deliveries_event_rule_sink_key unique (event_id, rule, sink),
    constraint alert_deliveries_delivered_iff_stamped check ((status = 'delivered') = (delivered_at is not null)),
    constraint alert_deliveries_dead_iff_stamped check ((status = 'dead') = (dead_at is not null))
);

comment on table dragonfly.alert_deliveries is
    'One alert to one sink: the durable record behind every Slack post, email and queued job the '
    'listener sends. pending = not tried yet, failed = will retry at next_attempt_at, delivered, '
    'dead = gave up after DRAGONFLY_ALERT_MAX_ATTEMPTS or a permanent error (`dragonfly alerts retry`).';
comment on column dragonfly.alert_deliveries.event_id is
    'The public.enforcement_events row (no foreign key: the record outlives a deleted case).';
comment on column dragonfly.alert_deliveries.rule is
    'Name of the alert_rules row that routed the event here (a snapshot: the rule may change later).';
comment on column dragonfly.alert_deliveries.target is
    'The rule''s sink settings at routing time: {"job_kind", "job_payload"} or {"email_to"}.';
comment on column dragonfly.alert_deliveries.context is
    'The event and its case at routing time (case_number, amount, balance, stage, tier, payload...): '
    'what the message shows.';
comment on column dragonfly.alert_deliveries.delivered_by is
    'Listener process (host:pid) that delivered it.';

-- The claim and "next due" queries: open rows of the sinks a listener has, by due time.
-- Leading with sink keeps rows pending for a sink nobody configured out of every scan.
create index alert_deliveries_due_idx on dragonfly.alert_deliveries (sink, next_attempt_at, id)
    where status in ('pending', 'failed');
-- On-call listings by status, newest first.
create index alert_deliveries_status_idx on dragonfly.alert_deliveries (status, updated_at);
create index alert_deliveries_case_id_idx on dragonfly.alert_deliveries (case_id);

create trigger alert_deliveries_touch_updated_at
    before update on dragonfly.alert_deliveries
    for each row execute function public.tg_touch_updated_at();

create table dragonfly.alert_routed_events (
    event_id uuid primary key,
    event_created_at timestamptz not null,
    deliveries integer not null check (deliveries >= 0),
    routed_at timestamptz not null default now(),
    routed_by text
);

comment on table dragonfly.alert_routed_events is
    'Routing markers: the event''s rules were evaluated and its deliveries (possibly none) created, in '
    'one transaction. Catch-up skips marked events. Pruned a week behind the catch-up window.';

create index alert_routed_events_created_idx on dragonfly.alert_routed_events (event_created_at);

create table dragonfly.alert_listener_state (
    singleton boolean primary key default true check (singleton),
    not_before timestamptz not null default now(),
    caught_up_to timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

comment on table dragonfly.alert_listener_state is
    'The catch-up cursor (one row). Every event created before caught_up_to and visible then is routed; '
    'catch-up scans events created since caught_up_to minus DRAGONFLY_LISTENER_CATCHUP_LOOKBACK_SECONDS '
    '(for transactions that commit late), never before not_before (when alerting was installed).';

insert into dragonfly.alert_listener_state (singleton) values (true);

alter table dragonfly.alert_rules enable row level security;
alter table dragonfly.alert_deliveries enable row level security;
alter table dragonfly.alert_routed_events enable row level security;
alter table dragonfly.alert_listener_state enable row level security;

revoke all on dragonfly.alert_rules, dragonfly.alert_deliveries, dragonfly.alert_routed_events,
    dragonfly.alert_listener_state from public;
grant select, insert, update, delete
    on dragonfly.alert_rules, dragonfly.alert_deliveries, dragonfly.alert_routed_events,
       dragonfly.alert_listener_state
    to service_role, dragonfly_worker;

create policy "The fleet manages alert rules" on dragonfly.alert_rules
    for all to dragonfly_worker using (true) with check (true);
create policy "The fleet manages alert deliveries" on dragonfly.alert_deliveries
    for all to dragonfly_worker using (true) with check (true);
create policy "The fleet manages routing markers" on dragonfly.alert_routed_events
    for all to dragonfly_worker using (true) with check (true);
create policy "The fleet moves the catch-up cursor" on dragonfly.alert_listener_state
    for all to dragonfly_worker using (true) with check (true);
