-- enforcement_actions and enforcement_documents, the two tables the specification adds.
--
-- Why: levies, garnishments, subpoenas and marshal executions run for weeks; an action
-- row tracks each one's status, and documents record the filings and evidence behind
-- them. Both keep the spec's columns, names and types, with these deliberate changes:
--   * enforcement_case_id is not null (an action or document outside a case means nothing);
--   * timestamps default to now() rather than timezone('utc', now()): the latter yields a
--     timestamp *without* time zone, which PostgreSQL re-reads in the session's TimeZone
--     when storing it in a timestamptz, so it is off by the UTC offset on any server or
--     session not set to UTC (on Supabase, which runs in UTC, both give the same value);
--   * added checks: completed and cancelled actions carry closed_at, nothing closes
--     before it opened, text keys are not blank, metadata is a JSON object.
-- The unique partial index that backs queue_enforcement_action()'s upsert on the active
-- set belongs with that RPC and is not created here.

create table public.enforcement_actions (
    id uuid primary key default gen_random_uuid(),
    enforcement_case_id uuid not null references public.enforcement_cases (id) on delete cascade,
    action_type text not null check (action_type in ('bank_levy', 'garnishment', 'subpoena', 'marshal')),
    status text not null check (pg_catalog.btrim(status) <> ''),
    status_reason text,
    opened_at timestamptz not null default now(),
    closed_at timestamptz,
    metadata jsonb not null default '{}' check (pg_catalog.jsonb_typeof(metadata) = 'object'),
    created_by text not null,
    updated_by text,
    updated_at timestamptz not null default now(),
    constraint enforcement_actions_finished_are_closed check (
        status not in ('completed', 'cancelled') or closed_at is not null
    ),
    constraint enforcement_actions_closed_after_opened check (closed_at is null or closed_at >= opened_at)
);

comment on table public.enforcement_actions is
    'Long-running enforcement workflows (bank levy, garnishment, subpoena, marshal) and their status. '
    'Written by queue_enforcement_action() and its wrappers; completed and cancelled actions are closed.';
comment on column public.enforcement_actions.status is
    'Workflow status; the active set and the allowed transitions are defined by queue_enforcement_action(). '
    'completed and cancelled require closed_at.';
comment on column public.enforcement_actions.metadata is
    'Workflow details (court, marshal, bank, amounts...), always a JSON object.';

-- The spec's index; it leads with the case id, so it is also the foreign-key index.
create index enforcement_actions_case_type_status_idx
    on public.enforcement_actions (enforcement_case_id, action_type, status);

create trigger enforcement_actions_touch_updated_at
    before update on public.enforcement_actions
    for each row execute function public.tg_touch_updated_at();

create table public.enforcement_documents (
    id uuid primary key default gen_random_uuid(),
    enforcement_case_id uuid not null references public.enforcement_cases (id) on delete cascade,
    event_id uuid references public.enforcement_events (id),
    doc_kind text not null check (pg_catalog.btrim(doc_kind) <> ''),
    storage_path text not null check (pg_catalog.btrim(storage_path) <> ''),
    uploaded_by text not null,
    uploaded_at timestamptz not null default now(),
    metadata jsonb not null default '{}' check (pg_catalog.jsonb_typeof(metadata) = 'object')
);

comment on table public.enforcement_documents is
    'Filings and evidence behind enforcement workflows (subpoenas, levies, orders...), stored in Supabase '
    'storage under storage_path. Visible to whoever may see the parent case.';
comment on column public.enforcement_documents.event_id is
    'The enforcement_events row the document supports, if any.';

create index enforcement_documents_case_uploaded_idx
    on public.enforcement_documents (enforcement_case_id, uploaded_at);
create index enforcement_documents_event_id_idx on public.enforcement_documents (event_id)
    where event_id is not null;

alter table public.enforcement_actions enable row level security;
alter table public.enforcement_documents enable row level security;

revoke all on public.enforcement_actions, public.enforcement_documents from anon, authenticated, service_role;
grant select, insert, update, delete on public.enforcement_actions, public.enforcement_documents
    to service_role;
