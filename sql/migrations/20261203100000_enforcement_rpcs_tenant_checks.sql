-- The enforcement RPCs check the caller's tenant before anything else, and a row of another
-- tenant answers exactly as a missing row, also in time.
--
-- Why: 20261203090000_tenants gave lock_case() its tenant check, but
--   * lock_case() asked tenancy.caller_tenants() inside the WHERE clause of its lookups,
--     where PostgreSQL evaluates it once per row found: a missing id found no row and never
--     asked, another tenant's id asked twice. That is about 0.1 ms more for another tenant's
--     case (bench/bench_tenant_oracle.py): an oracle of which ids exist elsewhere. The
--     caller's tenants are now computed first, into a variable, on every path; the same
--     holds for every lookup below and for tenancy.may_on_case();
--   * open_enforcement_case() found a judgment (and a plaintiff) of any tenant;
--   * record_enforcement_payment() claimed its idempotency key before it looked at the case:
--     a key used in tenant A replayed A's result (balances included) to a caller of tenant B
--     naming A's case, answered 23505 naming A's case for any other case, and refused B's
--     own payment with the same reference (a check number is not unique across tenants).
--     Keys are now per tenant, and the case's tenant is checked before the key is touched;
--   * record_subpoena_response() found an action of any tenant, answering 22023 ("not a
--     subpoena") or naming the action's case, where a missing action says "not found";
--   * log_enforcement_event() answered 22023 ("another case or plaintiff") for a
--     related_task_id of another tenant, where a missing task says "not found".
-- Signed-in operators arrive as role authenticated (Supabase), so the eight RPCs are granted
-- to authenticated too: the tenant check inside decides, and a signed-in user who is no
-- operator of the row's tenant gets the missing-row answer (a viewer of it: 42501).
--
-- The rule for every lookup: rows of tenants the caller may not write in are filtered out
-- before any lock is taken (no wait on another tenant's locks), the caller's read tenants
-- are then asked on every refusal path alike, and only then does a row the caller may read
-- but not write become 42501. Everything else answers P0002 with the missing row's message.

-- ---------------------------------------------------------------------------------------
-- The refusal every lookup shares

create function enforcement_private.refuse_unwritable(p_tenant uuid, p_missing text, p_read_only text)
returns void
language plpgsql
stable
set search_path = ''
as $$
declare
    -- Asked whatever p_tenant is, so a missing row (null) and another tenant's cost the same.
    v_read uuid[] := tenancy.caller_tenants('read');
begin
    if p_tenant = any (v_read) then
        raise exception using
            errcode = '42501',
            message = p_read_only,
            hint = 'Viewers read; an operator or admin of the tenant may change it.';
    end if;
    raise exception using errcode = 'P0002', message = p_missing;
end;
$$;

comment on function enforcement_private.refuse_unwritable(uuid, text, text) is
    'Raise for a row the caller may not write: 42501 p_read_only when the caller may read its tenant '
    'p_tenant, else P0002 p_missing (no row, or a tenant the caller does not reach: the same answer).';

revoke execute on function enforcement_private.refuse_unwritable(uuid, text, text) from public;

create function enforcement_private.refuse_case(p_rpc text, p_case_id uuid)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    perform enforcement_private.refuse_unwritable(
        (select c.tenant_id from public.enforcement_cases as c where c.id = p_case_id),
        pg_catalog.format('%s: enforcement case %s not found', p_rpc, p_case_id),
        pg_catalog.format('%s: enforcement case %s is read-only for you', p_rpc, p_case_id)
    );
end;
$$;

comment on function enforcement_private.refuse_case(text, uuid) is
    'Raise for an enforcement case the caller may not write: 42501 when it may read it, else P0002 '
    '"<rpc>: enforcement case <id> not found" (missing, or of another tenant).';

revoke execute on function enforcement_private.refuse_case(text, uuid) from public;

-- lock_case(): as in 20261203090000_tenants, with the caller's write tenants computed before
-- the lookup (not per row found) and the refusal shared with the other lookups.
create or replace function enforcement_private.lock_case(
    p_rpc text,
    p_case_id uuid,
    p_must_be_open boolean default true
)
returns public.enforcement_cases
language plpgsql
volatile
set search_path = ''
as $$
declare
    v_write uuid[] := tenancy.caller_tenants('write');
    v_case public.enforcement_cases;
begin
    select c.*
      into v_case
      from public.enforcement_cases as c
     where c.id = p_case_id
       and c.tenant_id = any (v_write)
       for no key update;

    if not found then
        perform enforcement_private.refuse_case(p_rpc, p_case_id);
    end if;

    if p_must_be_open and v_case.closed_at is not null then
        raise exception using
            errcode = 'DF001',
            message = pg_catalog.format(
                '%s: enforcement case %s is closed (%s at %s)',
                p_rpc, p_case_id, v_case.closure_reason, v_case.closed_at
            ),
            hint = 'A closed case cannot change; open a new case for the judgment if enforcement resumes.';
    end if;

    return v_case;
end;
$$;

create function enforcement_private.writable_case_tenant(p_rpc text, p_case_id uuid)
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
    v_write uuid[] := tenancy.caller_tenants('write');
    v_tenant uuid;
begin
    select c.tenant_id into v_tenant
      from public.enforcement_cases as c
     where c.id = p_case_id and c.tenant_id = any (v_write);
    if not found then
        perform enforcement_private.refuse_case(p_rpc, p_case_id);
    end if;
    return v_tenant;
end;
$$;

comment on function enforcement_private.writable_case_tenant(text, uuid) is
    'The tenant of enforcement case p_case_id when the caller may write in it, without a lock; '
    'otherwise the refusal lock_case() gives (42501 read-only, else P0002 not found).';

revoke execute on function enforcement_private.writable_case_tenant(text, uuid) from public;

-- may_on_case(): the same answer as in 20261203090000_tenants, with the caller's tenants
-- computed before the lookup, so a missing case and another tenant's cost the same.
create or replace function tenancy.may_on_case(p_need text, p_case_id uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    v_tenants uuid[] := tenancy.caller_tenants(p_need);
begin
    return exists (
        select 1 from public.enforcement_cases as c
         where c.id = p_case_id and c.tenant_id = any (v_tenants)
    );
end;
$$;

-- ---------------------------------------------------------------------------------------
-- Payment idempotency keys are per tenant

alter table enforcement_private.payment_idempotency_keys
    add column tenant_id uuid references public.tenants (id) on delete cascade;

-- Existing keys belong to their case's tenant (the default tenant for a key whose case is
-- gone: nobody can name that case any more).
update enforcement_private.payment_idempotency_keys as k
   set tenant_id = coalesce(
       (select c.tenant_id from public.enforcement_cases as c where c.id = k.case_id),
       tenancy.default_tenant_id()
   );

alter table enforcement_private.payment_idempotency_keys
    alter column tenant_id set not null,
    drop constraint payment_idempotency_keys_pkey,
    add constraint payment_idempotency_keys_pkey primary key (tenant_id, idempotency_key);

comment on table enforcement_private.payment_idempotency_keys is
    'One row per (tenant, idempotency_key) passed to record_enforcement_payment: the case and amount it '
    'was used for and the result returned (replayed on a repeat). A key is scoped to its case''s '
    'tenant: the same key in another tenant is another payment. Written only by the RPC.';

-- ---------------------------------------------------------------------------------------
-- open_enforcement_case(): the judgment (and a plaintiff named) is found only in the caller's
-- tenants; as in 20261127002200_open_close_case otherwise.

create or replace function public.open_enforcement_case(payload jsonb)
returns uuid
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'open_enforcement_case';
    v_judgment_id uuid;
    v_plaintiff_id uuid;
    v_tier text;
    v_score numeric;
    v_created_by text;
    v_notes text;
    v_judgment public.judgments;
    v_court_case judgments.cases;
    v_band public.enforcement_tier_lookup;
    v_tier_reason text;
    v_existing uuid;
    v_case_id uuid;
    v_constraint text;
    v_now timestamptz := pg_catalog.now();
    v_write uuid[];
    v_read uuid[];
begin
    -- 1. Validate the payload before touching anything.
    perform enforcement_private.require_payload(
        c_rpc, payload,
        array['judgment_id', 'plaintiff_id', 'tier', 'collectability_score', 'created_by', 'notes']
    );
    v_judgment_id := enforcement_private.field_uuid(c_rpc, payload, 'judgment_id', true);
    v_plaintiff_id := enforcement_private.field_uuid(c_rpc, payload, 'plaintiff_id', false);
    v_tier := enforcement_private.field_text(c_rpc, payload, 'tier', false, 20);
    v_score := enforcement_private.field_numeric(c_rpc, payload, 'collectability_score', false, 0, 100);
    v_created_by := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'created_by', false),
        enforcement_private.request_actor()
    );
    v_notes := enforcement_private.field_text(c_rpc, payload, 'notes', false, 4000);

    if v_tier is not null and not exists (
        select 1 from public.enforcement_tier_lookup as t where t.tier = v_tier
    ) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: tier must be one of tier0, tier1, tier2, tier3 (got %s)', c_rpc, v_tier);
    end if;

    -- 2. The judgment, its plaintiff and its court case. A judgment is found only in a
    --    tenant the caller may write in: one the caller may only read is 42501, one of
    --    another tenant answers as a missing one. The caller's tenants are computed before
    --    the lookups (not per row found), so a missing id and another tenant's cost the same.
    v_write := tenancy.caller_tenants('write');
    select j.* into v_judgment
      from public.judgments as j
     where j.id = v_judgment_id and j.tenant_id = any (v_write);
    if not found then
        perform enforcement_private.refuse_unwritable(
            (select j.tenant_id from public.judgments as j where j.id = v_judgment_id),
            pg_catalog.format('%s: judgment %s not found', c_rpc, v_judgment_id),
            pg_catalog.format('%s: judgment %s is read-only for you', c_rpc, v_judgment_id)
        );
    end if;

    if v_plaintiff_id is not null and v_plaintiff_id <> v_judgment.plaintiff_id then
        -- A plaintiff the caller cannot see is not found, as a missing one.
        v_read := tenancy.caller_tenants('read');
        if not exists (
            select 1 from public.plaintiffs as p where p.id = v_plaintiff_id and p.tenant_id = any (v_read)
        ) then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('%s: plaintiff %s not found', c_rpc, v_plaintiff_id);
        end if;
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: plaintiff_id %s is not the plaintiff of judgment %s', c_rpc, v_plaintiff_id, v_judgment_id
            );
    end if;

    if v_judgment.status <> 'active' then
        raise exception using
            errcode = 'DF005',
            message = pg_catalog.format(
                '%s: judgment %s is %s; only active judgments can be enforced', c_rpc, v_judgment_id, v_judgment.status
            );
    end if;

    select existing.id into v_existing
      from public.enforcement_cases as existing
     where existing.judgment_id = v_judgment_id and existing.closed_at is null;
    if found then
        raise exception using
            errcode = '23505',
            message = pg_catalog.format(
                '%s: judgment %s already has an open enforcement case (%s)', c_rpc, v_judgment_id, v_existing
            ),
            hint = 'Close the open case first, or work on it.';
    end if;

    -- 3. Tier: the one given, else the band of the score (given, else the court case's),
    --    else the court case's stored tier.
    select cc.* into v_court_case from judgments.cases as cc where cc.judgment_id = v_judgment_id;
    v_score := coalesce(v_score, v_court_case.collectability_score);
    if v_tier is not null then
        v_tier_reason := 'given at opening';
    else
        v_band := enforcement_private.tier_for_score(v_score);
        if v_band.tier is not null then
            v_tier := v_band.tier;
            v_tier_reason := 'score>=' || pg_catalog.trim_scale(v_band.min_score)::text;
        elsif v_court_case.collectability_tier is not null then
            v_tier := v_court_case.collectability_tier;
            v_tier_reason := 'court case tier';
        end if;
    end if;

    -- 4. Write. The unique partial index decides a race between two opens.
    begin
        insert into public.enforcement_cases (
            judgment_id, plaintiff_id, tier, tier_reason, tier_as_of, collectability_score,
            current_stage, stage_entered_at, next_action_at, current_balance, opened_at, notes, created_by
        )
        values (
            v_judgment_id, v_judgment.plaintiff_id, v_tier, v_tier_reason,
            case when v_tier is not null then v_now end, v_score,
            'pre_enforcement', v_now, enforcement_private.stage_due_at('pre_enforcement', v_now),
            v_judgment.balance_due, v_now, v_notes, v_created_by
        )
        returning id into v_case_id;
    exception when unique_violation then
        get stacked diagnostics v_constraint = constraint_name;
        if v_constraint = 'enforcement_cases_one_open_per_judgment' then
            raise exception using
                errcode = '23505',
                message = pg_catalog.format(
                    '%s: judgment %s already has an open enforcement case (opened concurrently)',
                    c_rpc, v_judgment_id
                ),
                hint = 'Close the open case first, or work on it.';
        end if;
        raise;
    end;

    insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta, note)
    values (
        v_case_id, v_created_by, 'rpc', 'case_opened',
        pg_catalog.jsonb_build_object(
            'stage', pg_catalog.jsonb_build_object('from', null, 'to', 'pre_enforcement'),
            'tier', pg_catalog.jsonb_build_object('from', null, 'to', v_tier),
            'current_balance', pg_catalog.jsonb_build_object('from', null, 'to', v_judgment.balance_due)
        ),
        v_notes
    );

    perform enforcement_private.append_event(
        c_rpc, v_case_id, 'case_opened',
        pg_catalog.jsonb_build_object(
            'judgment_id', v_judgment_id,
            'plaintiff_id', v_judgment.plaintiff_id,
            'tier', v_tier,
            'collectability_score', v_score,
            'current_balance', v_judgment.balance_due
        ),
        null, null, v_created_by
    );

    return v_case_id;
