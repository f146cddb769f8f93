-- Enforcement core: enforcement_cases, the event kinds, the events timeline and the
-- change history.
--
-- Why: these are the spec's "existing" enforcement tables with every column its RPCs
-- need. Invariants the RPCs rely on are constraints, so they hold under concurrency:
--   * enforcement_cases_one_open_per_judgment: at most one open case per judgment, so two
--     concurrent open_enforcement_case() calls can never both succeed;
--   * the (judgment_id, plaintiff_id) foreign key: a case's plaintiff is its judgment's;
--   * current_stage references enforcement_stage_lookup; tiers reference the tier lookup;
--   * a case is closed exactly when it has a closure reason, and then its stage is the
--     terminal stage of the same name (satisfied, uncollectible, withdrawn).
-- It also adds the plaintiff_tasks -> enforcement_cases foreign key, which had to wait for
-- this table.

create table public.enforcement_cases (
    id uuid primary key default gen_random_uuid(),
    judgment_id uuid not null references public.judgments (id) on delete restrict,
    plaintiff_id uuid not null references public.plaintiffs (id) on delete restrict,
    tier text references public.enforcement_tier_lookup (tier),
    tier_reason text,
    tier_as_of timestamptz,
    tier_override text references public.enforcement_tier_lookup (tier),
    override_expires_at timestamptz,
    override_note text,
    collectability_score numeric(5, 2) check (collectability_score between 0 and 100),
    asset_flags jsonb not null default '{}' check (pg_catalog.jsonb_typeof(asset_flags) = 'object'),
    levy_status text,
    garnishment_status text,
    marshal_status text,
    next_action_at timestamptz,
    current_stage text not null default 'pre_enforcement'
        references public.enforcement_stage_lookup (stage),
    stage_entered_at timestamptz not null default now(),
    current_balance numeric(14, 2) not null check (current_balance >= 0),
    opened_at timestamptz not null default now(),
    closed_at timestamptz,
    closure_reason text check (closure_reason in ('satisfied', 'uncollectible', 'withdrawn')),
    closed_by text,
    notes text,
    created_by text not null check (pg_catalog.btrim(created_by) <> ''),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint enforcement_cases_judgment_plaintiff_fkey foreign key (judgment_id, plaintiff_id)
        references public.judgments (id, plaintiff_id) on update cascade,
    constraint enforcement_cases_closed_iff_reason check ((closed_at is null) = (closure_reason is null)),
    constraint enforcement_cases_closure_matches_stage check (
        case
            when closed_at is null then current_stage not in ('satisfied', 'uncollectible', 'withdrawn')
            else current_stage = closure_reason
        end
    ),
    constraint enforcement_cases_expiry_needs_override check (
        override_expires_at is null or tier_override is not null
    )
);

comment on table public.enforcement_cases is
    'One enforcement effort on a judgment: its tier, stage, balance and workflow states. At most one open '
    'case (closed_at is null) per judgment. Written through the enforcement RPCs.';
comment on column public.enforcement_cases.tier is
    'Current automated tier (tier0-tier3); tier_reason says why, tier_as_of when it was computed. '
    'tier_override, while set and not past override_expires_at, takes precedence.';
comment on column public.enforcement_cases.asset_flags is
    'Aggregated asset hints, e.g. {"bank": true, "employer": false}.';
comment on column public.enforcement_cases.levy_status is
    'Workflow states derived from events by log_enforcement_event(): levy, garnishment and marshal.';
comment on column public.enforcement_cases.next_action_at is
    'When the Ops Console should resurface the case (stage SLA or an explicit follow-up).';
comment on column public.enforcement_cases.current_stage is
    'Stage on the ladder of enforcement_stage_lookup; stage_entered_at gives days in stage.';
comment on column public.enforcement_cases.current_balance is
    'Balance still to collect on this case; record_enforcement_payment() reduces it with judgments.balance_due.';
comment on column public.enforcement_cases.closure_reason is
    'Why the case closed; set together with closed_at, and current_stage is then the terminal stage of the same name.';

-- The spec's dashboard index: open cases by stage and tier.
create index enforcement_cases_stage_tier_idx on public.enforcement_cases (current_stage, tier)
    where closed_at is null;
-- One open case per judgment; open_enforcement_case() relies on it under concurrency.
create unique index enforcement_cases_one_open_per_judgment on public.enforcement_cases (judgment_id)
    where closed_at is null;
-- Cases due to resurface.
create index enforcement_cases_next_action_idx on public.enforcement_cases (next_action_at)
    where closed_at is null;
