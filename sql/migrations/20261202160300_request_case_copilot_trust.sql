-- request_case_copilot() as a trust boundary.
--
-- Why: granted to anon by the spec, it queued one LLM job per call (200 calls, 200 jobs),
-- and recorded whatever requested_by the caller wrote. Now:
--   * public callers (anon, authenticated) get one pending brief per case: while a
--     case_copilot job of the case is still in its queue, another request returns that job's
--     message id and enqueues nothing. Requests of one case serialize on a transaction
--     advisory lock, so concurrent requests cannot both miss the pending one. Operators and
--     the fleet keep "each request is one job" (they may want a fresh brief on purpose);
--   * requested_by is recorded through dragonfly.audit_actor(): the session's identity for
--     operator and public callers, the given name kept as "(on behalf of ...)";
--   * case_id is text parsed here, so a bad one is 22023 naming it.
--
-- A job is pending while its message is in pgmq.q_case_copilot (read only here), whoever
-- enqueued it and under whatever key; once the worker deletes it (brief stored) or it is
-- dead-lettered, the next request enqueues again. The queue holds only unfinished briefs, so
-- the scan is short.

drop function public.request_case_copilot(uuid, text);

create function public.request_case_copilot(case_id text, requested_by text default null)
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
begin
    if v_case_id is null then
        raise exception using errcode = '22023', message = 'request_case_copilot: case_id is required';
    end if;
    if pg_catalog.length(v_requested_by) > 200 then
        raise exception using
            errcode = '22023',
            message = 'request_case_copilot: requested_by must be at most 200 characters';
    end if;

    select true, jc.case_number
      into v_found, v_case_number
      from public.enforcement_cases as ec
      left join judgments.cases as jc on jc.judgment_id = ec.judgment_id
     where ec.id = v_case_id;

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

    v_requested_by := dragonfly.audit_actor(v_requested_by);
    return public.queue_job(
        pg_catalog.jsonb_build_object(
            'kind', 'case_copilot',
            'idempotency_key', pg_catalog.format('case_copilot:%s:%s', v_case_id, v_requested_at),
            'requested_by', v_requested_by,
            'payload', pg_catalog.jsonb_build_object(
                'case_id', v_case_id,
                'case_number', v_case_number,
                'requested_by', v_requested_by,
                'requested_at', v_requested_at
            )
        )
    );
end;
$$;

comment on function public.request_case_copilot(text, text) is
    'Enqueue a case_copilot job for enforcement case case_id (a uuid as text) through queue_job(); payload '
    '{case_id, case_number, requested_by, requested_at}; requested_by is the caller''s identity unless the '
    'caller is internal. Returns the message id. Operators and the fleet: one job per request (key '
    'case_copilot:<case_id>:<transaction start>); public callers: one pending brief per case (a request '
    'while one is queued returns its id). P0002 unknown case, 22023 bad or null id.';

revoke execute on function public.request_case_copilot(text, text)
    from public, anon, authenticated, service_role;
grant execute on function public.request_case_copilot(text, text)
    to anon, authenticated, service_role, enforcement_operator, dragonfly_worker;