end;
$$;

-- ---------------------------------------------------------------------------------------
-- log_enforcement_event(): a related task of another tenant is not found; as in
-- 20261127002400_log_enforcement_event otherwise.

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
    v_read uuid[];
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
        -- A task is found only where the caller may read its plaintiff: a task of another
        -- tenant is not found, as a missing one (not "another case or plaintiff").
        v_read := tenancy.caller_tenants('read');
        select t.* into v_task
          from public.plaintiff_tasks as t
         where t.id = v_related_task_id
           and exists (
               select 1 from public.plaintiffs as p where p.id = t.plaintiff_id and p.tenant_id = any (v_read)
           );
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

-- ---------------------------------------------------------------------------------------
-- record_subpoena_response(): an action is found only where the caller may read its case; as
-- in 20261127002700_subpoenas otherwise.

create or replace function public.record_subpoena_response(payload jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'record_subpoena_response';
    v_action_id uuid;
    v_case_id uuid;
    v_outcome text;
    v_received_at timestamptz;
    v_document_path text;
    v_response jsonb;
    v_review_due_at timestamptz;
    v_note text;
    v_actor text;
    v_action public.enforcement_actions;
    v_case public.enforcement_cases;
    v_event_id uuid;
    v_review_task_id uuid;
    v_tasks_closed integer;
    v_next_action_at timestamptz;
    v_now timestamptz := pg_catalog.now();
    v_read uuid[];
begin
    perform enforcement_private.require_payload(
        c_rpc, payload,
        array['action_id', 'case_id', 'outcome', 'received_at', 'document_path', 'response', 'review_due_at',
              'note', 'actor']
    );
    v_action_id := enforcement_private.field_uuid(c_rpc, payload, 'action_id', false);
    v_case_id := enforcement_private.field_uuid(c_rpc, payload, 'case_id', false);
    if v_action_id is null and v_case_id is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: action_id or case_id is required', c_rpc);
    end if;
    v_outcome := enforcement_private.field_choice(
        c_rpc, payload, 'outcome', true, array['complied', 'partial', 'objected', 'no_response']
    );
    v_received_at := enforcement_private.field_timestamptz(
        c_rpc, payload, 'received_at', false, v_now + interval '5 minutes'
    );
    v_document_path := enforcement_private.field_storage_path(c_rpc, payload, 'document_path', false);
    if v_outcome = 'complied' and v_document_path is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: document_path is required when outcome is complied', c_rpc);
    end if;
    v_response := enforcement_private.field_object(c_rpc, payload, 'response');
    v_review_due_at := enforcement_private.field_timestamptz(c_rpc, payload, 'review_due_at', false);
    if v_review_due_at is not null and v_review_due_at <= v_now then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format('%s: review_due_at must be in the future', c_rpc);
    end if;
    v_review_due_at := coalesce(v_review_due_at, v_now + interval '3 days');
    v_note := enforcement_private.field_text(c_rpc, payload, 'note', false, 4000);
    v_actor := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'actor', false),
        enforcement_private.request_actor()
    );

    -- Find the case (and the action when named), then lock the case and re-read the action.
    if v_action_id is not null then
        -- An action is found only where the caller may read its case: another tenant's
        -- action is not found, as a missing one (its case is never named). A case the
        -- caller may only read is refused by lock_case() below (42501).
        v_read := tenancy.caller_tenants('read');
        select a.* into v_action
          from public.enforcement_actions as a
         where a.id = v_action_id
           and exists (
               select 1 from public.enforcement_cases as c
                where c.id = a.enforcement_case_id and c.tenant_id = any (v_read)
           );
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('%s: action %s not found', c_rpc, v_action_id);
        end if;
        if v_action.action_type <> 'subpoena' then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    '%s: action %s is a %s action, not a subpoena', c_rpc, v_action_id, v_action.action_type
                );
        end if;
        if v_case_id is not null and v_case_id <> v_action.enforcement_case_id then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    '%s: action %s does not belong to case %s', c_rpc, v_action_id, v_case_id
                );
        end if;
        v_case_id := v_action.enforcement_case_id;
    end if;

    v_case := enforcement_private.lock_case(c_rpc, v_case_id);

    if v_action_id is not null then
        select a.* into v_action from public.enforcement_actions as a where a.id = v_action_id;
        if v_action.closed_at is not null then
            raise exception using
                errcode = 'DF003',
                message = pg_catalog.format(
                    '%s: subpoena action %s is already closed (%s)', c_rpc, v_action_id, v_action.status
                );
        end if;
    else
        select a.* into v_action
          from public.enforcement_actions as a
         where a.enforcement_case_id = v_case_id
           and a.action_type = 'subpoena'
           and a.status in ('queued', 'in_progress', 'awaiting_response');
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('%s: case %s has no active subpoena action', c_rpc, v_case_id);
        end if;
        v_action_id := v_action.id;
    end if;

    v_event_id := enforcement_private.append_event(
        c_rpc, v_case_id,
        case when v_outcome = 'complied' then 'subpoena_complied' else 'subpoena_response_recorded' end
            ::public.enforcement_event_kind,
        pg_catalog.jsonb_build_object(
            'action_id', v_action_id, 'outcome', v_outcome, 'response', v_response, 'note', v_note
        ),
        v_document_path, null, v_actor, v_received_at
    );

    perform enforcement_private.upsert_action(
        c_rpc, v_case_id, 'subpoena', 'completed',
        pg_catalog.jsonb_build_object(
            'response', pg_catalog.jsonb_build_object(
                'outcome', v_outcome,
                'received_at', coalesce(v_received_at, v_now),
                'document_path', v_document_path,
                'event_id', v_event_id,
                'details', v_response
            )
        ),
        v_outcome, v_actor
    );

    update public.plaintiff_tasks as t
       set status = 'done',
           closed_at = v_now,
           closed_by = v_actor,
           result = pg_catalog.jsonb_build_object('subpoena_outcome', v_outcome, 'event_id', v_event_id)
     where t.enforcement_case_id = v_case_id
       and t.status in ('open', 'in_progress')
       and t.metadata ->> 'action_id' = v_action_id::text;
    get diagnostics v_tasks_closed = row_count;

    insert into public.plaintiff_tasks (
        plaintiff_id, enforcement_case_id, kind, status, due_at, metadata, created_by
    )
    values (
        v_case.plaintiff_id, v_case_id, 'review', 'open', v_review_due_at,
        pg_catalog.jsonb_build_object(
            'action_id', v_action_id, 'purpose', 'subpoena_review', 'outcome', v_outcome, 'event_id', v_event_id
        ),
        v_actor
    )
    returning id into v_review_task_id;

    v_next_action_at := least(coalesce(v_case.next_action_at, v_review_due_at), v_review_due_at);
    update public.enforcement_cases as c set next_action_at = v_next_action_at where c.id = v_case_id;

    perform enforcement_private.append_event(
        c_rpc, v_case_id, 'review_scheduled',
        pg_catalog.jsonb_build_object('task_id', v_review_task_id, 'due_at', v_review_due_at, 'action_id', v_action_id),
        null, v_review_task_id, v_actor
    );

    insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta, note)
    values (
        v_case_id, v_actor, 'rpc', 'subpoena_response_recorded',
        pg_catalog.jsonb_build_object(
            'action', pg_catalog.jsonb_build_object('id', v_action_id, 'from', v_action.status, 'to', 'completed'),
            'next_action_at', pg_catalog.jsonb_build_object('from', v_case.next_action_at, 'to', v_next_action_at),
            'outcome', v_outcome
        ),
        v_note
    );

    return pg_catalog.jsonb_build_object(
        'action_id', v_action_id,
        'event_id', v_event_id,
        'review_task_id', v_review_task_id,
        'tasks_closed', v_tasks_closed,
        'next_action_at', v_next_action_at
    );
