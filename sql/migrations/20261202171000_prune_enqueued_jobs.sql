-- Retention of queue_job()'s dedupe records (dragonfly.enqueued_jobs), in bounded batches.
--
-- Why: one row is written per (kind, idempotency_key) ever enqueued, and nothing deleted them,
-- so the table (and its primary key, which every enqueue probes) grew with every job the fleet
-- ever took. A record is what makes a second enqueue of the same key return the first message
-- instead of sending another; it only has to outlive the retry window of its producers. The
-- scheduler's retention task now deletes the records older than DRAGONFLY_RETENTION_DEDUPE_DAYS
-- (docs/operations.md, "Retention"); a key enqueued again after that sends a new message.
--
-- A record is kept, however old, while its job is not settled:
--   * its message is still in its queue (pgmq.q_<kind>): waiting, deferred, in flight or waiting
--     out a retry backoff. Pruning it then would let a duplicate in while the first still runs;
--   * its key has an open dead letter: the job waits for a person, and a replay repoints the
--     record to the new message (dragonfly.replay_dead_letter).
-- The age is taken from enqueued_at, the first enqueue of the key (a replay does not move it),
-- so a settled record goes at the next run once the horizon has passed.
--
-- Concurrency: rows are locked FOR UPDATE SKIP LOCKED, so a prune never waits on an enqueue. An
-- enqueue of the same key that finds the row and then finds it gone raises 40001 and is retried
-- by its caller (queue_job()/send_job() already say so); the statement's snapshot sees a job's
-- message either in its queue or, after the transaction that took it out, completed or dead-
-- lettered, never neither.

comment on table dragonfly.enqueued_jobs is
    'Enqueue-side deduplication for queue_job(): the first message id sent for each (kind, '
    'idempotency_key). Records of settled jobs are pruned by the scheduler after '
    'DRAGONFLY_RETENTION_DEDUPE_DAYS (prune_enqueued_jobs); a key enqueued again after that is sent again.';

-- Open dead letters by key, for the prune's check (and small: only open rows).
create index dead_letters_open_key_idx on dragonfly.dead_letters (kind, idempotency_key)
    where status = 'dead';

create function dragonfly.prune_enqueued_jobs(p_older_than interval, p_limit integer default 5000)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_queued text;
    v_deleted integer;
begin
    perform dragonfly.check_prune_args('prune_enqueued_jobs', p_older_than, p_limit);
    -- The messages of every job queue as one relation (kind, msg_id): a union of the queue
    -- tables, each branch tagged with its kind, so the anti-join below probes one queue's
    -- primary key per record. A record of a kind without a queue has no message anywhere.
    select pg_catalog.string_agg(
               pg_catalog.format(
                   'select %L::text as kind, q.msg_id from pgmq.%I as q', m.queue_name, 'q_' || m.queue_name
               ),
               ' union all ' order by m.queue_name
           )
      into v_queued
      from pgmq.meta as m
      join dragonfly.job_kinds as k on k.kind = m.queue_name;
    v_queued := coalesce(v_queued, 'select null::text as kind, null::bigint as msg_id where false');

    execute pg_catalog.format(
        $q$
        with doomed as (
            select e.kind, e.idempotency_key
            from dragonfly.enqueued_jobs as e
            where e.enqueued_at < pg_catalog.now() - $1
              and not exists (
                  select 1 from (%s) as q where q.kind = e.kind and q.msg_id = e.msg_id
              )
              and not exists (
                  select 1
                  from dragonfly.dead_letters as d
                  where d.status = 'dead' and d.kind = e.kind and d.idempotency_key = e.idempotency_key
              )
            order by e.enqueued_at
            limit $2
            for update of e skip locked
        )
        delete from dragonfly.enqueued_jobs as e
        using doomed as x
        where e.kind = x.kind and e.idempotency_key = x.idempotency_key
        $q$,
        v_queued
    ) using p_older_than, p_limit;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end
$$;

comment on function dragonfly.prune_enqueued_jobs(interval, integer) is
    'Deletes up to p_limit of queue_job()''s dedupe records (dragonfly.enqueued_jobs) first enqueued '
    'more than p_older_than ago, oldest first, whose message is no longer in its queue and whose key '
    'has no open dead letter; returns how many. Called in a loop by the scheduler''s retention.';

revoke execute on function dragonfly.prune_enqueued_jobs(interval, integer) from public;
grant execute on function dragonfly.prune_enqueued_jobs(interval, integer)
    to service_role, dragonfly_worker;
