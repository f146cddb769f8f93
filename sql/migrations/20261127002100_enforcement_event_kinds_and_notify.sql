-- What each enforcement event kind means to the database, the one internal event writer,
-- and the NOTIFY every event sends.
--
-- Why a lookup table: log_enforcement_event() must know, per kind, whether a document is
-- required, which RPC owns the kind, and which derived case column (levy_status,
-- garnishment_status, marshal_status, asset_flags) the event moves. Keeping that in one
-- table makes the mapping a single, queryable, documented place (docs/enforcement-events.md
-- renders it) instead of CASE branches spread over several functions.
--
-- Why a trigger for NOTIFY: every event must wake the alert listener, whichever RPC wrote
-- it (or service_role writing directly). An AFTER INSERT trigger on enforcement_events
-- guarantees that. NOTIFY is transactional: the listener hears nothing until the writing
-- transaction commits, and nothing at all if it rolls back. The payload is a wake-up, not a
-- record: {"event_id": uuid, "case_id": uuid, "kind": text}; the listener reads the row.

create table public.enforcement_event_kind_lookup (
    event_kind public.enforcement_event_kind primary key,
    loggable boolean not null,
    written_by text not null check (pg_catalog.btrim(written_by) <> ''),
    requires_document boolean not null default false,
    levy_status text check (levy_status ~ '^[a-z][a-z_]*$'),
    garnishment_status text check (garnishment_status ~ '^[a-z][a-z_]*$'),
    marshal_status text check (marshal_status ~ '^[a-z][a-z_]*$'),
    merges_asset_flags boolean not null default false,
    description text not null check (pg_catalog.btrim(description) <> ''),
    constraint enforcement_event_kind_lookup_one_workflow check (
        num_nonnulls(levy_status, garnishment_status, marshal_status) <= 1
    )
);

comment on table public.enforcement_event_kind_lookup is
    'The single mapping from enforcement event kind to its rules: whether log_enforcement_event() accepts it '
    '(loggable; other kinds are written only by the RPC named in written_by), whether document_path is '
    'required, and which derived enforcement_cases column it sets (levy_status, garnishment_status, '
    'marshal_status) or whether it merges payload.asset_flags into asset_flags. Readable by every role.';
comment on column public.enforcement_event_kind_lookup.loggable is
    'True when log_enforcement_event() accepts the kind; false for lifecycle kinds owned by another RPC.';
comment on column public.enforcement_event_kind_lookup.requires_document is
    'Action-stage kinds (filings, service, orders, subpoenas, marshal returns) need a document_path.';
comment on column public.enforcement_event_kind_lookup.levy_status is
    'Value levy_status takes while this kind is the case''s latest-occurring levy event; likewise '
    'garnishment_status and marshal_status.';

insert into public.enforcement_event_kind_lookup
    (event_kind, loggable, written_by, requires_document,
     levy_status, garnishment_status, marshal_status, merges_asset_flags, description)