end;
$$;

-- ---------------------------------------------------------------------------------------
-- record_enforcement_payment(): the case's tenant is checked first, and the key is claimed in
-- that tenant; as in 20261202140000_payment_idempotency otherwise (the key is still claimed
-- before the case lock, so the lock order key, case, judgment is unchanged).

create or replace function public.record_enforcement_payment(payload jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'record_enforcement_payment';
    v_case_id uuid;
    v_judgment_id uuid;
    v_amount numeric;
    v_received_at timestamptz;
    v_source text;
    v_document_path text;
    v_actor text;
    v_case public.enforcement_cases;
    v_judgment public.judgments;
    v_case_balance numeric;
    v_judgment_balance numeric;
    v_event_id uuid;
    v_key text;
    v_claimed text;
    v_first enforcement_private.payment_idempotency_keys;
    v_result jsonb;
    v_tenant uuid;
    v_read uuid[];
begin
    perform enforcement_private.require_payload(
        c_rpc, payload,
        array[
            'case_id', 'judgment_id', 'amount', 'received_at', 'source', 'document_path', 'actor',
            'idempotency_key'
        ]
    );
    v_case_id := enforcement_private.field_uuid(c_rpc, payload, 'case_id', true);
    v_judgment_id := enforcement_private.field_uuid(c_rpc, payload, 'judgment_id', false);
    v_amount := enforcement_private.field_numeric(
        c_rpc, payload, 'amount', true, 0, 999999999999.99, p_min_exclusive => true
    );
    v_received_at := enforcement_private.field_timestamptz(
        c_rpc, payload, 'received_at', false, pg_catalog.now() + interval '5 minutes'
    );
    v_source := enforcement_private.field_text(c_rpc, payload, 'source', false);
    v_document_path := enforcement_private.field_storage_path(c_rpc, payload, 'document_path', false);
    v_actor := coalesce(
        enforcement_private.field_text(c_rpc, payload, 'actor', false),
        enforcement_private.request_actor()
    );

    v_key := enforcement_private.field_text(c_rpc, payload, 'idempotency_key', false);

    -- The case's tenant first, without a lock (a case never moves): a case the caller may
    -- not write in is refused here exactly as lock_case() refuses it, before any key is
    -- looked at, so a key of another tenant is neither replayed nor reported.
    v_tenant := enforcement_private.writable_case_tenant(c_rpc, v_case_id);

    if v_key is not null then
        -- Keys are per tenant: the same key in another tenant is another payment.
        insert into enforcement_private.payment_idempotency_keys (tenant_id, idempotency_key, case_id, amount)
        values (v_tenant, v_key, v_case_id, v_amount)
        on conflict (tenant_id, idempotency_key) do nothing
        returning idempotency_key into v_claimed;
        if v_claimed is null then
            select k.* into v_first
              from enforcement_private.payment_idempotency_keys as k
             where k.tenant_id = v_tenant and k.idempotency_key = v_key;
            if not found then
                -- The conflicting row is committed but not in this transaction's snapshot
                -- (REPEATABLE READ or stricter): the first result cannot be read here.
                raise exception using
                    errcode = '40001',
                    message = pg_catalog.format(
                        '%s: idempotency_key %s was used by a concurrent transaction', c_rpc, v_key
                    ),
                    hint = 'Retry the call (in a new transaction).';
            end if;
            if v_first.case_id <> v_case_id or v_first.amount <> v_amount then
                raise exception using
                    errcode = '23505',
                    message = pg_catalog.format(
                        '%s: idempotency_key %s was already used for a payment of %s on case %s',
                        c_rpc, v_key, v_first.amount, v_first.case_id
                    ),
                    hint = 'Use a new idempotency_key for a different payment.';
            end if;
            return v_first.result;
        end if;
    end if;

    v_case := enforcement_private.lock_case(c_rpc, v_case_id);

    if v_judgment_id is not null and v_judgment_id <> v_case.judgment_id then
        -- A judgment the caller cannot see is not found, as a missing one.
        v_read := tenancy.caller_tenants('read');
        if not exists (
            select 1 from public.judgments as j where j.id = v_judgment_id and j.tenant_id = any (v_read)
        ) then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('%s: judgment %s not found', c_rpc, v_judgment_id);
        end if;
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                '%s: judgment_id %s is not the judgment of case %s', c_rpc, v_judgment_id, v_case_id
            );
    end if;

    select j.* into v_judgment
      from public.judgments as j
     where j.id = v_case.judgment_id
       for no key update;

    if v_amount > v_case.current_balance or v_amount > v_judgment.balance_due then
        raise exception using
            errcode = 'DF004',
            message = pg_catalog.format(
                '%s: amount %s exceeds the balance due (case %s, judgment %s)',
                c_rpc, v_amount, v_case.current_balance, v_judgment.balance_due
            ),
            hint = 'Overpayments are rejected, not capped: record at most the balance and handle the excess.';
    end if;

    v_case_balance := v_case.current_balance - v_amount;
    v_judgment_balance := v_judgment.balance_due - v_amount;

    update public.enforcement_cases as c set current_balance = v_case_balance where c.id = v_case_id;
    update public.judgments as j set balance_due = v_judgment_balance where j.id = v_judgment.id;

    insert into public.enforcement_history (enforcement_case_id, actor, actor_type, action, delta)
    values (
        v_case_id, v_actor, 'rpc', 'payment_recorded',
        pg_catalog.jsonb_build_object(
            'current_balance', pg_catalog.jsonb_build_object('from', v_case.current_balance, 'to', v_case_balance),
            'judgment_balance_due',
            pg_catalog.jsonb_build_object('from', v_judgment.balance_due, 'to', v_judgment_balance),
            'amount', v_amount
        )
    );

    v_event_id := enforcement_private.append_event(
        c_rpc, v_case_id, 'payment_received',
        pg_catalog.jsonb_build_object(
            'amount', v_amount,
            'source', v_source,
            'judgment_id', v_judgment.id,
            'case_balance_after', v_case_balance,
            'judgment_balance_after', v_judgment_balance,
            'idempotency_key', v_key
        ),
        v_document_path, null, v_actor, v_received_at
    );

    v_result := pg_catalog.jsonb_build_object(
        'event_id', v_event_id,
        'case_id', v_case_id,
        'amount', v_amount,
        'case_balance', v_case_balance,
        'judgment_balance', v_judgment_balance
    );
    if v_key is not null then
        update enforcement_private.payment_idempotency_keys as k
           set result = v_result
         where k.tenant_id = v_tenant and k.idempotency_key = v_key;
    end if;
    return v_result;
