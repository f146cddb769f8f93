-- The job-kind policy: who may enqueue each kind, which payload fields each trust level may
-- set, and the limits on size, depth, delay and rate. Data next to the kind, in the registry.
--
-- Why: on Supabase the anon key is in every browser, and queue_job() is granted to anon (the
-- spec's default, kept). Until now any caller could set any field the worker honours: a pushed
-- enrich bundle planted a bank asset and opened a levy, an enforce requested_action opened a
-- marshal action, fifty-megabyte payloads and day-long delays were taken. What a caller may
-- put in a job now follows from its trust level (dragonfly.caller_trust_level(), decided from
-- the session), read from these rows by queue_job() at the door and by the worker again
-- before it acts (docs/security.md, "Policy per job kind").
--
-- The shape of a kind's payload is dragonfly.job_kinds.payload_fields: one member per field
-- the payload may carry,
--   {"type": "uuid" | "text" | "enum" | "object" | "timestamp",
--    "required": true,                      -- absent means optional
--    "max_length": 200,                     -- text: characters (default 200)
--    "values": ["a", "b"],                  -- enum: the allowed strings
--    "references": "court_case" | "enforcement_case" | "plaintiff" | "judgment"
--                  | "outreach_campaign",   -- the row must exist
--    "reference_levels": ["public"],        -- the existence check only for these levels
--    "target": true}                        -- the row per-target rate limits count by
-- A kind registered without a shape (payload_fields null) takes any object from internal and
-- operator callers and none from public ones.
--
-- dragonfly.job_kind_policies has one row per (kind, level) that may enqueue the kind. A kind
-- gets rows for internal and operator when it is registered (the trigger below); public rows
-- are granted by a migration, deliberately, field by field.

alter table dragonfly.job_kinds
    add column payload_fields jsonb
        constraint job_kinds_payload_fields_object
            check (payload_fields is null or pg_catalog.jsonb_typeof(payload_fields) = 'object'),
    add column max_payload_bytes integer not null default 65536
        constraint job_kinds_max_payload_bytes_range
            check (max_payload_bytes between 256 and 16777216),
    add column max_depth integer not null default 8
        constraint job_kinds_max_depth_range check (max_depth between 1 and 64);

comment on column dragonfly.job_kinds.payload_fields is
    'The payload''s shape: field -> {type, required, max_length, values, references, '
    'reference_levels, target} (this migration''s header). Null: any object, and no public '
    'caller may enqueue the kind. queue_job() refuses unknown fields and bad values with 22023, '
    'a missing referenced row with 23503.';
comment on column dragonfly.job_kinds.max_payload_bytes is
    'The largest queue_job() argument of this kind, in bytes of its JSON text (54000 above it).';
comment on column dragonfly.job_kinds.max_depth is
    'The deepest nesting of objects and arrays in a queue_job() argument of this kind (54000 '
    'deeper).';

create table dragonfly.job_kind_policies (
    kind text not null references dragonfly.job_kinds (kind) on delete cascade,
    level text not null
        constraint job_kind_policies_level check (level in ('internal', 'operator', 'public')),
    fields text[]
        constraint job_kind_policies_fields_not_empty check (fields is null or fields <> '{}'),
    max_delay_seconds integer not null default 86400
        constraint job_kind_policies_max_delay_range check (max_delay_seconds between 0 and 86400),
    rate_per_minute integer
        constraint job_kind_policies_rate_positive check (rate_per_minute > 0),
    target_rate_per_hour integer
        constraint job_kind_policies_target_rate_positive check (target_rate_per_hour > 0),
    primary key (kind, level)
);

comment on table dragonfly.job_kind_policies is
    'Who may enqueue a job kind: one row per (kind, trust level) allowed. No row: that level''s '
    'queue_job() gets 42501. Internal and operator rows are created when a kind is registered; '
    'public rows only by a migration.';
comment on column dragonfly.job_kind_policies.fields is
    'The payload fields this level may set; null: every field of the kind''s shape. A field '
    'outside the list gets 42501 at queue_job() and is dead-lettered as forbidden by the worker.';
comment on column dragonfly.job_kind_policies.max_delay_seconds is
    'The longest delay_seconds this level may ask for (22023 above it).';
comment on column dragonfly.job_kind_policies.rate_per_minute is
    'New jobs of this kind per calendar minute from all callers of this level together; null: '
    'no limit. Above it queue_job() gets PT429 (HTTP 429 through PostgREST) with the seconds to '
    'wait.';
comment on column dragonfly.job_kind_policies.target_rate_per_hour is
    'New jobs of this kind per calendar hour for one target row (the shape''s field marked '
    'target: the case, the plaintiff) from this level; null: no limit. PT429 above it.';

alter table dragonfly.job_kind_policies enable row level security;
revoke all on dragonfly.job_kind_policies from public;
grant select on dragonfly.job_kind_policies to service_role, dragonfly_worker;
create policy "The fleet reads the job-kind policies" on dragonfly.job_kind_policies
    for select to dragonfly_worker using (true);

-- A newly registered kind may be enqueued by the fleet and by operators, with any field of
-- its shape and no rate limit: the same as before there was a policy.
create function dragonfly.job_kind_default_policies()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    insert into dragonfly.job_kind_policies (kind, level)
    values (new.kind, 'internal'), (new.kind, 'operator')
    on conflict do nothing;
    return null;
end;
$$;

revoke execute on function dragonfly.job_kind_default_policies() from public;

create trigger job_kinds_default_policies
    after insert on dragonfly.job_kinds
    for each row execute function dragonfly.job_kind_default_policies();

insert into dragonfly.job_kind_policies (kind, level)
select k.kind, l.level
  from dragonfly.job_kinds as k
 cross join (values ('internal'), ('operator')) as l (level)
    on conflict do nothing;

-- Campaigns an outreach job may name. A public caller may only name an active one of these,
-- so a campaign is never text the internet chose (the outreach worker copies it into a mail
-- header); the fleet and operators may use other names, for their own runs.
create table public.outreach_campaigns (
    name text primary key
        constraint outreach_campaigns_name check (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    description text not null
        constraint outreach_campaigns_description_not_blank
            check (pg_catalog.btrim(description) <> '' and pg_catalog.length(description) <= 500),
    active boolean not null default true,
    created_at timestamptz not null default pg_catalog.now()
);

comment on table public.outreach_campaigns is
    'Known outreach campaigns. queue_job() lets a public caller name only an active one; the '
    'outreach worker re-checks it for jobs that did not come from the fleet or an operator.';

alter table public.outreach_campaigns enable row level security;
revoke all on public.outreach_campaigns from public, anon, authenticated;
grant select, insert, update, delete on public.outreach_campaigns to service_role;
grant select on public.outreach_campaigns to dragonfly_worker, enforcement_operator;
create policy "The fleet reads the campaigns" on public.outreach_campaigns
    for select to dragonfly_worker using (true);
create policy "Operators read the campaigns" on public.outreach_campaigns
    for select to enforcement_operator using (true);

-- The shipped kinds' shapes and limits. Their enum values are the workers' (a test compares
-- them with the payload models). Public callers may ask for a re-score, a plan, a brief or an
-- outreach by id, and nothing else: no pushed bundle, no requested step, no free text.
update dragonfly.job_kinds
   set payload_fields = '{
         "case_id": {"type": "uuid", "required": true, "references": "court_case", "target": true},
         "bundle": {"type": "object"}
       }'::jsonb,
       max_payload_bytes = 262144,
       max_depth = 8
 where kind = 'enrich';

update dragonfly.job_kinds
   set payload_fields = '{
         "case_id": {"type": "uuid", "required": true, "references": "enforcement_case",
                     "target": true},
         "requested_action": {"type": "enum",
                              "values": ["asset_search", "subpoena", "bank_levy", "garnishment",
                                         "marshal"]},
         "trigger": {"type": "enum",
                     "values": ["manual", "sla_sweep", "tier_change", "alert", "import", "demo",
                                "copilot"]},
         "note": {"type": "text", "max_length": 500}
       }'::jsonb
 where kind = 'enforce';

