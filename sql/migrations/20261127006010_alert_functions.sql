-- The alert listener's database door: reading events with their case context, finding the
-- events catch-up still has to route, and on-call retries.
--
-- Why functions: the listener runs as dragonfly_worker, which has no right on the public data
-- tables (only service_role has). These SECURITY DEFINER readers give it exactly the columns an
-- alert shows and nothing else. retry_alert_deliveries() is a function so the CLI and the Ops
-- Console retry the same way, and it wakes the running listeners (NOTIFY on commit).

create type dragonfly.alert_event as (
    event_id uuid,
    case_id uuid,
    judgment_id uuid,
    event_kind text,
    occurred_at timestamptz,
    created_at timestamptz,
    payload jsonb,
    document_path text,
    actor text,
    case_number text,
    debtor_name text,
    tier text,
    stage text,
    balance numeric,
    case_closed boolean
);

comment on type dragonfly.alert_event is
    'An enforcement event as the alert listener sees it: the event row plus its case''s number, '
    'debtor, effective tier, stage and balance.';

create function dragonfly.alert_event_context(p_event_ids uuid[])
returns setof dragonfly.alert_event
language sql
stable
security definer
set search_path = ''
as $$
    select
        e.id,
        e.enforcement_case_id,
        c.judgment_id,
        e.event_kind::text,
        e.occurred_at,
        e.created_at,
        e.payload,
        e.document_path,
        e.actor,
        jc.case_number,
        j.debtor_name,
        case
            when c.tier_override is not null
                 and (c.override_expires_at is null or c.override_expires_at > pg_catalog.now())
                then c.tier_override
            else c.tier
        end,
        c.current_stage,
        c.current_balance,
        c.closed_at is not null
    from public.enforcement_events e
    join public.enforcement_cases c on c.id = e.enforcement_case_id
    left join public.judgments j on j.id = c.judgment_id
    left join judgments.cases jc on jc.judgment_id = c.judgment_id
    where e.id = any (p_event_ids)
    order by e.created_at, e.id
$$;

comment on function dragonfly.alert_event_context(uuid[]) is
    'The given enforcement events (those visible to the caller''s snapshot: a rolled-back or not yet '
    'committed event is absent) with their case context, oldest first.';

revoke execute on function dragonfly.alert_event_context(uuid[]) from public;
grant execute on function dragonfly.alert_event_context(uuid[]) to service_role, dragonfly_worker;

create function dragonfly.alert_unrouted_events(p_lookback interval, p_limit integer)
returns setof dragonfly.alert_event
language sql
stable
security definer
set search_path = ''
as $$
    select ctx.*
    from dragonfly.alert_event_context(array(
        select e.id
        from public.enforcement_events e
        cross join dragonfly.alert_listener_state s
        where e.created_at >= greatest(s.not_before, s.caught_up_to - p_lookback)
          and not exists (
              select 1 from dragonfly.alert_routed_events r where r.event_id = e.id
          )
        order by e.created_at, e.id
        limit p_limit
    )) ctx
$$;

comment on function dragonfly.alert_unrouted_events(interval, integer) is
    'Catch-up: the oldest p_limit events not yet routed, among those created since the cursor '
    '(alert_listener_state.caught_up_to) minus p_lookback, never before not_before. Uses '
    'enforcement_events_created_idx and the routing markers'' primary key.';

revoke execute on function dragonfly.alert_unrouted_events(interval, integer) from public;
grant execute on function dragonfly.alert_unrouted_events(interval, integer)
    to service_role, dragonfly_worker;

create function dragonfly.retry_alert_deliveries(p_ids bigint[] default null, p_all_dead boolean default false)
returns setof bigint
language plpgsql
volatile
set search_path = ''
as $$
begin
    if (p_ids is null) = (not p_all_dead) then
        raise exception 'retry_alert_deliveries: give either p_ids or p_all_dead, not both or neither'
            using errcode = '22023';
    end if;
    -- A dead delivery starts again with a fresh attempt count; a failed one waiting for its
    -- backoff is simply made due now. Pending and delivered rows are left alone.
    return query
        update dragonfly.alert_deliveries d
        set status = 'pending',
            attempts = case when d.status = 'dead' then 0 else d.attempts end,
            dead_at = null,
            next_attempt_at = pg_catalog.now()
        where d.status in ('dead', 'failed')
          and (case when p_all_dead then d.status = 'dead' else d.id = any (p_ids) end)
        returning d.id;
    perform pg_catalog.pg_notify('dragonfly_alerts_wakeup', 'retry');
end
$$;

comment on function dragonfly.retry_alert_deliveries(bigint[], boolean) is
    'On-call retry: dead deliveries (the given ids, or all with p_all_dead) go back to pending with a '
    'fresh attempt count; failed ones become due now. Returns the ids changed and wakes the listeners '
    '(NOTIFY dragonfly_alerts_wakeup on commit).';

revoke execute on function dragonfly.retry_alert_deliveries(bigint[], boolean) from public;
grant execute on function dragonfly.retry_alert_deliveries(bigint[], boolean)
    to service_role, dragonfly_worker;

-- Listeners cache the rules between notifications; any change to them says so on the
-- wake-up channel. Notifications arrive in commit order, so a listener drops its cache
-- before it routes any event committed after the change.
create function dragonfly.tg_alert_rules_changed()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform pg_catalog.pg_notify('dragonfly_alerts_wakeup', 'rules');
    return null;
end
$$;

comment on function dragonfly.tg_alert_rules_changed() is
    'Statement trigger on alert_rules: NOTIFY dragonfly_alerts_wakeup ''rules'' (on commit), so '
    'listeners reload the rules. Not callable as an RPC.';

revoke execute on function dragonfly.tg_alert_rules_changed() from public;

create trigger alert_rules_changed
    after insert or update or delete or truncate on dragonfly.alert_rules
    for each statement execute function dragonfly.tg_alert_rules_changed();

-- Retention of the delivery records (the scheduler's retention task). Only settled rows go:
-- delivered or dead, last changed more than p_older_than ago; pending and failed rows are
-- still being worked. Safe for catch-up at any age: catch-up skips events by their routing
-- markers (alert_routed_events), never by their deliveries, so a pruned delivery is not
-- routed again.
create function dragonfly.prune_alert_deliveries(p_older_than interval, p_limit integer default 5000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_deleted integer;
begin
    perform dragonfly.check_prune_args('prune_alert_deliveries', p_older_than, p_limit);
    -- Two index range scans on alert_deliveries_status_idx (status, updated_at).
    with doomed as (
        select d.id
        from dragonfly.alert_deliveries d
        where d.status in ('delivered', 'dead')
          and d.updated_at < pg_catalog.now() - p_older_than
        order by d.updated_at
        limit p_limit
        for update skip locked
    )
    delete from dragonfly.alert_deliveries d
    using doomed x
    where d.id = x.id;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end
$$;

comment on function dragonfly.prune_alert_deliveries(interval, integer) is
    'Deletes up to p_limit delivered or dead alert deliveries last changed more than p_older_than ago; '
    'pending and failed ones are never pruned. 22023 on a non-positive interval or limit.';

revoke execute on function dragonfly.prune_alert_deliveries(interval, integer) from public;
grant execute on function dragonfly.prune_alert_deliveries(interval, integer)
    to service_role, dragonfly_worker;
