-- dragonfly.prune_enqueue_rate_windows() becomes callable by the fleet, and only for windows
-- that are over.
--
-- Why: the scheduler's retention task (which logs in as a member of dragonfly_worker) now calls
-- it every run, but the function ran with its caller's rights, and the fleet's role has no right
-- on dragonfly.enqueue_rate_windows (its rows are written by queue_job(), a SECURITY DEFINER
-- function): the call failed with 42501. It is now SECURITY DEFINER like the other prune
-- functions. With the owner's rights it must not be a way to reset the rate limits, so it deletes
-- only windows that started at least an hour ago (the longest window is an hour: such a window
-- is over, and count_enqueue() never reads it again): a shorter p_older is refused with 22023.

create or replace function dragonfly.prune_enqueue_rate_windows(p_older interval default interval '2 hours')
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_deleted integer;
begin
    if p_older is null or p_older < interval '1 hour' then
        raise exception using
            errcode = '22023',
            message = 'prune_enqueue_rate_windows: p_older must be at least 1 hour (the longest window)';
    end if;
    delete from dragonfly.enqueue_rate_windows as w
     where w.window_start < pg_catalog.now() - p_older;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end
$$;

comment on function dragonfly.prune_enqueue_rate_windows(interval) is
    'Deletes rate-limit windows that started more than p_older ago (at least 1 hour, else 22023: '
    'such windows are over; their scopes went quiet); returns how many. Run by the scheduler''s '
    'retention task every run.';

revoke execute on function dragonfly.prune_enqueue_rate_windows(interval) from public;
grant execute on function dragonfly.prune_enqueue_rate_windows(interval) to service_role, dragonfly_worker;
