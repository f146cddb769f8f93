-- dragonfly.hold_jobs(): keep read messages hidden while their jobs talk to the outside world.
--
-- Why: a job kind may run an outside phase (a vendor pull, an SMTP send, an LLM call) before
-- the job's transaction, with no transaction open and no row locked (docs/worker-runtime.md,
-- "The outside phase"). Until claim_jobs locks the message inside that transaction, only its
-- visibility timeout keeps it from a second worker, and that timeout is sized for crash
-- recovery, not for a slow call. The runtime therefore pushes the visibility timeout of the
-- batch's deliveries past the longest the outside phase may take, once per batch, before it
-- starts. Fenced like the other runtime functions: deliveries no longer current (read again by
-- another worker) are skipped, not an error; the claim reports them lost afterwards.

create function dragonfly.hold_jobs(
    p_queue text,
    p_msg_ids bigint[],
    p_read_cts integer[],
    p_seconds double precision
)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_table text := dragonfly.job_queue_table(p_queue);
    v_held integer;
begin
    perform dragonfly.check_deliveries('hold_jobs', p_msg_ids, p_read_cts);
    if p_seconds is null or p_seconds < 0 or p_seconds > 86400 then
        raise exception using
            errcode = '22023',
            message = pg_catalog.format(
                'hold_jobs: seconds must be between 0 and 86400 (got %s)', coalesce(p_seconds::text, 'null')
            );
    end if;
    execute pg_catalog.format(
        $q$
        update pgmq.%I as q
        set vt = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $3)
        from rows from (pg_catalog.unnest($1), pg_catalog.unnest($2)) as d (msg_id, read_ct)
        where q.msg_id = d.msg_id and q.read_ct = d.read_ct and q.msg_id = any ($1)
        $q$,
        v_table
    ) using p_msg_ids, p_read_cts, p_seconds;
    get diagnostics v_held = row_count;
    return v_held;
end
$$;

comment on function dragonfly.hold_jobs(text, bigint[], integer[], double precision) is
    'Hides the given deliveries for p_seconds from now (vt = now + seconds, read_ct unchanged), so '
    'that a job''s outside phase, run before its transaction claims the message, cannot outlast the '
    'visibility timeout. Deliveries no longer current are skipped. Returns how many were held. '
    'Fleet and service_role; 22023 bad input.';

revoke execute on function dragonfly.hold_jobs(text, bigint[], integer[], double precision) from public;
grant execute on function dragonfly.hold_jobs(text, bigint[], integer[], double precision)
    to service_role, dragonfly_worker;
