-- log_enforcement_event(): the generic timeline writer for flows and automations.
--
-- Why it only accepts the "loggable" kinds: lifecycle kinds (payments, stage changes, case
-- and action lifecycle, subpoenas) carry side effects their own RPC performs (balances,
-- stages, action rows). Writing them here would make the timeline claim something the
-- tables do not show, so those kinds are refused with a pointer to the right RPC.
-- Per-kind rules (document required, derived columns) come from
-- enforcement_event_kind_lookup through enforcement_private.append_event().

create or replace function public.log_enforcement_event(payload jsonb)
returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'log_enforcement_event';
    v_case_id uuid;
    v_kind_text text;
    v_rule public.enforcement_event_kind_lookup;
    v_event_payload jsonb;
    v_document_path text;
    v_related_task_id uuid;
    v_actor text;
    v_occurred_at timestamptz;
    v_task public.plaintiff_tasks;
    v_case public.enforcement_cases;
begin
    perform enforcement_private.require_payload(
        c_rpc, payload,
        array['case_id', 'event_kind', 'payload', 'document_path', 'related_task_id', 'actor', 'occurred_at']
    );
    v_case_id := enforcement_private.field_uuid(c_rpc, payload, 'case_id', true);
    v_kind_text := enforcement_private.field_text(c_rpc, payload, 'event_kind', true, 64);
    v_event_payload := enforcement_private.field_object(c_rpc, payload, 'payload');
    v_document_path := enforcement_private.field_storage_path(c_rpc, payload, 'document_path', false);
    v_related_task_id := enforcement_private.field_uuid(c_rpc, payload, 'related_task_id', false);
    v_actor := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'actor', false),
        enforcement_private.request_actor()
    );
    -- A few minutes of clock skew between a worker and the database are tolerated.
    v_occurred_at := enforcement_private.field_timestamptz(
        c_rpc, payload, 'occurred_at', false, pg_catalog.now() + interval '5 minutes'
    );

    select r.* into v_rule
      from public.enforcement_event_kind_lookup as r
     where r.event_kind::text = v_kind_text;
    if not found then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: event_kind %s is not an enforcement event kind', c_rpc, v_kind_text),
            hint = 'See enforcement_event_kind_lookup for the kinds and their rules.';
    end if;
    if not v_rule.loggable then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: event_kind %s is written by %s, not by log_enforcement_event',
                c_rpc, v_kind_text, v_rule.written_by
            );
    end if;

    v_case := enforcement_private.lock_case(c_rpc, v_case_id);

    if v_related_task_id is not null then
        select t.* into v_task from public.plaintiff_tasks as t where t.id = v_related_task_id;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('%s: task %s not found', c_rpc, v_related_task_id);
        end if;
        if v_task.enforcement_case_id is distinct from v_case_id
           and (v_task.enforcement_case_id is not null or v_task.plaintiff_id <> v_case.plaintiff_id) then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    '%s: related_task_id %s belongs to another case or plaintiff', c_rpc, v_related_task_id
                );
        end if;
    end if;

    return enforcement_private.append_event(
        c_rpc, v_case_id, v_rule.event_kind, v_event_payload, v_document_path, v_related_task_id,
        v_actor, v_occurred_at
    );
end;
$$;

comment on function public.log_enforcement_event(jsonb) is
    'Records a workflow event on an open case. Payload: case_id (uuid), event_kind (a loggable kind of '
    'enforcement_event_kind_lookup), payload (object), document_path (storage key; required for filings, '
    'service, orders and marshal returns), related_task_id (uuid of a task of the case or its plaintiff), '
    'actor, occurred_at (not in the future). Updates levy_status / garnishment_status / marshal_status / '
    'asset_flags per the lookup, and NOTIFY enforcement_events_channel fires on commit. Returns the event '
    'id. Errors: 22023, P0002, DF001 (case closed). Callable by enforcement_operator, dragonfly_worker and '
    'service_role.';

revoke execute on function public.log_enforcement_event(jsonb) from public, anon, authenticated;
grant execute on function public.log_enforcement_event(jsonb)
    to enforcement_operator, dragonfly_worker, service_role;