end;
$$;


-- ---------------------------------------------------------------------------------------
-- Signed-in operators call the eight RPCs as authenticated; the tenant check decides.

grant execute on function
    public.open_enforcement_case(jsonb),
    public.close_enforcement_case(jsonb),
    public.set_enforcement_stage(jsonb),
    public.log_enforcement_event(jsonb),
    public.queue_enforcement_action(jsonb),
    public.record_enforcement_payment(jsonb),
    public.issue_subpoena(jsonb),
    public.record_subpoena_response(jsonb)
    to authenticated;

comment on function public.open_enforcement_case(jsonb) is
    'Opens an enforcement case on an active judgment. Payload: judgment_id (uuid, required), plaintiff_id '
    '(uuid, must be the judgment''s), tier (tier0-tier3), collectability_score (0-100), created_by, notes. '
    'Stage pre_enforcement, balance = judgments.balance_due, history row (actor_type rpc) and case_opened '
    'event. Returns the case id. Errors: 22023, P0002 (also a judgment of a tenant the caller does not '
    'reach), 42501 (the caller only reads the judgment''s tenant), 23505 (an open case exists), DF005 '
    '(judgment not active). Callable by enforcement_operator, authenticated (operators and admins of the '
    'judgment''s tenant) and service_role.';

comment on function public.close_enforcement_case(jsonb) is
    'Closes an open enforcement case. Payload: case_id (uuid), status (satisfied | uncollectible | '
    'withdrawn), note, closed_by. Sets closed_at, closure_reason and the terminal stage, cancels open '
    'actions and open tasks of the case, writes history and case_stage_changed + case_closed events. '
    'Returns {case_id, closure_reason, closed_at, actions_closed, tasks_cancelled}. Errors: 22023, P0002 '
    '(also a case of a tenant the caller does not reach), 42501 (read-only), DF001 (already closed). '
    'Callable by enforcement_operator, authenticated (operators and admins of the case''s tenant) and '
    'service_role.';

