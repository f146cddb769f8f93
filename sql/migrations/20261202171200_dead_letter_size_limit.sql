-- Open dead letters are bounded in size: a message too large is stored as a stand-in, and a
-- truncated dead letter is never replayed.
--
-- Why: dead_letter_job() copied the whole message (and headers, error and traceback) into
-- dragonfly.dead_letters, and open dead letters are never pruned: ten 50 MB jobs added 500 MB
-- that stayed until a person resolved them, and every `dlq list` read them. Now, when a message
-- is dead-lettered:
--   * a message whose JSON text (with its headers') is larger than dragonfly.dead_letter_max_bytes
--     (a setting, default 1048576 = 1 MiB, so any job queue_job takes is kept whole; at least
--     16384) is replaced by a stand-in
--       {kind, idempotency_key, requested_by, provenance, enqueued_at   -- those present, each
--                                                                       -- of at most 1 KiB
--        "truncated": {original_bytes, limit_bytes, headers_bytes, prefix}}
--     where prefix is the first 4096 characters of the message's JSON text; the headers are
--     dropped; dead_letters.truncated_from_bytes records the original size (null: stored whole).
--     An invalid setting is ignored with a WARNING (the default applies): dead-lettering must
--     not fail for it;
--   * last_error keeps its first 8192 characters and the traceback its last 65536 (the innermost
--     frames and the exception), each saying how much was cut.
-- The kind, key and times stay in their columns as before, so filters and the dedupe record are
-- unaffected. replay_dead_letter() refuses a truncated dead letter with 55000 (its payload is
-- gone: a replay would send a job without it); the job has to be enqueued again from its source
-- under a new key (docs/runbooks/dead-letters.md). A stand-in is at most about 21 KiB.
-- dead_letter_job() also takes the reason 'forbidden' (the worker's policy re-check), which
-- the reasons' check accepts from 20261202173000 on.

alter table dragonfly.dead_letters
    add column truncated_from_bytes integer
        constraint dead_letters_truncated_from_bytes_positive check (truncated_from_bytes > 0);

comment on table dragonfly.dead_letters is
    'Dead-letter store: payload, headers, attempts, last error and traceback of each message taken '
    'off a live queue; a message over dragonfly.dead_letter_max_bytes is kept as a stand-in '
    '(truncated_from_bytes). Replay and purge mark rows resolved; resolved rows are pruned after '
    'DRAGONFLY_RETENTION_DEAD_LETTER_DAYS.';

comment on column dragonfly.dead_letters.truncated_from_bytes is
    'Null: message and headers are stored whole. Otherwise the size in bytes of the JSON text of '
    'the message and headers that were dead-lettered, above dragonfly.dead_letter_max_bytes: '
    'message holds a stand-in (kind, key, provenance, a prefix) and the dead letter cannot be '
    'replayed.';

-- The limit in force: the setting dragonfly.dead_letter_max_bytes (for the database or the
-- workers' login role, like dragonfly.refresh_chunk_size), else 1048576.
create function dragonfly.dead_letter_max_bytes()
returns integer
language plpgsql
stable
set search_path = ''
as $$
declare
    v_setting text := nullif(pg_catalog.btrim(pg_catalog.current_setting('dragonfly.dead_letter_max_bytes', true)), '');
begin
    if v_setting is null then
        return 1048576;
    end if;
    if v_setting ~ '^[0-9]{1,10}$' and v_setting::bigint between 16384 and 1073741824 then
        return v_setting::integer;
    end if;
    raise warning 'dragonfly.dead_letter_max_bytes must be an integer between 16384 and 1073741824 (got %); using 1048576',
        pg_catalog.left(v_setting, 40);
    return 1048576;
end
$$;

comment on function dragonfly.dead_letter_max_bytes() is
    'The largest message (JSON text of message and headers, bytes) dead_letter_job() stores whole: '
    'the setting dragonfly.dead_letter_max_bytes (16384 to 1073741824), else 1048576; an invalid '
    'setting warns and gives 1048576.';

revoke execute on function dragonfly.dead_letter_max_bytes() from public;

-- The stand-in of a message too large to keep.
create function dragonfly.dead_letter_stand_in(
    p_message jsonb,
    p_headers jsonb,
    p_bytes integer,
    p_limit integer
)
returns jsonb
language sql
immutable
set search_path = ''
as $$
    select coalesce(
               (select pg_catalog.jsonb_object_agg(f.name, p_message -> f.name)
                  from pg_catalog.unnest(
                           array['kind', 'idempotency_key', 'requested_by', 'provenance', 'enqueued_at']
                       ) as f (name)
                 where pg_catalog.jsonb_typeof(p_message) = 'object'
                   and p_message ? f.name
                   and pg_catalog.octet_length((p_message -> f.name)::text) <= 1024),
               '{}'::jsonb
           )
           || pg_catalog.jsonb_build_object(
               'truncated',
               pg_catalog.jsonb_build_object(
                   'original_bytes', p_bytes,
                   'limit_bytes', p_limit,
                   'headers_bytes', coalesce(pg_catalog.octet_length(p_headers::text), 0),
                   'prefix', pg_catalog.left(coalesce(p_message, 'null'::jsonb)::text, 4096)
               )
           )
$$;

comment on function dragonfly.dead_letter_stand_in(jsonb, jsonb, integer, integer) is
    'What a dead letter stores instead of a message over the limit: the envelope fields kind, '
    'idempotency_key, requested_by, provenance and enqueued_at (those present, each of at most '
    '1 KiB of JSON) and "truncated": {original_bytes, limit_bytes, headers_bytes, prefix (the '
    'first 4096 characters of the message''s JSON text)}. Internal to dead_letter_job().';

revoke execute on function dragonfly.dead_letter_stand_in(jsonb, jsonb, integer, integer) from public;

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

-- As before, and a truncated dead letter is refused (55000) before anything is sent.
create or replace function dragonfly.replay_dead_letter(p_id bigint, p_by text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_dead dragonfly.dead_letters%rowtype;
    v_msg_id bigint;
begin
    if p_by is null or pg_catalog.btrim(p_by) = '' then
        raise exception 'replay_dead_letter: p_by must name who replays' using errcode = '22023';
    end if;
    select * into v_dead from dragonfly.dead_letters d where d.id = p_id for update;
    if not found then
        raise exception 'dead letter % does not exist', p_id using errcode = 'P0002';
    end if;
    if v_dead.status <> 'dead' then
        raise exception 'dead letter % is already %', p_id, v_dead.status using errcode = '55000';
    end if;
    if v_dead.reason = 'malformed' or v_dead.kind is null or v_dead.idempotency_key is null then
        raise exception 'dead letter % has a malformed envelope; replaying it would fail again', p_id
            using errcode = '22023',
                  hint = 'enqueue a corrected job with queue_job() and purge this one';
    end if;
    if v_dead.truncated_from_bytes is not null then
        raise exception using
            errcode = '55000',
            message = pg_catalog.format(
                'dead letter %s cannot be replayed: its message (%s bytes) was over the dead-letter '
                'size limit and only a truncated stand-in was kept',
                p_id, v_dead.truncated_from_bytes
            ),
            hint = 'enqueue the job again from its source under a new idempotency key, then purge this one';
    end if;
    if v_dead.headers is null then
        select s into v_msg_id from pgmq.send(v_dead.queue, v_dead.message) s;
    else
        select s into v_msg_id from pgmq.send(v_dead.queue, v_dead.message, v_dead.headers) s;
    end if;
    insert into dragonfly.enqueued_jobs as e (kind, idempotency_key, msg_id, enqueued_by)
    values (v_dead.kind, v_dead.idempotency_key, v_msg_id, p_by)
    on conflict (kind, idempotency_key) do update set msg_id = excluded.msg_id;
    update dragonfly.dead_letters d
    set status = 'replayed', resolved_at = pg_catalog.now(), resolved_by = p_by,
        replay_msg_id = v_msg_id
    where d.id = p_id;
    return v_msg_id;
end
$$;

comment on function dragonfly.replay_dead_letter(bigint, text) is
    'Sends an open dead letter''s message again on its queue (fresh attempt count), repoints '
    'dragonfly.enqueued_jobs to the new message and marks the dead letter replayed by p_by. Returns '
    'the new msg_id. P0002 unknown id; 55000 already resolved, or truncated (only a stand-in of its '
    'message was kept); 22023 malformed envelope.';
