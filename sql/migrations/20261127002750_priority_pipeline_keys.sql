-- The sort keys of v_priority_pipeline on one table, so the pipeline is an index scan.
--
-- Why: v_priority_pipeline ranks active judgments per collectability tier by priority and
-- amount. The tier lives in judgments.cases while priority and amount live in
-- public.judgments, so without help every read joins and sorts the whole book (about
-- 0.7 s for 100k judgments) only to return the first 50 rows. Mirroring the court case's
-- collectability_tier onto public.judgments lets one partial index deliver rows already in
-- pipeline order; the window function and LIMIT then stop after the rows asked for (well
-- under a millisecond; see bench/bench_enforcement.py).
--
-- The mirror is maintained by triggers on judgments.cases (per statement for inserts, per
-- row for updates and deletes), in the same transaction as the write it mirrors, and
-- refresh_enforcement_metrics() re-checks it nightly as a safety net.
-- judgments.cases.collectability_tier stays the source of truth (and keeps its foreign key
-- to the tier lookup); the mirror has none, so no extra index is needed for one.

alter table public.judgments add column collectability_tier text;

comment on column public.judgments.collectability_tier is
    'Mirror of judgments.cases.collectability_tier for this judgment (null without a court case), kept by '
    'the cases_mirror_collectability_tier triggers. Exists so v_priority_pipeline can read in index order; '
    'never write it directly.';

create or replace function enforcement_private.tg_mirror_collectability_tier()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    if tg_op = 'DELETE' or old.judgment_id <> new.judgment_id then
        update public.judgments as j
           set collectability_tier = null
         where j.id = old.judgment_id and j.collectability_tier is not null;
    end if;
    if tg_op = 'UPDATE' then
        update public.judgments as j
           set collectability_tier = new.collectability_tier
         where j.id = new.judgment_id and j.collectability_tier is distinct from new.collectability_tier;
    end if;
    return null;
end;
$$;

comment on function enforcement_private.tg_mirror_collectability_tier() is
    'AFTER UPDATE OR DELETE row trigger on judgments.cases: copies collectability_tier onto public.judgments '
    '(the v_priority_pipeline sort key). SECURITY DEFINER so any writer of judgments.cases keeps the mirror '
    'right without rights on public.judgments. Not callable as an RPC.';

revoke execute on function enforcement_private.tg_mirror_collectability_tier() from public;

-- Inserts are mirrored once per statement, from the statement's new rows: a bulk insert (an
-- import of 100k court cases) then costs one join instead of one trigger call and one
-- UPDATE per row. Updates and deletes stay per row: scoring changes cases one at a time,
-- and a column-specific trigger cannot have a transition table.
create or replace function enforcement_private.tg_mirror_collectability_tier_inserted()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    update public.judgments as j
       set collectability_tier = n.collectability_tier
      from new_cases as n
     where j.id = n.judgment_id and j.collectability_tier is distinct from n.collectability_tier;
    return null;
end;
$$;

comment on function enforcement_private.tg_mirror_collectability_tier_inserted() is
    'AFTER INSERT statement trigger on judgments.cases: copies the new court cases'' collectability_tier onto '
    'public.judgments (the v_priority_pipeline sort key), one UPDATE per statement. SECURITY DEFINER like '
    'tg_mirror_collectability_tier(). Not callable as an RPC.';

revoke execute on function enforcement_private.tg_mirror_collectability_tier_inserted() from public;

create trigger cases_mirror_collectability_tier
    after delete or update of collectability_tier, judgment_id on judgments.cases
    for each row execute function enforcement_private.tg_mirror_collectability_tier();

create trigger cases_mirror_collectability_tier_inserted
    after insert on judgments.cases
    referencing new table as new_cases
    for each statement execute function enforcement_private.tg_mirror_collectability_tier_inserted();

-- Rows that existed before this migration (a database migrated while in use).
update public.judgments as j
   set collectability_tier = cc.collectability_tier
  from judgments.cases as cc
 where cc.judgment_id = j.id and j.collectability_tier is distinct from cc.collectability_tier;

-- Exactly v_priority_pipeline's partition and order: tier (nulls last), priority urgent..on_hold,
-- amount descending, id. The expressions must stay identical to the view's for the planner
-- to use it.
create index judgments_priority_pipeline_idx
    on public.judgments (
        collectability_tier,
        (case priority_level
            when 'urgent' then 0 when 'high' then 1 when 'normal' then 2 when 'low' then 3 else 4
         end),
        judgment_amount desc,
        id
    )
    where status = 'active';