comment on function public.set_enforcement_stage(jsonb) is
    'Moves an open case to another non-terminal stage. Payload: case_id (uuid), stage, actor, note, '
    'metadata (object), override (boolean, needed to move to a lower ordinal), next_action_at (default: '
    'now + the stage''s sla_days). Resets stage_entered_at, writes a history delta (stage, tier, '
    'next_action_at) and a case_stage_changed event. Returns {case_id, previous_stage, stage, '
    'next_action_at, event_id}. Errors: 22023, P0002 (also a case of a tenant the caller does not reach), '
    '42501 (read-only), DF001 (case closed), DF002 (backwards without override). Callable by '
    'enforcement_operator, authenticated (operators and admins of the case''s tenant), dragonfly_worker '
    'and service_role.';

comment on function public.log_enforcement_event(jsonb) is
    'Records a workflow event on an open case. Payload: case_id (uuid), event_kind (a loggable kind of '
    'enforcement_event_kind_lookup), payload (object), document_path (storage key; required for filings, '
    'service, orders and marshal returns), related_task_id (uuid of a task of the case or its plaintiff), '
    'actor, occurred_at (not in the future). Updates levy_status / garnishment_status / marshal_status / '
    'asset_flags per the lookup, and NOTIFY enforcement_events_channel fires on commit. Returns the event '
    'id. Errors: 22023, P0002 (also a case or task of a tenant the caller does not reach), 42501 '
    '(read-only), DF001 (case closed). Callable by enforcement_operator, authenticated (operators and '
    'admins of the case''s tenant), dragonfly_worker and service_role.';

