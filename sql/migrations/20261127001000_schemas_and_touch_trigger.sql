-- The schemas of the canonical model and the one trigger function that keeps
-- updated_at honest.
--
-- Why: the specification places its tables in four schemas — public (what the
-- Ops Console and PostgREST see), judgments (the court-case record enrichment
-- writes to), enrichment (vendor contact and asset hints) and intake (vendor
-- exports staged before they become canonical rows). Every later migration in
-- this range creates tables in them, so they come first.
--
-- Schema USAGE is granted deliberately: the fleet (dragonfly_worker) and the
-- service role everywhere, Ops (enforcement_operator) only where the Ops Console
-- reads. USAGE alone exposes nothing; each table grants its own rights.
--
-- updated_at is maintained by public.tg_touch_updated_at() on every table that
-- has the column, never by a public RPC (the spec retired set_updated_at()). The
-- spec also names judgments._set_updated_at; one function serves every schema,
-- so that second copy is deliberately not created.

create schema if not exists judgments;
create schema if not exists enrichment;
create schema if not exists intake;

comment on schema judgments is
    'Court-case records behind each judgment (judgments.cases): case number, court, collectability score and tier.';
comment on schema enrichment is
    'Contact and asset hints merged from enrichment vendors, keyed to judgments.cases. Service role and fleet only.';
comment on schema intake is
    'Staging for vendor exports (Simplicity) before process_simplicity_imports() turns them into canonical rows.';

grant usage on schema judgments to service_role, dragonfly_worker, enforcement_operator;
grant usage on schema enrichment to service_role, dragonfly_worker;
grant usage on schema intake to service_role, dragonfly_worker;

create or replace function public.tg_touch_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    -- An update that changes nothing (a re-run import, a re-sent enrichment
    -- bundle) keeps the previous timestamp, so updated_at means "last real
    -- change". *= compares row images, so it works for every column type.
    if new operator(pg_catalog.*=) old then
        return new;
    end if;

    new.updated_at := pg_catalog.now();
    return new;
end;
$$;

comment on function public.tg_touch_updated_at() is
    'BEFORE UPDATE row trigger: sets updated_at to now() when the row really changed. '
    'Attached to every table with an updated_at column; not callable as an RPC.';

revoke execute on function public.tg_touch_updated_at() from public;
