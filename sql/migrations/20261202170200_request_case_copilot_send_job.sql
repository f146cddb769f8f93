-- request_case_copilot() sends its job through dragonfly.send_job() with the caller's
-- provenance, instead of calling queue_job() as the caller, and names in that provenance the
-- payload fields it formed itself: "derived": ["case_number", "requested_by", "requested_at"].
--
-- Why: queue_job() now applies the caller's job-kind policy, under which a public caller may
-- set only case_id of a case_copilot job; request_case_copilot() builds the rest of the payload
-- itself (case_number read from the judgment, requested_at from the clock, requested_by by the
-- audit rule) after its own checks (one pending brief per case for public callers). The worker
-- checks every envelope against the policy again before the job has any effect
-- (docs/worker-runtime.md, "The policy re-check"); the provenance says which fields the
-- database formed, so the re-check holds the caller to its level for everything else and lets
-- these through. A message without provenance, or with none of them named, gets no such
-- allowance; the provenance comes from the RPC, never from the caller's arguments. Otherwise
-- the function is unchanged.

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