comment on function public.queue_enforcement_action(jsonb) is
    'Creates or updates the active enforcement action of a case. Payload: case_id (uuid), action_type '
    '(bank_levy | garnishment | subpoena | marshal), status (queued (default) | in_progress | '
    'awaiting_response | completed | cancelled), metadata (object, merged), status_reason, actor. Upsert '
    'keyed on (case, action_type, active status); completed/cancelled close the action and emit '
    'action_closed. Returns the action id. Errors: 22023, P0002 (also a case of a tenant the caller does '
    'not reach), 42501 (read-only), DF001 (case closed), DF003 (transition refused). Callable by '
    'enforcement_operator, authenticated (operators and admins of the case''s tenant), dragonfly_worker '
    'and service_role.';

comment on function public.record_enforcement_payment(jsonb) is
    'Records a payment on an open case. Payload: case_id (uuid), judgment_id (uuid, must be the case''s; '
    'optional), amount (> 0, at most 2 decimals), received_at (not in the future), source, document_path, '
    'actor, idempotency_key (optional, at most 200 characters, per tenant: the same key again in the '
    'case''s tenant returns the first result and writes nothing; the same key with another case or amount '
    'is 23505). Reduces enforcement_cases.current_balance and judgments.balance_due under row locks in one '
    'transaction, writes history and a payment_received event. Overpayment is rejected. Returns '
    '{event_id, case_id, amount, case_balance, judgment_balance}. Errors: 22023, P0002 (also a case of a '
    'tenant the caller does not reach, checked before the key), 42501 (read-only), 23505 (key reused), '
    '40001 (key used by a concurrent transaction this snapshot cannot see), DF001 (case closed), DF004 '
    '(overpayment). Callable by enforcement_operator, authenticated (operators and admins of the case''s '
    'tenant) and service_role.';

