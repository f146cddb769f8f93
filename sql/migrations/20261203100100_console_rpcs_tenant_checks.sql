-- log_call_outcome() and request_case_copilot(), the console's public RPCs, check the tenant.
--
-- Why: both are granted to anon and authenticated (the spec), and neither asked which tenant
-- the plaintiff or case belongs to: anyone holding a (plaintiff, task) pair logged calls in
-- any tenant, a signed-in operator of one tenant got the detailed answers and lifted
-- do_not_call in every other, and anyone could queue LLM briefs of any tenant's case. Now:
--   * log_call_outcome() needs write in the plaintiff's tenant: an operator or admin of it
--     (signed in), the enforcement_operator role, or an internal caller (which
--     dragonfly.acting_tenant narrows). Anyone else gets the missing plaintiff's answer:
--     public callers (anon, signed-in non-members, viewers of other tenants) their one answer
--     of 20261202160200, P0002 "no open call task <task> for plaintiff <plaintiff>"; an
--     operator of another tenant P0002 "plaintiff <id> does not exist". A viewer of the
--     plaintiff's own tenant, who sees the plaintiff anyway, gets 42501. A task is found only
--     with a plaintiff the caller may write, so another tenant's task is "does not exist".
--   * request_case_copilot() needs read access to the case (any member of its tenant, or
--     internal); another tenant's case "does not exist" (P0002), as a missing one.
-- What 20261202160200 and 20261202160300 promise public callers still holds where they can
-- still act: the one answer (every public call now ends with it, or with 42501 for a viewer
-- of the plaintiff's tenant), the 15-minute minimum for follow_up_at, and, for viewers (the
-- public callers who reach a case), one pending brief per case. The sticky do_not_call and
-- the due-follow-up rule stay in the code for public callers, though none of them can reach
-- a plaintiff to write any more. Signed-in operators were already operators
-- (20261203090000_tenants); they now act only in their own tenants.
-- The checks run before any lock or write, with the caller's tenants computed before each
-- lookup, so another tenant's row costs what a missing one costs (bench/bench_tenant_oracle.py).

-- ---------------------------------------------------------------------------------------
-- log_call_outcome(): the plaintiff's tenant first; as in 20261202160200_log_call_outcome_trust
-- otherwise.

