-- On-call operations on the dead-letter store: find, purge, replay.
--
-- Why in SQL: the CLI, the Ops Console and scripts must filter and resolve dead
-- letters the same way, and replay must be atomic (send, repoint the enqueue
-- record, mark resolved) or a crash between steps would send a job twice or
-- lose the record of who replayed it. Purge never deletes: it marks the row
-- resolved, and retention (prune_dead_letters) deletes it later.

-- Every filter is optional (null = no filter). p_error matches a substring of
-- last_error, case-insensitively; the time window applies to dead_at.
create function dragonfly.find_dead_letters(
    p_queue text default null,
    p_kind text default null,
    p_error text default null,
    p_since timestamptz default null,
    p_until timestamptz default null,
    p_status text default 'dead',
    p_ids bigint[] default null,
    p_limit integer default 100
)
returns setof dragonfly.dead_letters
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    if p_status is not null and p_status not in ('dead', 'replayed', 'purged') then
        raise exception 'find_dead_letters: status must be dead, replayed or purged, got %', p_status
            using errcode = '22023';
    end if;
    if p_limit is not null and p_limit < 1 then
        raise exception 'find_dead_letters: p_limit must be at least 1' using errcode = '22023';
    end if;
    return query
        select d.*
        from dragonfly.dead_letters d
        where (p_queue is null or d.queue = p_queue)
          and (p_kind is null or d.kind = p_kind)
          and (p_error is null
               or pg_catalog.strpos(pg_catalog.lower(d.last_error), pg_catalog.lower(p_error)) > 0)
          and (p_since is null or d.dead_at >= p_since)
          and (p_until is null or d.dead_at < p_until)
          and (p_status is null or d.status = p_status)
          and (p_ids is null or d.id = any (p_ids))
        order by d.dead_at, d.id
        limit p_limit;
end
$$;

comment on function dragonfly.find_dead_letters(text, text, text, timestamptz, timestamptz, text, bigint[], integer) is
    'Dead letters matching every given filter (queue, kind, error substring, dead_at window, status, ids; null = any), oldest first, at most p_limit (null = all).';

create function dragonfly.purge_dead_letters(p_ids bigint[], p_by text)
returns setof bigint
language plpgsql
security definer
set search_path = ''
as $$
begin
    if p_by is null or pg_catalog.btrim(p_by) = '' then
        raise exception 'purge_dead_letters: p_by must name who purges' using errcode = '22023';
    end if;
    return query
        update dragonfly.dead_letters d
        set status = 'purged', resolved_at = pg_catalog.now(), resolved_by = p_by
        where d.id = any (p_ids) and d.status = 'dead'
        returning d.id;
end
$$;

comment on function dragonfly.purge_dead_letters(bigint[], text) is
    'Marks the given open dead letters purged (resolved_at, resolved_by); already resolved ids are left alone. Returns the ids purged.';

-- Replay bypasses queue_job()'s deduplication on purpose: the key is already in
-- dragonfly.enqueued_jobs. A new message with the same envelope (and headers)
-- goes on the same queue; PGMQ gives it read_ct 0, so its attempts start over.
create function dragonfly.replay_dead_letter(p_id bigint, p_by text)
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
    'Sends an open dead letter''s message again on its queue (fresh attempt count), repoints dragonfly.enqueued_jobs to the new message and marks the dead letter replayed by p_by. Returns the new msg_id.';

revoke execute on function dragonfly.find_dead_letters(text, text, text, timestamptz, timestamptz, text, bigint[], integer),
    dragonfly.purge_dead_letters(bigint[], text),
    dragonfly.replay_dead_letter(bigint, text) from public;
grant execute on function dragonfly.find_dead_letters(text, text, text, timestamptz, timestamptz, text, bigint[], integer),
    dragonfly.purge_dead_letters(bigint[], text),
    dragonfly.replay_dead_letter(bigint, text) to service_role, dragonfly_worker;
