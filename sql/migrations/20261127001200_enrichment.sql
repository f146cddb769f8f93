-- Enrichment hints: contacts and assets found for a court case by vendors.
--
-- Why: upsert_enrichment_bundle() merges vendor payloads into these tables, and sending
-- the same bundle twice must change nothing. That needs a natural key per row, enforced
-- by the database: (case_id, contact_type, normalized_value) for contacts and
-- (case_id, asset_type, asset_key) for assets. The RPC upserts on those keys; a row that
-- would not change is left alone, and tg_touch_updated_at() keeps its updated_at.
--
-- Both tables hold personal data and are for the service role and the fleet only.

create table enrichment.contacts (
    id uuid primary key default gen_random_uuid(),
    case_id uuid not null references judgments.cases (id) on delete cascade,
    contact_type text not null check (contact_type in ('phone', 'email', 'address')),
    value text not null check (pg_catalog.btrim(value) <> ''),
    normalized_value text not null check (normalized_value <> ''),
    source text not null check (pg_catalog.btrim(source) <> ''),
    confidence numeric(3, 2) check (confidence between 0 and 1),
    is_verified boolean not null default false,
    metadata jsonb not null default '{}' check (pg_catalog.jsonb_typeof(metadata) = 'object'),
    first_seen_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint contacts_case_type_value_key unique (case_id, contact_type, normalized_value)
);

comment on table enrichment.contacts is
    'Phones, emails and addresses found for a court case. Natural key (case_id, contact_type, '
    'normalized_value): upsert_enrichment_bundle() merges on it.';
comment on column enrichment.contacts.value is
    'The contact as the vendor reported it; normalized_value is the comparable form the key uses '
    '(E.164 phone, lowercase email, normalized address).';
comment on column enrichment.contacts.confidence is
    'Vendor confidence 0.00-1.00.';
comment on column enrichment.contacts.first_seen_at is
    'When any vendor first reported this contact for the case; updated_at is the last real change.';

create trigger contacts_touch_updated_at
    before update on enrichment.contacts
    for each row execute function public.tg_touch_updated_at();

create table enrichment.assets (
    id uuid primary key default gen_random_uuid(),
    case_id uuid not null references judgments.cases (id) on delete cascade,
    asset_type text not null check (asset_type in ('bank', 'employer', 'real_property', 'vehicle', 'other')),
    asset_key text not null check (asset_key <> ''),
    description text,
    institution text,
    estimated_value numeric(14, 2) check (estimated_value >= 0),
    details jsonb not null default '{}' check (pg_catalog.jsonb_typeof(details) = 'object'),
    source text not null check (pg_catalog.btrim(source) <> ''),
    confidence numeric(3, 2) check (confidence between 0 and 1),
    first_seen_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint assets_case_type_key_key unique (case_id, asset_type, asset_key)
);

comment on table enrichment.assets is
    'Bank accounts, employers, real property and vehicles found for a court case. Natural key '
    '(case_id, asset_type, asset_key): upsert_enrichment_bundle() merges on it.';
comment on column enrichment.assets.asset_key is
    'Normalized identifier of the asset within its type (e.g. bank name + last4, employer EIN or '
    'normalized name, parcel id, VIN), chosen by upsert_enrichment_bundle().';
comment on column enrichment.assets.institution is
    'Bank, employer or registry holding the asset; description is free text; details holds the rest.';

create trigger assets_touch_updated_at
    before update on enrichment.assets
    for each row execute function public.tg_touch_updated_at();

-- The unique constraints lead with case_id, so they also serve as the foreign-key indexes.

alter table enrichment.contacts enable row level security;
alter table enrichment.assets enable row level security;

revoke all on enrichment.contacts, enrichment.assets from anon, authenticated, service_role;
grant select, insert, update, delete on enrichment.contacts, enrichment.assets to service_role;