create or replace function public.log_call_outcome(
    plaintiff_id text,
    task_id text,
    outcome text,
    interest text default null,
    notes text default null,
    follow_up_at text default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    c_rpc constant text := 'log_call_outcome';
    v_plaintiff_id uuid := enforcement_private.arg_uuid(c_rpc, 'plaintiff_id', log_call_outcome.plaintiff_id);
    v_task_id uuid := enforcement_private.arg_uuid(c_rpc, 'task_id', log_call_outcome.task_id);
    v_outcome text := nullif(pg_catalog.btrim(log_call_outcome.outcome), '');
    v_interest text := pg_catalog.lower(nullif(pg_catalog.btrim(log_call_outcome.interest), ''));
    v_notes text := nullif(pg_catalog.btrim(log_call_outcome.notes), '');
    v_follow_up_at timestamptz :=
        enforcement_private.arg_timestamptz(c_rpc, 'follow_up_at', log_call_outcome.follow_up_at);
    v_public boolean := dragonfly.caller_trust_level() = 'public';
    v_bucket text;
    v_terminal boolean;
    v_task record;
    v_previous_status text;
    v_status text;
    v_actor text := dragonfly.caller_actor();
    v_attempt_id uuid;
    v_history_id uuid;
    v_follow_up_id uuid;
    v_write uuid[];
    v_tenant uuid;
begin
    if v_plaintiff_id is null then
        raise exception using errcode = '22023', message = 'log_call_outcome: plaintiff_id is required';
    end if;
    if v_task_id is null then
        raise exception using errcode = '22023', message = 'log_call_outcome: task_id is required';
    end if;
    if v_outcome is null then
        raise exception using errcode = '22023', message = 'log_call_outcome: outcome is required';
    end if;
    if pg_catalog.length(v_outcome) > 100 then
        raise exception using
            errcode = '22023', message = 'log_call_outcome: outcome must be at most 100 characters';
    end if;
    if v_interest is not null and v_interest <> all (array['hot', 'warm', 'cold', 'none']) then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'log_call_outcome: interest must be hot, warm, cold or none (got %s)',
                enforcement_private.quoted_input(log_call_outcome.interest)
            );
    end if;
    if pg_catalog.length(v_notes) > 10000 then
        raise exception using
            errcode = '22023', message = 'log_call_outcome: notes must be at most 10000 characters';
    end if;
    if v_follow_up_at is not null and v_follow_up_at <= pg_catalog.now() then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'log_call_outcome: follow_up_at must be in the future (got %s)', v_follow_up_at
            );
    end if;
    if v_follow_up_at > pg_catalog.now() + interval '1 year' then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'log_call_outcome: follow_up_at must be at most one year ahead (got %s)', v_follow_up_at
            );
    end if;
    if v_public and v_follow_up_at < pg_catalog.now() + interval '15 minutes' then
        raise exception using
            errcode = '22023',
            message = 'log_call_outcome: follow_up_at must be at least 15 minutes ahead';
    end if;

    v_bucket := intake.call_outcome_bucket(
        pg_catalog.btrim(pg_catalog.regexp_replace(pg_catalog.lower(v_outcome), '[^a-z0-9]+', '_', 'g'), '_'),
        v_interest
    );
    if v_bucket is null then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'log_call_outcome: unknown outcome %s', enforcement_private.quoted_input(v_outcome)
            ),
            hint = 'Use a bucket (do_not_call, bad_number, reached_hot, reached_warm, no_answer, '
                   'left_voicemail, callback_scheduled, not_interested, signed) or a documented synonym.';
    end if;
    v_terminal := v_bucket = any (array['do_not_call', 'bad_number', 'not_interested', 'signed']);

    -- The plaintiff's tenant decides first, before any lock (a plaintiff never moves): the
    -- caller must be an operator or admin of it, or internal. Anyone else is refused as if
    -- the plaintiff did not exist (a viewer of its tenant: 42501), with the missing
    -- plaintiff's message of their level: public callers keep their one answer. Public
    -- callers reach no tenant to write in, so for them every call ends here.
    v_write := tenancy.caller_tenants('write');
    select p.tenant_id into v_tenant from public.plaintiffs as p where p.id = v_plaintiff_id;
    if v_tenant is null or v_tenant <> all (v_write) then
        perform enforcement_private.refuse_unwritable(
            v_tenant,
            case
                when v_public then pg_catalog.format(
                    'log_call_outcome: no open call task %s for plaintiff %s', v_task_id, v_plaintiff_id
                )
                else pg_catalog.format('log_call_outcome: plaintiff %s does not exist', v_plaintiff_id)
            end,
            pg_catalog.format('log_call_outcome: plaintiff %s is read-only for you', v_plaintiff_id)
        );
    end if;

    -- Lock the task, then the plaintiff: concurrent calls on one task serialize here. A task
    -- is found only where the caller may write its plaintiff, so another tenant's task is no
    -- task at all (not "another plaintiff's"), and its row lock is never waited for.
    if v_public then
        -- One question, one answer: whatever is wrong (no such task, another plaintiff's, closed,
        -- not a call, a follow-up not yet due, no such plaintiff), the caller learns only that
        -- this plaintiff has no such open call task.
        select t.id, t.plaintiff_id, t.enforcement_case_id, t.kind, t.status, t.closed_at,
               t.assigned_to, t.metadata
          into v_task
          from public.plaintiff_tasks as t
         where t.id = v_task_id
           and t.plaintiff_id = v_plaintiff_id
           and t.status in ('open', 'in_progress')
           and (t.kind = 'call'
                or (t.kind = 'follow_up'
                    and t.metadata ->> 'created_by_rpc' = 'log_call_outcome'
                    and t.due_at <= pg_catalog.now()))
           for update;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format(
                    'log_call_outcome: no open call task %s for plaintiff %s', v_task_id, v_plaintiff_id
                );
        end if;
        select p.status into v_previous_status from public.plaintiffs as p where p.id = v_plaintiff_id for update;
    else
        select t.id, t.plaintiff_id, t.enforcement_case_id, t.kind, t.status, t.closed_at,
               t.assigned_to, t.metadata
          into v_task
          from public.plaintiff_tasks as t
         where t.id = v_task_id
           and exists (
               select 1 from public.plaintiffs as p where p.id = t.plaintiff_id and p.tenant_id = any (v_write)
           )
           for update of t;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('log_call_outcome: task %s does not exist', v_task_id);
        end if;

        select p.status
          into v_previous_status
          from public.plaintiffs as p
         where p.id = v_plaintiff_id
           for update;
        if not found then
            raise exception using
                errcode = 'P0002',
                message = pg_catalog.format('log_call_outcome: plaintiff %s does not exist', v_plaintiff_id);
        end if;

        if v_task.plaintiff_id <> v_plaintiff_id then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'log_call_outcome: task %s belongs to another plaintiff, not %s', v_task_id, v_plaintiff_id
                );
        end if;
        if v_task.status not in ('open', 'in_progress') then
            raise exception using
                errcode = '55000',
                message = pg_catalog.format(
                    'log_call_outcome: task %s is already closed (%s at %s)',
                    v_task_id, v_task.status, v_task.closed_at
                );
        end if;
        if v_task.kind not in ('call', 'follow_up') then
            raise exception using
                errcode = '22023',
                message = pg_catalog.format(
                    'log_call_outcome: task %s is a %s task, not a call or follow_up task', v_task_id, v_task.kind
                );
        end if;
    end if;

    -- do_not_call is sticky for public callers: the call is on record, the status stays, and
    -- a plaintiff who asked not to be called gets no follow-up call.
    v_status := v_bucket;
    if v_public and v_previous_status = 'do_not_call' then
        v_status := 'do_not_call';
        v_terminal := true;
    end if;

    insert into public.plaintiff_call_attempts
        (plaintiff_id, task_id, outcome, outcome_bucket, interest, notes, follow_up_at, created_by)
    values
        (v_plaintiff_id, v_task_id, v_outcome, v_bucket, v_interest, v_notes, v_follow_up_at, v_actor)
    returning id into v_attempt_id;

    if v_previous_status is distinct from v_status then
        update public.plaintiffs as p set status = v_status where p.id = v_plaintiff_id;
        insert into public.plaintiff_status_history (plaintiff_id, previous_status, status, reason, changed_by)
        values (v_plaintiff_id, v_previous_status, v_status,
                pg_catalog.format('call outcome %s', pg_catalog.quote_literal(v_outcome)), v_actor)
        returning id into v_history_id;
    end if;

    if not v_terminal and v_follow_up_at is not null then
        insert into public.plaintiff_tasks
            (plaintiff_id, enforcement_case_id, kind, status, due_at, assigned_to, metadata, created_by)
        values (
            v_plaintiff_id, v_task.enforcement_case_id, 'follow_up', 'open', v_follow_up_at,
            v_task.assigned_to,
            pg_catalog.jsonb_build_object(
                'created_by_rpc', 'log_call_outcome',
                'previous_task_id', v_task_id,
                'call_attempt_id', v_attempt_id
            ),
            v_actor
        )
        returning id into v_follow_up_id;
    end if;

    update public.plaintiff_tasks as t
       set status = 'done',
           closed_at = pg_catalog.now(),
           closed_by = v_actor,
           result = pg_catalog.jsonb_build_object(
               'call_attempt_id', v_attempt_id,
               'outcome', v_outcome,
               'outcome_bucket', v_bucket,
               'interest', v_interest,
               'terminal', v_terminal,
               'follow_up_at', v_follow_up_at,
               'follow_up_task_id', v_follow_up_id
           ),
           metadata = t.metadata || pg_catalog.jsonb_build_object(
               'closed_by_rpc', 'log_call_outcome', 'call_attempt_id', v_attempt_id
           )
     where t.id = v_task_id;

    return pg_catalog.jsonb_build_object(
        'call_attempt_id', v_attempt_id,
        'plaintiff_id', v_plaintiff_id,
        'task_id', v_task_id,
        'task_status', 'done',
        'outcome', v_outcome,
        'outcome_bucket', v_bucket,
        'terminal', v_terminal,
        'previous_status', v_previous_status,
        'status', v_status,
        'status_changed', v_history_id is not null,
        'status_kept', v_status <> v_bucket,
        'status_history_id', v_history_id,
        'follow_up_task_id', v_follow_up_id,
        'follow_up_at', case when v_follow_up_id is not null then v_follow_up_at end
    );
