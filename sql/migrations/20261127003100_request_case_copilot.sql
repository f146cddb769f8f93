-- request_case_copilot(): the Ops Console's "ask Copilot about this case" button.
--
-- Why a separate RPC: callers only know the enforcement case; this function checks that it
-- exists, packages what the case_copilot worker needs (case id, court case number, who asked
-- and when) and enqueues through queue_job(), so validation and deduplication stay in one
-- place.
--
-- Idempotency: the key is 'case_copilot:<case_id>:<requested_at>', requested_at being the
-- transaction's start time in UTC with microseconds. Each request (each transaction) is
-- therefore exactly one job, a retry of the same statement inside a transaction returns the
-- same message id, and a rolled-back request leaves nothing.

create or replace function public.request_case_copilot(case_id uuid, requested_by text default null)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_case_id uuid;
    v_case_number text;
    v_requested_by text := nullif(pg_catalog.btrim(requested_by), '');
    v_requested_at text :=
        pg_catalog.to_char(pg_catalog.timezone('UTC', pg_catalog.now()), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
begin
    if case_id is null then
        raise exception using errcode = '22023', message = 'request_case_copilot: case_id is required';
    end if;
    if pg_catalog.length(v_requested_by) > 200 then
        raise exception using
            errcode = '22023',
            message = 'request_case_copilot: requested_by must be at most 200 characters';
    end if;

    select ec.id, jc.case_number
      into v_case_id, v_case_number
      from public.enforcement_cases as ec
      left join judgments.cases as jc on jc.judgment_id = ec.judgment_id
     where ec.id = request_case_copilot.case_id;

    if v_case_id is null then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('request_case_copilot: enforcement case %s does not exist', case_id);
    end if;

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

comment on function public.request_case_copilot(uuid, text) is
    'Enqueue a case_copilot job for enforcement case case_id through queue_job(); payload '
    '{case_id, case_number, requested_by, requested_at}. Returns the message id. One job '
    'per request (key case_copilot:<case_id>:<transaction start>). P0002 when the case does not exist, '
    '22023 on a null id.';

revoke execute on function public.request_case_copilot(uuid, text)
    from public, anon, authenticated, service_role;
grant execute on function public.request_case_copilot(uuid, text)
    to anon, authenticated, service_role, enforcement_operator, dragonfly_worker;
