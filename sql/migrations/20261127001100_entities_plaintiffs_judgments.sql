-- Parties and judgments: entities, plaintiffs, judgments and the court case behind
-- each judgment (judgments.cases).
--
-- Why: the specification calls these tables existing; this repository now owns them.
-- Everything else hangs off them: enforcement cases, tasks, enrichment, imports.
--
-- Identity rules live in constraints so that concurrent writers cannot break them:
--   * entities.normalized_key is unique, so insert_or_get_entity() can rely on
--     INSERT ... ON CONFLICT (normalized_key) for exactly one row per identity;
--   * plaintiffs.entity_id and plaintiffs.external_id are unique (nulls allowed),
--     so a re-imported export finds the plaintiff it created before;
--   * judgments.cases.judgment_id and case_number are unique (one court case per
--     judgment, one judgment per case number).

create table public.entities (
    id uuid primary key default gen_random_uuid(),
    entity_type text not null check (entity_type in ('person', 'organization')),
    display_name text not null check (pg_catalog.btrim(display_name) <> ''),
    normalized_name text not null,
    normalized_key text generated always as (entity_type || ':' || normalized_name) stored,
    tax_id_last4 text check (tax_id_last4 ~ '^[0-9]{4}$'),
    birth_year integer check (birth_year between 1850 and 2100),
    address_line1 text,
    address_line2 text,
    city text,
    state text check (state ~ '^[A-Z]{2}$'),
    postal_code text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint entities_normalized_key_key unique (normalized_key),
    constraint entities_normalized_name_is_normalized check (
        normalized_name <> ''
        and normalized_name = pg_catalog.lower(normalized_name)
        and normalized_name = pg_catalog.btrim(normalized_name)
        and normalized_name !~ '\s{2}'
    ),
    constraint entities_birth_year_person_only check (birth_year is null or entity_type = 'person')
);

comment on table public.entities is
    'Normalized people and organizations (plaintiffs and debtors). One row per normalized identity: '
    'insert_or_get_entity() inserts on conflict (normalized_key).';
comment on column public.entities.normalized_name is
    'Name as insert_or_get_entity() normalizes it. The table requires at least lowercase, trimmed and '
    'single-spaced; the RPC may strip more (punctuation, corporate suffixes).';
comment on column public.entities.normalized_key is
    'entity_type || '':'' || normalized_name, generated. Unique: the identity of the row.';
comment on column public.entities.tax_id_last4 is
    'Last four digits of an SSN/EIN, for disambiguation by people; never the full number.';

create trigger entities_touch_updated_at
    before update on public.entities
    for each row execute function public.tg_touch_updated_at();

create domain public.plaintiff_status as text
    check (
        value in (
            'new', 'contacted', 'no_answer', 'left_voicemail', 'reached_warm', 'reached_hot',
            'callback_scheduled', 'not_interested', 'do_not_call', 'bad_number', 'signed'
        )
    );

comment on domain public.plaintiff_status is
    'Outreach status of a plaintiff; shared by plaintiffs.status, plaintiff_status_history and '
    'plaintiff_call_attempts.outcome_bucket so the list exists once.';