-- Foreign-key indexes (the partial indexes above do not cover closed cases).
create index enforcement_cases_judgment_id_idx on public.enforcement_cases (judgment_id);
create index enforcement_cases_plaintiff_id_idx on public.enforcement_cases (plaintiff_id);
create index enforcement_cases_current_stage_idx on public.enforcement_cases (current_stage);
create index enforcement_cases_tier_idx on public.enforcement_cases (tier);
create index enforcement_cases_tier_override_idx on public.enforcement_cases (tier_override)
    where tier_override is not null;

create trigger enforcement_cases_touch_updated_at
    before update on public.enforcement_cases
    for each row execute function public.tg_touch_updated_at();

alter table public.plaintiff_tasks
    add constraint plaintiff_tasks_enforcement_case_id_fkey foreign key (enforcement_case_id)
        references public.enforcement_cases (id) on delete cascade;

create type public.enforcement_event_kind as enum (
    -- the specification's kinds
    'asset_search_requested',
    'asset_search_completed',
    'bank_levy_filed',
    'bank_levy_served',
    'bank_levy_released',
    'garnishment_order_signed',
    'garnishment_served',
    'garnishment_remittance',
    'subpoena_issued',
    'subpoena_complied',
    'marshal_assigned',
    'marshal_attempted',
    'marshal_result',
    'case_stage_changed',
    -- kinds the RPCs need
    'payment_received',
    'case_opened',
    'case_closed',
    'action_opened',
    'action_status_changed',
    'action_closed',
    'subpoena_response_recorded',
    'review_scheduled',
    'tier_changed',
    'note_added',
    'sla_resurfaced'
);

comment on type public.enforcement_event_kind is
    'What an enforcement_events row records. The spec''s kinds plus those the RPCs emit (payments, case '
    'and action lifecycle, subpoena responses, reviews, tier changes, notes, SLA resurfacing).';

create table public.enforcement_events (
    id uuid primary key default gen_random_uuid(),
    enforcement_case_id uuid not null references public.enforcement_cases (id) on delete cascade,
    event_kind public.enforcement_event_kind not null,
    occurred_at timestamptz not null default now(),
    document_path text check (pg_catalog.btrim(document_path) <> ''),
    related_task_id uuid references public.plaintiff_tasks (id) on delete set null,
    payload jsonb not null default '{}' check (pg_catalog.jsonb_typeof(payload) = 'object'),
    actor text,
    created_at timestamptz not null default now()
);

comment on table public.enforcement_events is
    'The enforcement timeline: what happened to a case and when. Written by log_enforcement_event() and '
    'the other RPCs, which NOTIFY enforcement_events_channel; the listener catches up from this table.';
comment on column public.enforcement_events.occurred_at is
    'When it happened in the world (e.g. the serve date); created_at is when it was recorded.';
comment on column public.enforcement_events.document_path is
    'Supabase storage key of the supporting document; log_enforcement_event() requires it for action kinds.';
comment on column public.enforcement_events.related_task_id is
    'The plaintiff_tasks row this event closes or concerns, if any.';
comment on column public.enforcement_events.payload is
    'Structured details (bank name, serve date, amount...), always a JSON object.';

create index enforcement_events_case_occurred_idx
    on public.enforcement_events (enforcement_case_id, occurred_at);
create index enforcement_events_related_task_id_idx on public.enforcement_events (related_task_id)
    where related_task_id is not null;
-- Catch-up reads by the alert listener: "events recorded since (created_at, id)".
create index enforcement_events_created_idx on public.enforcement_events (created_at, id);

create table public.enforcement_history (
    id uuid primary key default gen_random_uuid(),
    enforcement_case_id uuid not null references public.enforcement_cases (id) on delete cascade,
    actor text,
    actor_type text not null check (actor_type in ('user', 'automation', 'rpc')),
    action text not null check (pg_catalog.btrim(action) <> ''),
    delta jsonb not null default '{}' check (pg_catalog.jsonb_typeof(delta) = 'object'),
    note text,
    created_at timestamptz not null default now()
);

comment on table public.enforcement_history is
    'Audit trail of changes to enforcement cases: who (actor, actor_type), what (action) and the diff '
    '(delta, e.g. previous and new stage and tier). Append-only.';
comment on column public.enforcement_history.delta is
    'Diff summary as a JSON object, e.g. {"stage": {"from": "asset_search", "to": "bank_levy"}}.';

create index enforcement_history_case_created_idx
    on public.enforcement_history (enforcement_case_id, created_at);

alter table public.enforcement_cases enable row level security;
alter table public.enforcement_events enable row level security;
alter table public.enforcement_history enable row level security;

revoke all on public.enforcement_cases, public.enforcement_events, public.enforcement_history
    from anon, authenticated, service_role;
grant select, insert, update, delete
    on public.enforcement_cases, public.enforcement_events, public.enforcement_history
    to service_role;
