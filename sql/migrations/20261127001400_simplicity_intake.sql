-- Simplicity intake: import runs and their staging rows.
--
-- Why: a Simplicity export is loaded as-is (COPY, every column text) into
-- intake.simplicity_import_rows under one intake.simplicity_import_runs row, and
-- process_simplicity_imports(run_id) then validates the rows and materializes plaintiffs,
-- judgments and cases. Keeping the raw text means a bad value is reported on its own
-- line with the reason instead of failing the COPY; the row keeps its outcome and what it
-- became (plaintiff_id, judgment_id, case_id), and only pending rows are processed, so
-- processing a run again changes nothing.
--
-- Built for the import's outcome update (docs/schema.md, "Intake"): what a row became is a
-- record of the import, not a foreign key (deleting a judgment later leaves the staging row
-- as it was); no index covers the columns the import writes; and each page keeps free space
-- (fillfactor 45), so marking the rows is an in-place (HOT) update without index insertions
-- or referential checks.

create table intake.simplicity_import_runs (
    id uuid primary key default gen_random_uuid(),
    source_file text not null check (pg_catalog.btrim(source_file) <> ''),
    status text not null default 'pending' check (status in ('pending', 'processing', 'completed', 'failed')),
    total_rows integer not null default 0 check (total_rows >= 0),
    imported_rows integer not null default 0 check (imported_rows >= 0),
    duplicate_rows integer not null default 0 check (duplicate_rows >= 0),
    failed_rows integer not null default 0 check (failed_rows >= 0),
    error text,
    started_at timestamptz,
    finished_at timestamptz,
    created_by text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint simplicity_import_runs_counts_within_total check (
        imported_rows + duplicate_rows + failed_rows <= total_rows
    ),
    constraint simplicity_import_runs_finished_iff_done check (
        (finished_at is not null) = (status in ('completed', 'failed'))
    )
);

comment on table intake.simplicity_import_runs is
    'One row per loaded Simplicity export: its file, status and row counters. '
    'finished_at is set exactly when the run is completed or failed.';
comment on column intake.simplicity_import_runs.total_rows is
    'Rows staged for the run; imported_rows + duplicate_rows + failed_rows never exceed it.';
comment on column intake.simplicity_import_runs.error is
    'Why the run as a whole failed (row-level reasons are on the staging rows).';

create trigger simplicity_import_runs_touch_updated_at
    before update on intake.simplicity_import_runs
    for each row execute function public.tg_touch_updated_at();

create table intake.simplicity_import_rows (
    id bigint generated always as identity primary key,
    run_id uuid not null references intake.simplicity_import_runs (id) on delete cascade,
    line_number integer not null check (line_number > 0),
    plaintiff_name text,
    plaintiff_email text,
    plaintiff_phone text,
    plaintiff_address text,
    plaintiff_city text,
    plaintiff_state text,
    plaintiff_zip text,
    debtor_name text,
    debtor_type text,
    case_number text,
    court text,
    county text,
    state text,
    judgment_amount text,
    judgment_date text,
    priority text,
    status text not null default 'pending' check (status in ('pending', 'imported', 'duplicate', 'failed')),
    error text,
    plaintiff_id uuid,
    judgment_id uuid,
    case_id uuid,
    processed_at timestamptz,
    created_at timestamptz not null default now(),
    constraint simplicity_import_rows_run_line_key unique (run_id, line_number),
    constraint simplicity_import_rows_error_iff_failed check ((error is not null) = (status = 'failed'))
) with (fillfactor = 45);

comment on table intake.simplicity_import_rows is
    'Staging rows of a Simplicity export, raw text exactly as in the CSV (validation happens in '
    'process_simplicity_imports()). line_number is the line in the file; (run_id, line_number) is unique.';
comment on column intake.simplicity_import_rows.plaintiff_name is
    'Raw CSV columns plaintiff_name .. priority, one per Simplicity export column, all text.';
comment on column intake.simplicity_import_rows.status is
    'pending until processed; then imported, duplicate (already known) or failed (error says why).';
comment on column intake.simplicity_import_rows.plaintiff_id is
    'What the row became or was linked to (plaintiff_id, judgment_id, case_id), as at import time: a '
    'record for reporting, not a foreign key (the row may outlive what it names).';

-- (run_id, line_number) also serves as the run_id foreign-key index and finds a run's
-- pending rows. Deliberately no other index: one on status (even a partial one "where status
-- = 'pending'") or on the provenance ids would make every outcome update a non-HOT update
-- with index insertions.

alter table intake.simplicity_import_runs enable row level security;
alter table intake.simplicity_import_rows enable row level security;

revoke all on intake.simplicity_import_runs, intake.simplicity_import_rows
    from anon, authenticated, service_role;
revoke all on sequence intake.simplicity_import_rows_id_seq from anon, authenticated, service_role;
grant select, insert, update, delete on intake.simplicity_import_runs, intake.simplicity_import_rows
    to service_role;