values
    ('asset_search_requested', true, 'log_enforcement_event', false, null, null, null, false,
     'An asset search was ordered from a vendor or public records.'),
    ('asset_search_completed', true, 'log_enforcement_event', false, null, null, null, true,
     'Asset search results arrived; payload.asset_flags (e.g. {"bank": true}) is merged into asset_flags.'),
    ('bank_levy_filed', true, 'log_enforcement_event', true, 'filed', null, null, false,
     'Execution for a bank levy filed; document_path is the filed execution.'),
    ('bank_levy_served', true, 'log_enforcement_event', true, 'served', null, null, false,
     'Levy served on the bank; document_path is the affidavit of service.'),
    ('bank_levy_released', true, 'log_enforcement_event', true, 'released', null, null, false,
     'Levy released; document_path is the release.'),
    ('garnishment_order_signed', true, 'log_enforcement_event', true, null, 'order_signed', null, false,
     'Income execution / garnishment order signed; document_path is the order.'),
    ('garnishment_served', true, 'log_enforcement_event', true, null, 'served', null, false,
     'Garnishment served on the employer; document_path is the proof of service.'),
    ('garnishment_remittance', true, 'log_enforcement_event', false, null, 'remitting', null, false,
     'Employer remittance received under the garnishment.'),
    ('subpoena_issued', false, 'issue_subpoena', true, null, null, null, false,
     'Information subpoena issued; document_path is the subpoena.'),
    ('subpoena_complied', false, 'record_subpoena_response', true, null, null, null, false,
     'Subpoena answered in full; document_path is the response.'),
    ('marshal_assigned', true, 'log_enforcement_event', true, null, null, 'assigned', false,
     'Execution delivered to a marshal or sheriff; document_path is the execution.'),
    ('marshal_attempted', true, 'log_enforcement_event', false, null, null, 'attempted', false,
     'The marshal attempted a levy or seizure.'),
    ('marshal_result', true, 'log_enforcement_event', true, null, null, 'returned', false,
     'The marshal''s return; document_path is the return.'),
    ('case_stage_changed', false, 'set_enforcement_stage, close_enforcement_case', false, null, null, null, false,
     'The case moved on the stage ladder (payload: from, to, override, note).'),
    ('payment_received', false, 'record_enforcement_payment', false, null, null, null, false,
     'A payment reduced the balance (payload: amount, balances after, source).'),
    ('case_opened', false, 'open_enforcement_case', false, null, null, null, false,
     'An enforcement case was opened on a judgment.'),
    ('case_closed', false, 'close_enforcement_case', false, null, null, null, false,
     'The case was closed as satisfied, uncollectible or withdrawn.'),
    ('action_opened', false, 'queue_enforcement_action, issue_subpoena', false, null, null, null, false,
     'An enforcement action (levy, garnishment, subpoena, marshal) was opened.'),
    ('action_status_changed', false, 'queue_enforcement_action', false, null, null, null, false,
     'An open action moved to another active status.'),
    ('action_closed', false, 'queue_enforcement_action, close_enforcement_case, record_subpoena_response',
     false, null, null, null, false,
     'An action was completed or cancelled.'),
    ('subpoena_response_recorded', false, 'record_subpoena_response', false, null, null, null, false,
     'A subpoena was answered in part, objected to or left unanswered.'),
    ('review_scheduled', false, 'record_subpoena_response', false, null, null, null, false,
     'A review task was scheduled (payload: task_id, due_at).'),
    ('tier_changed', false, 'refresh_enforcement_metrics', false, null, null, null, false,
     'The nightly refresh changed the case''s tier (payload: from, to, reason).'),
    ('note_added', true, 'log_enforcement_event', false, null, null, null, false,
     'A free-form note on the timeline.'),
    ('sla_resurfaced', false, 'refresh_enforcement_metrics', false, null, null, null, false,
     'next_action_at passed; the case resurfaces in the Ops Console.');

alter table public.enforcement_event_kind_lookup enable row level security;

revoke all on public.enforcement_event_kind_lookup from anon, authenticated, service_role;
grant select, insert, update, delete on public.enforcement_event_kind_lookup to service_role;
grant select on public.enforcement_event_kind_lookup
    to anon, authenticated, enforcement_operator, dragonfly_worker;

create policy "Event kinds are readable by everyone"
    on public.enforcement_event_kind_lookup
    for select
    using (true);

-- ---------------------------------------------------------------------------------------
-- NOTIFY on every event

create or replace function enforcement_private.tg_enforcement_events_notify()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform pg_catalog.pg_notify(
        'enforcement_events_channel',
        pg_catalog.jsonb_build_object(
            'event_id', new.id,
            'case_id', new.enforcement_case_id,
            'kind', new.event_kind
        )::text
    );
    return null;
end;
$$;

comment on function enforcement_private.tg_enforcement_events_notify() is
    'AFTER INSERT row trigger on enforcement_events: NOTIFY enforcement_events_channel with '
    '{"event_id", "case_id", "kind"}. Delivered when the transaction commits, never after a rollback. '
    'Not callable as an RPC.';

revoke execute on function enforcement_private.tg_enforcement_events_notify() from public;

create trigger enforcement_events_notify
    after insert on public.enforcement_events
    for each row execute function enforcement_private.tg_enforcement_events_notify();

-- ---------------------------------------------------------------------------------------
-- The one internal event writer

create or replace function enforcement_private.append_event(
    p_rpc text,
    p_case_id uuid,
    p_kind public.enforcement_event_kind,
    p_payload jsonb,
    p_document_path text,
    p_related_task_id uuid,
    p_actor text,
    p_occurred_at timestamptz default null
)
returns uuid
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_rule public.enforcement_event_kind_lookup;
    v_event_id uuid;
    v_flags jsonb;
