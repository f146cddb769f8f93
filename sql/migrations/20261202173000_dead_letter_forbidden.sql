-- A dead-letter reason of its own for jobs the worker's policy re-check refuses: forbidden.
--
-- Why: queue_job() checks each job against its kind's policy at the door and records the
-- caller's provenance in the envelope; the worker checks the envelope again before the job
-- has any effect, because a message can reach a queue another way (a dead letter replayed
-- after the policy changed, a tool calling pgmq.send, a message older than provenance). A
-- job refused there is dead-lettered at once and never retried, like a malformed one, but
-- it is not a broken message: it is a caller asking for more than its level may, which an
-- operator wants to find, count and alert on apart from producer bugs
-- (docs/worker-runtime.md, "The policy re-check"; docs/runbooks/dead-letters.md).
--
-- The reason's check and dragonfly.dead_letter_job() take 'forbidden'; nothing else
-- changes (the function is the size-limited one of 20261202171200, with the new reason) (replay still sends the stored envelope, provenance and all, so a replayed
-- forbidden job is refused again unless the policy changed meanwhile).

alter table dragonfly.dead_letters
    drop constraint dead_letters_reason_check,
    add constraint dead_letters_reason_check
        check (reason in ('malformed', 'forbidden', 'permanent', 'max_attempts', 'timeout'));

create or replace function dragonfly.dead_letter_job(
    p_queue text,
    p_msg_id bigint,
    p_read_ct integer,
    p_reason text,
    p_error text,
    p_traceback text default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
    v_message jsonb;
    v_headers jsonb;
    v_enqueued_at timestamptz;
    v_limit integer;
    v_bytes integer;
    v_stored jsonb;
    v_error text := p_error;
    v_traceback text := p_traceback;
    v_id bigint;
begin
    if p_reason is null
       or p_reason not in ('malformed', 'forbidden', 'permanent', 'max_attempts', 'timeout') then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'dead_letter_job: reason must be malformed, forbidden, permanent, max_attempts or timeout (got %s)',
                coalesce(pg_catalog.quote_literal(pg_catalog.left(p_reason, 40)), 'null')
            );
    end if;
    if p_error is null or pg_catalog.btrim(p_error) = '' then
        raise exception using errcode = '22023', message = 'dead_letter_job: error must not be blank';
    end if;
    execute pg_catalog.format(
        $q$
        delete from pgmq.%I as q
        where q.msg_id = $1 and q.read_ct = $2
        returning q.message, q.headers, q.enqueued_at
        $q$,
        v_table
    ) into v_message, v_headers, v_enqueued_at using p_msg_id, p_read_ct;
    if v_enqueued_at is null then
        raise exception using
            errcode = 'DF100',
            message = pg_catalog.format(
                'dead_letter_job: message %s on queue %s is no longer this worker''s (read_ct %s)',
                p_msg_id, p_queue, p_read_ct
            );
    end if;

    v_stored := coalesce(v_message, 'null'::jsonb);
    v_limit := dragonfly.dead_letter_max_bytes();
    v_bytes := pg_catalog.octet_length(v_stored::text) + coalesce(pg_catalog.octet_length(v_headers::text), 0);
    if v_bytes > v_limit then
        v_stored := dragonfly.dead_letter_stand_in(v_message, v_headers, v_bytes, v_limit);
    end if;
    if pg_catalog.length(v_error) > 8192 then
        v_error := pg_catalog.left(v_error, 8192)
            || pg_catalog.format(' [%s more characters cut]', pg_catalog.length(v_error) - 8192);
    end if;
    if pg_catalog.length(v_traceback) > 65536 then
        v_traceback := pg_catalog.format('[%s characters cut]', pg_catalog.length(v_traceback) - 65536)
            || E'\n' || pg_catalog.right(v_traceback, 65536);
    end if;

    insert into dragonfly.dead_letters
        (queue, msg_id, kind, idempotency_key, message, headers, attempts, reason, last_error,
         traceback, enqueued_at, truncated_from_bytes)
    values (
        p_queue,
        p_msg_id,
        case when pg_catalog.jsonb_typeof(v_message -> 'kind') = 'string'
             then v_message ->> 'kind' end,
        case when pg_catalog.jsonb_typeof(v_message -> 'idempotency_key') = 'string'
             then nullif(pg_catalog.btrim(v_message ->> 'idempotency_key'), '') end,
        v_stored,
        case when v_bytes > v_limit then null else v_headers end,
        p_read_ct,
        p_reason,
        v_error,
        v_traceback,
        v_enqueued_at,
        case when v_bytes > v_limit then v_bytes end
    )
    returning id into v_id;
    return v_id;
end
$$;

comment on function dragonfly.dead_letter_job(text, bigint, integer, text, text, text) is
    'Moves a delivery from the live queue to dragonfly.dead_letters (message, headers, attempts '
    '= read_ct, reason, last error, traceback, enqueue time) and returns the dead letter''s id. '
    'Reasons: malformed, forbidden (the policy re-check), permanent, max_attempts, timeout. A '
    'message over dragonfly.dead_letter_max_bytes (default 1 MiB of JSON) is stored as a stand-in '
    '(dead_letter_stand_in) with truncated_from_bytes set; the error keeps its first 8192 characters, '
    'the traceback its last 65536. DF100 when the delivery is no longer current; 22023 on a bad '
    'reason or a blank error.';
