-- Identity and adverse findings of enrichment vendors, per case and vendor.
--
-- Why: the collectability model (docs/scoring.md) scores identity and an adverse penalty
-- as well as contacts and assets, and it always scores from what is stored, so that a
-- case enriched from a pushed bundle, a pulled bundle or nothing new scores the same way.
-- Contacts and assets have their tables (enrichment.contacts / assets); the vendor's
-- identity-match confidence and its bankruptcy / deceased findings had none. One row per
-- (case, source) holds the latest report of that source: re-sending the same report
-- changes nothing, a newer one replaces it.
--
-- Personal data: service role and the fleet only, as for the other enrichment tables.

create table enrichment.case_signals (
    case_id uuid not null references judgments.cases (id) on delete cascade,
    source text not null check (pg_catalog.btrim(source) <> ''),
    identity_confidence numeric(3, 2) check (identity_confidence between 0 and 1),
    bankruptcy boolean not null default false,
    deceased boolean not null default false,
    first_seen_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint case_signals_pkey primary key (case_id, source)
);

comment on table enrichment.case_signals is
    'Latest identity and adverse findings of each enrichment source for a case (one row per case '
    'and source), written by enrichment.prepare_scoring() from a vendor bundle''s "signals".';
comment on column enrichment.case_signals.identity_confidence is
    'How sure the source is that it matched the right debtor, 0.00-1.00; null when it did not say.';
comment on column enrichment.case_signals.bankruptcy is
    'The source reports a bankruptcy filing by the debtor (an adverse signal).';
comment on column enrichment.case_signals.deceased is
    'The source reports the debtor deceased (an adverse signal).';

create trigger case_signals_touch_updated_at
    before update on enrichment.case_signals
    for each row execute function public.tg_touch_updated_at();

-- The primary key leads with case_id, so it also serves as the foreign-key index.

alter table enrichment.case_signals enable row level security;

revoke all on enrichment.case_signals from public, anon, authenticated, service_role;
grant select, insert, update, delete on enrichment.case_signals to service_role;
grant select on enrichment.case_signals to dragonfly_worker;

create policy "The fleet reads case signals" on enrichment.case_signals
    for select to dragonfly_worker using (true);
