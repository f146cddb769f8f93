-- Lock a batch's enforcement cases up front, in id order, in one statement.
--
-- Why: the enforce worker runs a batch of plan jobs in one transaction, and each job locked
-- its case (dragonfly.enforce_plan_input(case, true)) when it ran, so a batch took its case
-- locks in message order and held them until commit. Two such batches, or a batch and
-- enrich's record_case_scores_batch (which locks the batch's enforcement cases in id
-- order), could each hold a case the other waited for: 40P01 deadlock detected, and the
-- whole batch rolled back and retried. With every case lock of a batch taken here first,
-- in id order, every transaction that locks several cases takes them in the same order.
--
-- The lock order (docs/architecture.md, "Lock order"): judgments.cases (court cases) in id
-- order, then public.enforcement_cases in id order, then public.judgments. Each in one
-- statement (select ... order by id for no key update) when a transaction takes several.

create function dragonfly.lock_enforcement_cases(p_case_ids uuid[])
returns integer
language sql
volatile
security definer
set search_path = ''
as $$
    select pg_catalog.count(*)::integer
      from (select c.id
              from public.enforcement_cases as c
             where c.id = any (p_case_ids)
             order by c.id
               for no key update) as locked
$$;

comment on function dragonfly.lock_enforcement_cases(uuid[]) is
    'Lock the given enforcement cases FOR NO KEY UPDATE, in id order, until the transaction ends '
    '(the project''s lock order, docs/architecture.md); returns how many exist. The enforce '
    'worker calls it before a batch''s jobs lock their cases one by one. Fleet and service_role.';

revoke execute on function dragonfly.lock_enforcement_cases(uuid[]) from public;
grant execute on function dragonfly.lock_enforcement_cases(uuid[]) to service_role, dragonfly_worker;
