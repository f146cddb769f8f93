-- Plaintiff outreach: tasks, call attempts and the status history.
--
-- Why: log_call_outcome() records a call attempt, closes the task it came from, moves the
-- plaintiff's status (with a history row) and may schedule a follow-up task. The
-- enforcement RPCs also create tasks (subpoena review), so a task may belong to an
-- enforcement case; that foreign key is added by the enforcement-core migration, which
-- creates enforcement_cases after this file.
--
-- A task is closed exactly when its status is done or cancelled (closed_at is set then
-- and only then), so "open tasks" is one unambiguous predicate.

create table public.plaintiff_tasks (
    id uuid primary key default gen_random_uuid(),
    plaintiff_id uuid not null references public.plaintiffs (id) on delete cascade,
    enforcement_case_id uuid,
    kind text not null check (kind in ('call', 'email', 'follow_up', 'review', 'document')),
    status text not null default 'open' check (status in ('open', 'in_progress', 'done', 'cancelled')),
    due_at timestamptz,
    closed_at timestamptz,
    closed_by text,
    assigned_to text,
    result jsonb check (pg_catalog.jsonb_typeof(result) = 'object'),
    metadata jsonb not null default '{}' check (pg_catalog.jsonb_typeof(metadata) = 'object'),
    created_by text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint plaintiff_tasks_closed_iff_finished check (
        (closed_at is not null) = (status in ('done', 'cancelled'))
    )
);

comment on table public.plaintiff_tasks is
    'Work items for a plaintiff (calls, emails, follow-ups, reviews, documents), optionally tied to an '
    'enforcement case. Open means status open or in_progress; closed_at is set exactly when done or cancelled.';
comment on column public.plaintiff_tasks.enforcement_case_id is
    'Set for tasks an enforcement workflow created (e.g. reviewing a subpoena response).';
comment on column public.plaintiff_tasks.result is
    'Outcome recorded when the task was closed (e.g. by log_call_outcome()).';

create index plaintiff_tasks_plaintiff_id_idx on public.plaintiff_tasks (plaintiff_id, status);
create index plaintiff_tasks_enforcement_case_id_idx on public.plaintiff_tasks (enforcement_case_id)
    where enforcement_case_id is not null;
create index plaintiff_tasks_open_due_idx on public.plaintiff_tasks (due_at)
    where status in ('open', 'in_progress');

create trigger plaintiff_tasks_touch_updated_at
    before update on public.plaintiff_tasks
    for each row execute function public.tg_touch_updated_at();

create table public.plaintiff_call_attempts (
    id uuid primary key default gen_random_uuid(),
    plaintiff_id uuid not null references public.plaintiffs (id) on delete cascade,
    task_id uuid references public.plaintiff_tasks (id) on delete set null,
    outcome text not null check (pg_catalog.btrim(outcome) <> ''),
    outcome_bucket public.plaintiff_status not null check (outcome_bucket <> 'new'),
    interest text,
    notes text,
    follow_up_at timestamptz,
    attempted_at timestamptz not null default now(),
    created_by text
);

comment on table public.plaintiff_call_attempts is
    'One row per call made to a plaintiff, written by log_call_outcome(). Append-only.';
comment on column public.plaintiff_call_attempts.outcome is
    'The outcome as the caller reported it; outcome_bucket is its normalized form, which becomes the '
    'plaintiff''s status (any plaintiff_status except new).';

create index plaintiff_call_attempts_plaintiff_id_idx
    on public.plaintiff_call_attempts (plaintiff_id, attempted_at);
create index plaintiff_call_attempts_task_id_idx on public.plaintiff_call_attempts (task_id)
    where task_id is not null;

create table public.plaintiff_status_history (
    id uuid primary key default gen_random_uuid(),
    plaintiff_id uuid not null references public.plaintiffs (id) on delete cascade,
    previous_status public.plaintiff_status,
    status public.plaintiff_status not null,
    reason text,
    changed_by text,
    changed_at timestamptz not null default now()
);

comment on table public.plaintiff_status_history is
    'Every change of plaintiffs.status: previous and new status, why and by whom. Append-only.';

create index plaintiff_status_history_plaintiff_id_idx
    on public.plaintiff_status_history (plaintiff_id, changed_at);

alter table public.plaintiff_tasks enable row level security;
alter table public.plaintiff_call_attempts enable row level security;
alter table public.plaintiff_status_history enable row level security;

revoke all on public.plaintiff_tasks, public.plaintiff_call_attempts, public.plaintiff_status_history
    from anon, authenticated, service_role;
grant select, insert, update, delete
    on public.plaintiff_tasks, public.plaintiff_call_attempts, public.plaintiff_status_history
    to service_role;