comment on function public.issue_subpoena(jsonb) is
    'Issues an information subpoena on an open case. Payload: case_id (uuid), recipient (text), '
    'recipient_type (bank | employer | debtor | other), document_path (storage key of the subpoena, '
    'required), due_at (future; default now + the information_subpoena SLA), metadata (object), note, '
    'actor. Creates the subpoena action (awaiting_response), a subpoena_issued event, its '
    'enforcement_documents row and a follow-up task due at due_at; next_action_at becomes at most due_at. '
    'Returns {action_id, event_id, document_id, task_id, due_at}. Errors: 22023, P0002 (also a case of a '
    'tenant the caller does not reach), 42501 (read-only), 23505 (an active subpoena exists), DF001 (case '
    'closed). Callable by enforcement_operator, authenticated (operators and admins of the case''s '
    'tenant), dragonfly_worker and service_role.';

comment on function public.record_subpoena_response(jsonb) is
    'Records the answer to an active subpoena. Payload: action_id (uuid) or case_id (uuid; its active '
    'subpoena), outcome (complied | partial | objected | no_response), received_at (not in the future), '
    'document_path (required when complied), response (object), review_due_at (future; default now + 3 '
    'days), note, actor. Completes the action, writes subpoena_complied or subpoena_response_recorded, '
    'closes the subpoena''s open tasks, creates a review task (review_scheduled event) and pulls '
    'next_action_at to at most the review date. Returns {action_id, event_id, review_task_id, '
    'tasks_closed, next_action_at}. Errors: 22023, P0002 (also an action or case of a tenant the caller '
    'does not reach), 42501 (read-only), DF001 (case closed), DF003 (action already closed). Callable by '
    'enforcement_operator, authenticated (operators and admins of the case''s tenant) and service_role.';
