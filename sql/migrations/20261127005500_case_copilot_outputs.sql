-- Case Copilot output: every brief the case_copilot worker writes, and the newest per case.
--
-- Why a table of its own: a brief is generated text about a debtor, produced by a rules
-- engine or a language model. Keeping every brief (not only the latest) with the backend,
-- model, version and latency that produced it makes briefs auditable and lets on-call
-- compare backends. The fleet only inserts; nobody updates a brief.
--
-- Who sees it: only service_role (Supabase's server-side key) reads briefs, through
-- public.v_case_copilot_latest. anon, authenticated and enforcement_operator get nothing:
-- the spec keeps Copilot output internal. The fleet's role (dragonfly_worker) may insert
-- and read back what it wrote (RLS policies below), and nothing else.

create table public.case_copilot_outputs (
    id uuid primary key default gen_random_uuid(),
    enforcement_case_id uuid not null references public.enforcement_cases (id) on delete cascade,
    backend text not null check (backend in ('rules', 'openai_compatible')),
    model text check (model is null or pg_catalog.btrim(model) <> ''),
    version text not null check (pg_catalog.btrim(version) <> ''),
    latency_ms integer not null check (latency_ms >= 0),
    brief jsonb not null check (
        pg_catalog.jsonb_typeof(brief) = 'object'
        and pg_catalog.jsonb_typeof(brief -> 'summary') = 'string'
        and pg_catalog.jsonb_typeof(brief -> 'risk_flags') = 'array'
        and pg_catalog.jsonb_typeof(brief -> 'recommended_actions') = 'array'
        and pg_catalog.jsonb_typeof(brief -> 'inputs_used') = 'array'
    ),
    requested_by text,
    idempotency_key text check (idempotency_key is null or pg_catalog.btrim(idempotency_key) <> ''),
    created_at timestamptz not null default now(),
    constraint case_copilot_outputs_idempotency_key_key unique (idempotency_key)
);

comment on table public.case_copilot_outputs is
    'Every Case Copilot brief: which backend (rules or openai_compatible), model and version wrote '
    'it, how long it took, and the brief itself. Inserted by the case_copilot worker; read through '
    'v_case_copilot_latest (service_role only).';
comment on column public.case_copilot_outputs.brief is
    'The validated brief: {"summary", "risk_flags": [{code, severity, detail}], '
    '"recommended_actions": [{action, reason, priority}], "inputs_used": [...]}.';
comment on column public.case_copilot_outputs.version is
    'Rules version (rules backend) or prompt version (LLM backend) that produced the brief.';
comment on column public.case_copilot_outputs.latency_ms is
    'Milliseconds the backend took to produce the brief (including LLM retries).';
comment on column public.case_copilot_outputs.idempotency_key is
    'The job''s idempotency key: a redelivered job finds its brief and writes no second one.';

-- The newest brief of a case; also the foreign-key index.
create index case_copilot_outputs_case_created_idx
    on public.case_copilot_outputs (enforcement_case_id, created_at desc, id desc);

alter table public.case_copilot_outputs enable row level security;

revoke all on public.case_copilot_outputs
    from public, anon, authenticated, service_role, enforcement_operator, dragonfly_worker;
grant select, insert, update, delete on public.case_copilot_outputs to service_role;
grant select, insert on public.case_copilot_outputs to dragonfly_worker;

create policy "The fleet records copilot briefs" on public.case_copilot_outputs
    for insert to dragonfly_worker with check (true);
create policy "The fleet reads copilot briefs back" on public.case_copilot_outputs
    for select to dragonfly_worker using (true);

-- security_invoker: the view reads the table with the caller's rights, so the table's
-- grants and RLS apply as well as the view's own grant (defence in depth; Supabase flags
-- definer-rights views).
create view public.v_case_copilot_latest
with (security_invoker = true)
as
select distinct on (o.enforcement_case_id)
    o.enforcement_case_id as case_id,
    jc.case_number,
    o.id as output_id,
    o.backend,
    o.model,
    o.version,
    o.latency_ms,
    o.brief ->> 'summary' as summary,
    o.brief,
    o.requested_by,
    o.created_at
from public.case_copilot_outputs as o
join public.enforcement_cases as ec on ec.id = o.enforcement_case_id
left join judgments.cases as jc on jc.judgment_id = ec.judgment_id
order by o.enforcement_case_id, o.created_at desc, o.id desc;

comment on view public.v_case_copilot_latest is
    'The newest Case Copilot brief per enforcement case (case_id), with its case number, backend, '
    'model, version and latency. service_role only: Copilot output stays internal.';

revoke all on public.v_case_copilot_latest
    from public, anon, authenticated, service_role, enforcement_operator, dragonfly_worker;
grant select on public.v_case_copilot_latest to service_role;
