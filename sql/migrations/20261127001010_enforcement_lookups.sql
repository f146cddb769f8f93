-- The enforcement stage ladder and the collectability tier bands, as lookup tables
-- with their seed data.
--
-- Why tables and not enums or check lists: enforcement_cases.current_stage and every
-- tier column reference these tables with foreign keys, so an unknown stage or tier is
-- refused by the database itself, and set_enforcement_stage() / refresh_enforcement_metrics()
-- read the ordinal, the SLA and the score bands from one place instead of repeating them.
-- docs/schema.md documents the ladder and the bands.
--
-- Both tables are readable by every role (they hold no private data); only the
-- service role may change them.

create table public.enforcement_stage_lookup (
    stage text primary key check (stage ~ '^[a-z][a-z_]*$'),
    ordinal integer not null,
    description text not null check (pg_catalog.btrim(description) <> ''),
    sla_days integer check (sla_days > 0),
    is_terminal boolean not null default false,
    constraint enforcement_stage_lookup_ordinal_key unique (ordinal),
    constraint enforcement_stage_lookup_sla_iff_open check (is_terminal = (sla_days is null))
);

comment on table public.enforcement_stage_lookup is
    'The enforcement stage ladder. enforcement_cases.current_stage references stage; set_enforcement_stage() '
    'refuses a lower ordinal unless overridden and derives next_action_at from sla_days.';
comment on column public.enforcement_stage_lookup.ordinal is
    'Position on the ladder; a case normally only moves to a stage with an equal or higher ordinal.';
comment on column public.enforcement_stage_lookup.sla_days is
    'Days a case may sit in this stage before it resurfaces in the Ops Console (next_action_at). '
    'Null exactly for terminal stages.';
comment on column public.enforcement_stage_lookup.is_terminal is
    'Terminal stages close the case; their names are exactly the closure reasons of enforcement_cases.';

insert into public.enforcement_stage_lookup (stage, ordinal, sla_days, is_terminal, description)
values
    ('pre_enforcement', 10, 14, false,
     'Case opened: judgment, balance and debtor identity verified; demand letter sent before any enforcement device.'),
    ('asset_search', 20, 21, false,
     'Locating bank accounts, employers, real property and vehicles through enrichment vendors and public records.'),
    ('information_subpoena', 30, 30, false,
     'Information subpoenas (with restraining notices) served on banks, employers or the debtor; awaiting answers.'),
    ('bank_levy', 40, 30, false,
     'Execution delivered for a levy on an identified bank account; funds restrained and awaiting turnover.'),
    ('wage_garnishment', 50, 30, false,
     'Income execution served on the employer; remittances expected each pay period and reviewed monthly.'),
    ('marshal_execution', 60, 45, false,
     'Marshal or sheriff executing against personal or real property.'),
    ('payment_plan', 70, 30, false,
     'Debtor paying under an agreed installment plan; each installment monitored.'),
    ('satisfied', 90, null, true,
     'Closed: judgment paid in full and satisfaction filed.'),
    ('uncollectible', 91, null, true,
     'Closed: no recoverable assets or income found; enforcement stopped.'),
    ('withdrawn', 92, null, true,
     'Closed: plaintiff withdrew the matter or the engagement ended.');

create table public.enforcement_tier_lookup (
    tier text primary key check (tier ~ '^tier[0-3]$'),
    min_score numeric(5, 2) not null check (min_score between 0 and 100),
    max_score numeric(5, 2) not null check (max_score between 0 and 100),
    description text not null check (pg_catalog.btrim(description) <> ''),
    rank integer not null,
    constraint enforcement_tier_lookup_rank_key unique (rank),
    constraint enforcement_tier_lookup_band_order check (min_score < max_score)
);

comment on table public.enforcement_tier_lookup is
    'Collectability tiers and their score bands. A score s belongs to the tier with the greatest min_score <= s; '
    'bands are half-open [min_score, max_score) except that tier0 also holds 100.';
comment on column public.enforcement_tier_lookup.rank is
    'Order of the tiers, most collectable first (tier0 = 0).';

insert into public.enforcement_tier_lookup (tier, min_score, max_score, rank, description)
values
    ('tier0', 75, 100, 0, 'Most collectable: verified assets or income; enforce first.'),
    ('tier1', 50, 75, 1, 'Likely collectable: good identity and contact data, some asset signal.'),
    ('tier2', 25, 50, 2, 'Uncertain: thin asset signal; enforce after tier0 and tier1.'),
    ('tier3', 0, 25, 3, 'Least collectable: little identity, contact or asset data.');

alter table public.enforcement_stage_lookup enable row level security;
alter table public.enforcement_tier_lookup enable row level security;

-- Supabase grants anon and authenticated every right on new public tables by default;
-- rights are granted deliberately here instead, so every platform ends up identical.
revoke all on public.enforcement_stage_lookup, public.enforcement_tier_lookup
    from anon, authenticated, service_role;
grant select, insert, update, delete on public.enforcement_stage_lookup, public.enforcement_tier_lookup
    to service_role;
grant select on public.enforcement_stage_lookup, public.enforcement_tier_lookup
    to anon, authenticated, enforcement_operator, dragonfly_worker;

create policy "Stages are readable by everyone"
    on public.enforcement_stage_lookup
    for select
    using (true);

create policy "Tiers are readable by everyone"
    on public.enforcement_tier_lookup
    for select
    using (true);