end;
$$;

comment on function public.log_call_outcome(text, text, text, text, text, text) is
    'Record a call on a plaintiff''s open call/follow_up task: normalizes outcome into a status bucket, '
    'writes plaintiff_call_attempts, closes the task (result + metadata), moves plaintiffs.status with a '
    'plaintiff_status_history row when it changes, and opens a follow_up task (ISO 8601 follow_up_at, '
    'within a year) when the bucket is not terminal. Needs write in the plaintiff''s tenant (an operator '
    'or admin of it, enforcement_operator, or internal); anyone else gets the missing plaintiff''s answer '
    '(public callers: one P0002 "no open call task" answer for everything; a viewer of the tenant: '
    '42501). Arguments are text (22023 naming a bad one); 22023 bad input, P0002 unknown plaintiff or '
    'task (also of a tenant the caller does not reach), 55000 task already closed.';

-- ---------------------------------------------------------------------------------------
-- request_case_copilot(): the case is found only in the caller's tenants; as in
-- 20261202170200_request_case_copilot_send_job otherwise.

create or replace function public.request_case_copilot(case_id text, requested_by text default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    c_rpc constant text := 'request_case_copilot';
    v_case_id uuid := enforcement_private.arg_uuid(c_rpc, 'case_id', request_case_copilot.case_id);
    v_case_number text;
    v_found boolean;
    v_requested_by text := nullif(pg_catalog.btrim(request_case_copilot.requested_by), '');
    v_requested_at text :=
        pg_catalog.to_char(pg_catalog.timezone('UTC', pg_catalog.now()), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    v_pending bigint;
    v_read uuid[];
begin
    if v_case_id is null then
        raise exception using errcode = '22023', message = 'request_case_copilot: case_id is required';
    end if;
    if pg_catalog.length(v_requested_by) > 200 then
        raise exception using
            errcode = '22023',
            message = 'request_case_copilot: requested_by must be at most 200 characters';
    end if;

    -- A brief reads the case: the caller must reach its tenant (a member, any role, or
    -- internal). A case of another tenant does not exist for the caller. The caller's
    -- tenants are computed before the lookup, so both answers cost the same.
    v_read := tenancy.caller_tenants('read');
    select true, jc.case_number
      into v_found, v_case_number
      from public.enforcement_cases as ec
      left join judgments.cases as jc on jc.judgment_id = ec.judgment_id
     where ec.id = v_case_id and ec.tenant_id = any (v_read);

    if v_found is null then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('request_case_copilot: enforcement case %s does not exist', v_case_id);
    end if;

    if dragonfly.caller_trust_level() = 'public' then
        perform pg_catalog.pg_advisory_xact_lock(
            pg_catalog.hashtextextended('request_case_copilot:' || v_case_id::text, 0)
        );
        select q.msg_id
          into v_pending
          from pgmq.q_case_copilot as q
         where q.message -> 'payload' ->> 'case_id' = v_case_id::text
         order by q.msg_id desc
         limit 1;
        if v_pending is not null then
            return v_pending;
        end if;
    end if;

    if not exists (
        select 1 from dragonfly.job_kinds as k where k.kind = 'case_copilot' and k.enabled
    ) then
        raise exception using
            errcode = 'DF101',
            message = 'request_case_copilot: job kind case_copilot is disabled';
    end if;

    v_requested_by := dragonfly.audit_actor(v_requested_by);
    return dragonfly.send_job(
        'case_copilot',
        pg_catalog.format('case_copilot:%s:%s', v_case_id, v_requested_at),
        pg_catalog.jsonb_build_object(
            'case_id', v_case_id,
            'case_number', v_case_number,
            'requested_by', v_requested_by,
            'requested_at', v_requested_at
        ),
        0,
        v_requested_by,
        dragonfly.caller_provenance()
            || '{"derived": ["case_number", "requested_by", "requested_at"]}'::jsonb
    );
end;
$$;

comment on function public.request_case_copilot(text, text) is
    'Enqueue a case_copilot job for enforcement case case_id (a uuid as text); payload {case_id, '
    'case_number, requested_by, requested_at}; requested_by is the caller''s identity unless the caller is '
    'internal. Needs read access to the case (a member of its tenant, enforcement_operator, or internal). '
    'Returns the message id. Operators and the fleet: one job per request (key '
    'case_copilot:<case_id>:<transaction start>); public callers (viewers): one pending brief per case (a '
    'request while one is queued returns its id). P0002 unknown case (also a case of a tenant the caller '
    'does not reach), 22023 bad or null id.';