begin
    select r.* into v_rule
      from public.enforcement_event_kind_lookup as r
     where r.event_kind = p_kind;
    if not found then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: event kind %s has no rule in enforcement_event_kind_lookup', p_rpc, p_kind);
    end if;

    if v_rule.requires_document and p_document_path is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: document_path is required for event kind %s', p_rpc, p_kind),
            hint = 'Filings, service, orders, subpoenas and marshal returns need the stored document''s path.';
    end if;

    if v_rule.merges_asset_flags and enforcement_private.field_present(p_payload, 'asset_flags') then
        v_flags := p_payload -> 'asset_flags';
        if pg_catalog.jsonb_typeof(v_flags) <> 'object'
           or exists (
               select 1
                 from pg_catalog.jsonb_each(v_flags) as f(key, value)
                where pg_catalog.jsonb_typeof(f.value) <> 'boolean'
                   or f.key !~ '^[a-z][a-z0-9_]{0,39}$'
           ) then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    '%s: payload.asset_flags must be an object of snake_case keys to true/false', p_rpc
                );
        end if;
    end if;

    insert into public.enforcement_events (
        enforcement_case_id, event_kind, occurred_at, document_path, related_task_id, payload, actor,
        created_at
    )
    values (
        p_case_id, p_kind, coalesce(p_occurred_at, pg_catalog.now()), p_document_path, p_related_task_id,
        coalesce(p_payload, '{}'::jsonb), p_actor,
        -- clock time, so events recorded in one transaction keep their order.
        pg_catalog.clock_timestamp()
    )
    returning id into v_event_id;

    -- Every document an event cites is listed in enforcement_documents, so the case's
    -- documents are one query away whichever RPC recorded them.
    if p_document_path is not null then
        insert into public.enforcement_documents (
            enforcement_case_id, event_id, doc_kind, storage_path, uploaded_by, metadata
        )
        values (
            p_case_id, v_event_id, p_kind::text, p_document_path, coalesce(p_actor, 'unknown'),
            pg_catalog.jsonb_build_object('recorded_by_rpc', p_rpc)
        );
    end if;

    -- Derived columns: the status of the latest-occurring event of the same workflow, so an
    -- event recorded late (backdated occurred_at) does not overwrite a newer state.
    if v_rule.levy_status is not null then
        update public.enforcement_cases as c
           set levy_status = (
                   select r.levy_status
                     from public.enforcement_events as e
                     join public.enforcement_event_kind_lookup as r on r.event_kind = e.event_kind
                    where e.enforcement_case_id = p_case_id and r.levy_status is not null
                    order by e.occurred_at desc, e.created_at desc
                    limit 1
               )
         where c.id = p_case_id;
    elsif v_rule.garnishment_status is not null then
        update public.enforcement_cases as c
           set garnishment_status = (
                   select r.garnishment_status
                     from public.enforcement_events as e
                     join public.enforcement_event_kind_lookup as r on r.event_kind = e.event_kind
                    where e.enforcement_case_id = p_case_id and r.garnishment_status is not null
                    order by e.occurred_at desc, e.created_at desc
                    limit 1
               )
         where c.id = p_case_id;
    elsif v_rule.marshal_status is not null then
        update public.enforcement_cases as c
           set marshal_status = (
                   select r.marshal_status
                     from public.enforcement_events as e
                     join public.enforcement_event_kind_lookup as r on r.event_kind = e.event_kind
                    where e.enforcement_case_id = p_case_id and r.marshal_status is not null
                    order by e.occurred_at desc, e.created_at desc
                    limit 1
               )
         where c.id = p_case_id;
    end if;

    if v_flags is not null then
        -- Asset flags merge in recording order: the latest search result for a key wins.
        update public.enforcement_cases as c
           set asset_flags = c.asset_flags || v_flags
         where c.id = p_case_id;
    end if;

    return v_event_id;
end;
$$;

comment on function enforcement_private.append_event(text, uuid, public.enforcement_event_kind, jsonb, text, uuid, text, timestamptz) is
    'Inserts one enforcement event (created_at = clock time) after checking the kind''s rules, lists its '
    'document (if any) in enforcement_documents with doc_kind = the event kind, then applies '
    'the kind''s derived-column mapping from enforcement_event_kind_lookup. The NOTIFY comes from the '
    'enforcement_events_notify trigger. The caller must hold the case lock. Internal: every enforcement RPC '
    'writes its events through it.';

revoke execute on function enforcement_private.append_event(text, uuid, public.enforcement_event_kind, jsonb, text, uuid, text, timestamptz)
    from public;