create table public.plaintiffs (
    id uuid primary key default gen_random_uuid(),
    entity_id uuid references public.entities (id) on delete set null,
    name text not null check (pg_catalog.btrim(name) <> ''),
    email text check (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    phone text,
    address text,
    city text,
    state text check (state ~ '^[A-Z]{2}$'),
    postal_code text,
    timezone text not null default 'America/New_York' check (pg_catalog.btrim(timezone) <> ''),
    status public.plaintiff_status not null default 'new',
    source text,
    external_id text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint plaintiffs_entity_id_key unique (entity_id),
    constraint plaintiffs_external_id_key unique (external_id)
);

comment on table public.plaintiffs is
    'Judgment creditors Dragonfly works for, with their contact details and outreach status. '
    'status changes are recorded in plaintiff_status_history.';
comment on column public.plaintiffs.entity_id is
    'The normalized identity (entities) of this plaintiff; at most one plaintiff per entity.';
comment on column public.plaintiffs.timezone is
    'IANA time zone used to schedule calls at a decent local hour.';
comment on column public.plaintiffs.external_id is
    'Identifier in the source system (e.g. Simplicity); unique when present, so re-imports match.';

create trigger plaintiffs_touch_updated_at
    before update on public.plaintiffs
    for each row execute function public.tg_touch_updated_at();

create table public.judgments (
    id uuid primary key default gen_random_uuid(),
    plaintiff_id uuid not null references public.plaintiffs (id) on delete restrict,
    debtor_entity_id uuid references public.entities (id) on delete set null,
    debtor_name text not null check (pg_catalog.btrim(debtor_name) <> ''),
    judgment_amount numeric(14, 2) not null check (judgment_amount > 0),
    balance_due numeric(14, 2) not null check (balance_due >= 0),
    judgment_date date,
    county text,
    state text check (state ~ '^[A-Z]{2}$'),
    court text,
    priority_level text not null default 'normal'
        check (priority_level in ('urgent', 'high', 'normal', 'low', 'on_hold')),
    status text not null default 'active'
        check (status in ('active', 'satisfied', 'vacated', 'expired')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- Target of enforcement_cases' (judgment_id, plaintiff_id) foreign key, which
    -- guarantees a case's plaintiff is its judgment's plaintiff.
    constraint judgments_id_plaintiff_id_key unique (id, plaintiff_id)
);

comment on table public.judgments is
    'Money judgments owned by a plaintiff against a debtor. balance_due is what remains to collect; '
    'record_enforcement_payment() reduces it.';
comment on column public.judgments.balance_due is
    'Remaining amount to collect (may exceed judgment_amount once interest and costs are added).';
comment on column public.judgments.priority_level is
    'Ops priority: urgent > high > normal > low > on_hold (v_priority_pipeline orders by it).';
comment on column public.judgments.status is
    'Legal state of the judgment itself; the enforcement lifecycle lives in enforcement_cases.';

create index judgments_plaintiff_id_idx on public.judgments (plaintiff_id);
create index judgments_debtor_entity_id_idx on public.judgments (debtor_entity_id);

create trigger judgments_touch_updated_at
    before update on public.judgments
    for each row execute function public.tg_touch_updated_at();

create table judgments.cases (
    id uuid primary key default gen_random_uuid(),
    judgment_id uuid not null references public.judgments (id) on delete cascade,
    case_number text not null check (pg_catalog.btrim(case_number) <> ''),
    court text,
    county text,
    state text check (state ~ '^[A-Z]{2}$'),
    filed_at timestamptz,
    collectability_score numeric(5, 2) check (collectability_score between 0 and 100),
    collectability_tier text references public.enforcement_tier_lookup (tier),
    identity_score numeric(5, 2) check (identity_score between 0 and 100),
    contactability_score numeric(5, 2) check (contactability_score between 0 and 100),
    asset_score numeric(5, 2) check (asset_score between 0 and 100),
    recency_amount_score numeric(5, 2) check (recency_amount_score between 0 and 100),
    adverse_penalty numeric(5, 2) check (adverse_penalty between 0 and 100),
    enrichment_summary text,
    last_enriched_at timestamptz,
    last_scored_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint cases_judgment_id_key unique (judgment_id),
    constraint cases_case_number_key unique (case_number)
);

comment on table judgments.cases is
    'The court case behind a judgment (one per judgment) and its latest collectability assessment, '
    'written by set_case_enrichment() and set_case_scores().';
comment on column judgments.cases.collectability_score is
    'Overall score 0-100 (higher = more collectable); its tier follows public.enforcement_tier_lookup.';
comment on column judgments.cases.identity_score is
    'Score breakdown written by set_case_scores(): identity, contactability, asset and recency/amount '
    'components and the adverse penalty, each 0-100.';
comment on column judgments.cases.last_enriched_at is
    'When set_case_enrichment() last stored a score and tier; last_scored_at is the same for set_case_scores().';

create index cases_collectability_tier_idx on judgments.cases (collectability_tier);

create trigger cases_touch_updated_at
    before update on judgments.cases
    for each row execute function public.tg_touch_updated_at();

alter table public.entities enable row level security;
alter table public.plaintiffs enable row level security;
alter table public.judgments enable row level security;
alter table judgments.cases enable row level security;

-- Rights are granted deliberately (Supabase would otherwise give anon and
-- authenticated everything on new public tables). Policies for Ops come with the RPCs.
revoke all on public.entities, public.plaintiffs, public.judgments, judgments.cases
    from anon, authenticated, service_role;
grant select, insert, update, delete on public.entities, public.plaintiffs, public.judgments, judgments.cases
    to service_role;