update dragonfly.job_kinds
   set payload_fields = '{
         "plaintiff_id": {"type": "uuid", "required": true, "references": "plaintiff",
                          "target": true},
         "reason": {"type": "text", "max_length": 200},
         "campaign": {"type": "text", "max_length": 200, "references": "outreach_campaign",
                      "reference_levels": ["public"]},
         "channel": {"type": "enum", "values": ["auto", "email", "call"]},
         "outreach_key": {"type": "text", "max_length": 255}
       }'::jsonb
 where kind = 'outreach';

update dragonfly.job_kinds
   set payload_fields = '{
         "case_id": {"type": "uuid", "required": true, "references": "enforcement_case",
                     "target": true},
         "judgment_id": {"type": "uuid"},
         "case_number": {"type": "text", "max_length": 200},
         "requested_by": {"type": "text", "max_length": 200},
         "requested_at": {"type": "timestamp"}
       }'::jsonb
 where kind = 'case_copilot';

-- The continuation key of a quiet-hours deferral is the fleet's alone.
update dragonfly.job_kind_policies
   set fields = array['plaintiff_id', 'reason', 'campaign', 'channel']
 where kind = 'outreach' and level = 'operator';

insert into dragonfly.job_kind_policies
    (kind, level, fields, max_delay_seconds, rate_per_minute, target_rate_per_hour)
values
    ('enrich', 'public', array['case_id'], 300, 60, 4),
    ('enforce', 'public', array['case_id'], 300, 60, 4),
    ('outreach', 'public', array['plaintiff_id', 'campaign'], 300, 30, 2),
    ('case_copilot', 'public', array['case_id'], 300, 30, 4)
    on conflict (kind, level) do update
    set fields = excluded.fields,
        max_delay_seconds = excluded.max_delay_seconds,
        rate_per_minute = excluded.rate_per_minute,
        target_rate_per_hour = excluded.target_rate_per_hour;

-- Operators are people at a console: generous, but not unbounded.
update dragonfly.job_kind_policies
   set rate_per_minute = 600
 where level = 'operator' and kind in ('enrich', 'enforce', 'outreach', 'case_copilot');
