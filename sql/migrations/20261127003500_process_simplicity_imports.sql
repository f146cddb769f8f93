-- process_simplicity_imports(): staged Simplicity rows become plaintiffs, judgments and
-- court cases.
--
-- Why set-based: an export holds up to hundreds of thousands of rows; the function runs a
-- fixed number of INSERT ... SELECT / UPDATE ... FROM statements over the whole run instead
-- of a loop per row (bench/bench_import.py measures it).
--
-- The contract (docs/import.md has the column table):
--   * Every pending row of the run is validated. A row that fails is marked failed with the
--     reason on the row (all reasons, '; '-separated); the good rows still go through.
--   * A good row whose case_number is already in judgments.cases, or repeats an earlier line
--     of the same run, is marked duplicate and linked to the existing plaintiff, judgment and
--     case; nothing existing is modified.
--   * Plaintiffs and debtors go through the entity rules (intake.normalize_entity_name):
--     one entity per normalized identity; a plaintiff is found by its entity or created from
--     the run's first line naming it; debtors become judgments.debtor_entity_id.
--   * New rows become a judgment (balance_due = judgment_amount) and its judgments.cases row.
--   * Only pending rows are processed, so processing a run again changes nothing.
--   * All of it is one transaction. An unexpected error (e.g. a case_number inserted by
--     another writer at the same moment) undoes the whole run's work, marks the run failed
--     with the error and leaves its rows pending, so processing it again retries; 40001 and
--     40P01 are re-raised for the caller to retry.
--   * Runs are processed one at a time (a transaction-level advisory lock), so two runs
--     naming the same plaintiff or case number cannot race.
-- Errors: 22023 null run id, P0002 unknown run.

create or replace function public.process_simplicity_imports(import_run_id uuid)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
    v_run_id uuid := process_simplicity_imports.import_run_id;
    v_status text;
    v_pending bigint;
    v_error text;
    v_sqlstate text;
    v_result jsonb;
begin
    if v_run_id is null then
        raise exception using errcode = '22023', message = 'process_simplicity_imports: import_run_id is required';
    end if;

    select r.status into v_status
      from intake.simplicity_import_runs as r
     where r.id = v_run_id
       for update;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('process_simplicity_imports: import run %s does not exist', v_run_id);
    end if;

    -- One run at a time: plaintiffs and case numbers are shared between runs.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('dragonfly.process_simplicity_imports'));

    select pg_catalog.count(*) into v_pending
      from intake.simplicity_import_rows as s
     where s.run_id = v_run_id and s.status = 'pending';

    if v_pending > 0 or v_status <> 'completed' then
        begin
            perform intake.materialize_simplicity_run(v_run_id);
        exception when others then
            get stacked diagnostics v_error = message_text, v_sqlstate = returned_sqlstate;
            if v_sqlstate in ('40001', '40P01') then
                raise;
            end if;
            update intake.simplicity_import_runs as r
               set status = 'failed',
                   error = pg_catalog.format('%s (SQLSTATE %s)', v_error, v_sqlstate),
                   started_at = coalesce(r.started_at, pg_catalog.now()),
                   finished_at = pg_catalog.now()
             where r.id = v_run_id;
        end;
    end if;

    select pg_catalog.jsonb_build_object(
               'run_id', r.id,
               'status', r.status,
               'total_rows', r.total_rows,
               'imported_rows', r.imported_rows,
               'duplicate_rows', r.duplicate_rows,
               'failed_rows', r.failed_rows,
               'processed_now', case when r.status = 'completed' then v_pending else 0 end,
               'error', r.error
           )
      into v_result
      from intake.simplicity_import_runs as r
     where r.id = v_run_id;
    return v_result;
end;
$$;

comment on function public.process_simplicity_imports(uuid) is
    'Materialize the pending staging rows of a Simplicity import run into plaintiffs, judgments and '
    'judgments.cases (set-based, one transaction). Bad rows are marked failed with the reason, known case '
    'numbers duplicate; good rows go through. Re-running changes nothing. Returns {run_id, status, '
    'total_rows, imported_rows, duplicate_rows, failed_rows, processed_now, error}. An unexpected error '
    'marks the run failed and leaves its rows pending. 22023 null id, P0002 unknown run.';

revoke execute on function public.process_simplicity_imports(uuid) from public, anon, authenticated, service_role;
grant execute on function public.process_simplicity_imports(uuid) to service_role, dragonfly_worker;

-- Date rule for judgment_date: YYYY-MM-DD or M/D/YYYY (US order), a real calendar date
-- between 1900 and 2100; anything else is null. String functions rather than regular
-- expressions and no exception handler: it runs once per staged row.
create or replace function intake.parse_simplicity_date(value text)
returns date
language plpgsql
immutable
parallel safe
as $$
declare
    v text := pg_catalog.btrim(value);
    shape text := pg_catalog.translate(v, '0123456789', '9999999999');
    y integer;
    m integer;
    d integer;
begin
    if shape = '9999-99-99' then
        y := pg_catalog.substr(v, 1, 4)::integer;
        m := pg_catalog.substr(v, 6, 2)::integer;
        d := pg_catalog.substr(v, 9, 2)::integer;
    elsif shape in ('9/9/9999', '99/9/9999', '9/99/9999', '99/99/9999') then
        m := pg_catalog.split_part(v, '/', 1)::integer;
        d := pg_catalog.split_part(v, '/', 2)::integer;
        y := pg_catalog.split_part(v, '/', 3)::integer;
    else
        return null;
    end if;
    if y < 1900 or y > 2100 or m < 1 or m > 12 or d < 1
       or d > pg_catalog.date_part('day', pg_catalog.make_date(y, m, 1) + interval '1 month' - interval '1 day') then
        return null;
    end if;
    return pg_catalog.make_date(y, m, d);
end;
$$;

comment on function intake.parse_simplicity_date(text) is
    'judgment_date of a Simplicity row: YYYY-MM-DD or M/D/YYYY, a real date in 1900-2100, else null.';

revoke execute on function intake.parse_simplicity_date(text) from public;
grant execute on function intake.parse_simplicity_date(text) to service_role, dragonfly_worker;

-- Time-ordered ids in the UUIDv7 layout: 48 bits of Unix milliseconds (prefix, 12 hex
-- digits), version 7, a 32-bit sequence number split around the variant bits, and 40 bits
-- (suffix, 10 hex digits) the caller draws at random once per batch. Ids that grow with the
-- import order keep primary-key and foreign-key index inserts on the right-most pages; the
-- per-batch random suffix keeps two batches started in the same millisecond apart.
create or replace function intake.time_ordered_uuid(prefix text, seq bigint, suffix text)
returns uuid
language sql
immutable
parallel safe
as $$
    select (
        $1 || '7' || pg_catalog.substr(pg_catalog.lpad(pg_catalog.to_hex($2 % 4294967296), 8, '0'), 1, 3)
        || '8' || pg_catalog.substr(pg_catalog.lpad(pg_catalog.to_hex($2 % 4294967296), 8, '0'), 4, 5)
        || $3
    )::uuid
$$;

comment on function intake.time_ordered_uuid(text, bigint, text) is
    'A UUIDv7-layout id from a 12-hex-digit millisecond prefix, a sequence number and a 10-hex-digit '
    'suffix. Used by the Simplicity import so new rows'' ids grow with the import order.';

revoke execute on function intake.time_ordered_uuid(text, bigint, text) from public;
grant execute on function intake.time_ordered_uuid(text, bigint, text) to service_role, dragonfly_worker;

-- The body of process_simplicity_imports(): the set-based statements. Callers hold the run's
-- row lock and the import advisory lock. Not callable over the API. work_mem is raised for
-- the sorts and hashes over the whole run.
create or replace function intake.materialize_simplicity_run(p_run_id uuid)
returns void
language plpgsql
volatile
security definer
set search_path = ''
set work_mem = '64MB'
as $$
declare
    -- Ids of the rows this run creates: the clock in milliseconds, then a sequence number,
    -- then 40 random bits drawn once per run and per kind of row (docs/import.md).
    v_id_prefix text := pg_catalog.lpad(
        pg_catalog.to_hex((pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000)::bigint), 12, '0');
    v_judgment_suffix text := pg_catalog.substr(pg_catalog.md5(pg_catalog.gen_random_uuid()::text), 1, 10);
    v_case_suffix text := pg_catalog.substr(pg_catalog.md5(pg_catalog.gen_random_uuid()::text), 1, 10);
    v_entity_suffix text := pg_catalog.substr(pg_catalog.md5(pg_catalog.gen_random_uuid()::text), 1, 10);
begin
    -- Left over only if an earlier call in this transaction failed half-way.
    if pg_catalog.to_regclass('pg_temp.simplicity_batch') is not null then
        drop table pg_temp.simplicity_batch;
    end if;
    if pg_catalog.to_regclass('pg_temp.simplicity_plaintiffs') is not null then
        drop table pg_temp.simplicity_plaintiffs;
    end if;

    -- 1. Parse and validate every pending row once. Values that repeat across an export
    --    (plaintiff name, email and phone; judgment dates) are normalized once per distinct
    --    value and joined back; the OFFSET 0 fences keep each rule from being re-evaluated
    --    where its result is used several times. Repeated case numbers are ranked, known ones
    --    found, and the new judgments and cases get time-ordered ids (UUIDv7 layout), so their
    --    index entries are appended instead of scattered.
    create temp table simplicity_batch on commit drop as
    with raw as (
        select s.id,
               s.line_number,
               nullif(pg_catalog.btrim(s.plaintiff_name), '') as p_name,
               nullif(pg_catalog.btrim(s.plaintiff_email), '') as p_email_raw,
               nullif(pg_catalog.btrim(s.plaintiff_phone), '') as p_phone_raw,
               nullif(pg_catalog.btrim(s.plaintiff_address), '') as p_address,
               nullif(pg_catalog.btrim(s.plaintiff_city), '') as p_city,
               pg_catalog.upper(nullif(pg_catalog.btrim(s.plaintiff_state), '')) as p_state,
               nullif(pg_catalog.btrim(s.plaintiff_zip), '') as p_zip,
               nullif(pg_catalog.btrim(s.debtor_name), '') as d_name,
               nullif(pg_catalog.btrim(s.debtor_type), '') as d_type_raw,
               nullif(pg_catalog.upper(
                   pg_catalog.regexp_replace(pg_catalog.btrim(s.case_number), '[[:space:]]+', ' ', 'g')
               ), '') as case_number,
               nullif(pg_catalog.btrim(s.court), '') as court,
               nullif(pg_catalog.btrim(s.county), '') as county,
               pg_catalog.upper(nullif(pg_catalog.btrim(s.state), '')) as state,
               nullif(pg_catalog.btrim(s.judgment_amount), '') as amount_raw,
               nullif(pg_catalog.btrim(s.judgment_date), '') as date_raw,
               nullif(pg_catalog.btrim(s.priority), '') as priority_raw
          from intake.simplicity_import_rows as s
         where s.run_id = p_run_id and s.status = 'pending'
    ),
    names as (
        select x.p_name, x.p_type, intake.normalize_entity_name(x.p_type, x.p_name) as p_norm
          from (select d.p_name, intake.guess_entity_type(d.p_name) as p_type
                  from (select distinct r.p_name from raw as r where r.p_name is not null) as d
                offset 0) as x
    ),
    emails as (
        select d.p_email_raw, intake.normalize_email(d.p_email_raw) as p_email
          from (select distinct r.p_email_raw from raw as r where r.p_email_raw is not null) as d
    ),
    phones as (
        select d.p_phone_raw, intake.normalize_phone(d.p_phone_raw) as p_phone
          from (select distinct r.p_phone_raw from raw as r where r.p_phone_raw is not null) as d
    ),
    dates as (
        select d.date_raw, intake.parse_simplicity_date(d.date_raw) as judgment_date
          from (select distinct r.date_raw from raw as r where r.date_raw is not null) as d
    ),
    parsed as (
        select r.*,
               n.p_type, n.p_norm, e.p_email, ph.p_phone, dt.judgment_date,
               t.d_type_given, t.d_type,
               intake.normalize_entity_name(t.d_type, r.d_name) as d_norm,
               case
                   when r.amount_raw ~ '^\$?[[:space:]]*([0-9]{1,3}(,[0-9]{3})+|[0-9]{1,12})(\.[0-9]{1,2})?$'
                       then pg_catalog.translate(r.amount_raw, '$, ', '')::numeric
               end as amount,
               coalesce(pg_catalog.lower(pg_catalog.replace(r.priority_raw, ' ', '_')), 'normal') as priority
          from raw as r
          left join names as n on n.p_name = r.p_name
          left join emails as e on e.p_email_raw = r.p_email_raw
          left join phones as ph on ph.p_phone_raw = r.p_phone_raw
          left join dates as dt on dt.date_raw = r.date_raw
          cross join lateral (
              select g.d_type_given,
                     coalesce(g.d_type_given, intake.guess_entity_type(r.d_name)) as d_type
                from (select case pg_catalog.lower(r.d_type_raw)
                                 when 'person' then 'person'
                                 when 'individual' then 'person'
                                 when 'organization' then 'organization'
                                 when 'organisation' then 'organization'
                                 when 'business' then 'organization'
                                 when 'company' then 'organization'
                                 when 'corporation' then 'organization'
                                 when 'org' then 'organization'
                             end as d_type_given) as g
          ) as t
        offset 0
    ),
    checked as (
        select n.*,
               nullif(pg_catalog.concat_ws('; ',
                   case when n.p_name is null then 'plaintiff_name is required'
                        when pg_catalog.length(n.p_name) > 500 then 'plaintiff_name is longer than 500 characters'
                        when n.p_norm is null
                            then pg_catalog.format('plaintiff_name %s has no letters or digits', pg_catalog.quote_literal(n.p_name))
                   end,
                   case when n.p_email_raw is not null and n.p_email is null
                        then pg_catalog.format('plaintiff_email %s is not an email address', pg_catalog.quote_literal(n.p_email_raw))
                   end,
                   case when n.p_phone_raw is not null and n.p_phone is null
                        then pg_catalog.format('plaintiff_phone %s is not a phone number', pg_catalog.quote_literal(n.p_phone_raw))
                   end,
                   case when n.p_state is not null and n.p_state !~ '^[A-Z]{2}$'
                        then pg_catalog.format('plaintiff_state %s is not a two-letter state code', pg_catalog.quote_literal(n.p_state))
                   end,
                   case when n.d_name is null then 'debtor_name is required'
                        when pg_catalog.length(n.d_name) > 500 then 'debtor_name is longer than 500 characters'
                        when n.d_norm is null
                            then pg_catalog.format('debtor_name %s has no letters or digits', pg_catalog.quote_literal(n.d_name))
                   end,
                   case when n.d_type_raw is not null and n.d_type_given is null
                        then pg_catalog.format('debtor_type %s is not person or organization', pg_catalog.quote_literal(n.d_type_raw))
                   end,
                   case when n.case_number is null then 'case_number is required'
                        when pg_catalog.length(n.case_number) > 100 then 'case_number is longer than 100 characters'
                   end,
                   case when n.state is not null and n.state !~ '^[A-Z]{2}$'
                        then pg_catalog.format('state %s is not a two-letter state code', pg_catalog.quote_literal(n.state))
                   end,
                   case when n.amount_raw is null then 'judgment_amount is required'
                        when n.amount is null or n.amount <= 0
                            then pg_catalog.format('judgment_amount %s is not a positive amount', pg_catalog.quote_literal(n.amount_raw))
                   end,
                   case when n.date_raw is not null and n.judgment_date is null
                            then pg_catalog.format('judgment_date %s is not a date (YYYY-MM-DD or MM/DD/YYYY)', pg_catalog.quote_literal(n.date_raw))
                        when n.judgment_date > current_date
                            then pg_catalog.format('judgment_date %s is in the future', n.judgment_date)
                   end,
                   case when n.priority not in ('urgent', 'high', 'normal', 'low', 'on_hold')
                        then pg_catalog.format('priority %s is not urgent, high, normal, low or on_hold', pg_catalog.quote_literal(n.priority_raw))
                   end
               ), '') as error
          from parsed as n
        offset 0
    ),
    firsts as (
        select c.case_number, pg_catalog.min(c.line_number) as first_line
          from checked as c
         where c.error is null
         group by c.case_number
    ),
    ranked as (
        select c.*,
               c.p_type || ':' || c.p_norm as p_key,
               c.d_type || ':' || c.d_norm as d_key,
               f.first_line
          from checked as c
          left join firsts as f on c.error is null and f.case_number = c.case_number
        offset 0
    ),
    resolved as (
        select r.*,
               case
                   when r.error is not null then 'failed'
                   when existing.id is not null or r.first_line <> r.line_number then 'duplicate'
                   else 'imported'
               end as outcome,
               existing.id as existing_case_id,
               existing.judgment_id as existing_judgment_id,
               existing_judgment.plaintiff_id as existing_plaintiff_id
          from ranked as r
          left join judgments.cases as existing
            on r.error is null and existing.case_number = r.case_number
          left join public.judgments as existing_judgment
            on existing_judgment.id = existing.judgment_id
        offset 0
    )
    -- Only what the later steps use, fixed-width columns first.
    select v.id,
           v.line_number,
           v.first_line,
           case when v.outcome = 'imported'
                then intake.time_ordered_uuid(v_id_prefix, v.line_number, v_judgment_suffix) end as judgment_id,
           case when v.outcome = 'imported'
                then intake.time_ordered_uuid(v_id_prefix, v.line_number, v_case_suffix) end as case_id,
           v.existing_case_id,
           v.existing_judgment_id,
           v.existing_plaintiff_id,
           v.judgment_date,
           v.amount,
           v.outcome,
           v.p_key,
           v.d_key,
           v.error,
           v.p_type,
           v.p_norm,
           v.d_type,
           v.d_norm,
           v.case_number,
           v.p_name,
           v.p_email,
           v.p_phone,
           v.p_address,
           v.p_city,
           v.p_state,
           v.p_zip,
           v.d_name,
           v.court,
           v.county,
           v.state,
           v.priority
      from resolved as v;

    -- Statistics for the join columns only (all columns would cost more than the joins).
    analyze pg_temp.simplicity_batch (outcome, line_number, p_key, d_key);

    -- 2. Entities: the plaintiffs and debtors of the new rows, one per normalized identity,
    --    each from the first line naming it (a plaintiff's line before a debtor's, so the
    --    plaintiff's entity gets that line's address). The first line is picked with a hash
    --    aggregate rather than a sort over the names; ids follow the picks, so debtors' ids
    --    follow the file like the judgments that reference them.
    insert into public.entities as e
        (id, entity_type, display_name, normalized_name, address_line1, city, state, postal_code)
    select intake.time_ordered_uuid(v_id_prefix, pg_catalog.row_number() over (order by f.pick), v_entity_suffix),
           case when f.pick < 4294967296 then b.p_type else b.d_type end,
           case when f.pick < 4294967296 then b.p_name else b.d_name end,
           case when f.pick < 4294967296 then b.p_norm else b.d_norm end,
           case when f.pick < 4294967296 then b.p_address end,
           case when f.pick < 4294967296 then b.p_city end,
           case when f.pick < 4294967296 then b.p_state end,
           case when f.pick < 4294967296 then b.p_zip end
      from (
          -- pick = line number, plus 2^32 on the debtor side: the smallest pick per identity
          -- is its first plaintiff line, else its first debtor line.
          select k.party_key, pg_catalog.min(k.pick) as pick
            from (
                select b.p_key as party_key, b.line_number::bigint as pick
                  from pg_temp.simplicity_batch as b
                 where b.outcome = 'imported'
                union all
                select b.d_key, 4294967296 + b.line_number
                  from pg_temp.simplicity_batch as b
                 where b.outcome = 'imported'
            ) as k
           group by k.party_key
      ) as f
      join pg_temp.simplicity_batch as b on b.line_number = (f.pick % 4294967296)::integer
    on conflict (normalized_key) do nothing;

    -- 3. Plaintiffs: found by entity, else created from the first imported line naming them.
    insert into public.plaintiffs as p
        (entity_id, name, email, phone, address, city, state, postal_code, source)
    select e.id, b.p_name, b.p_email, b.p_phone, b.p_address, b.p_city, b.p_state, b.p_zip, 'simplicity'
      from (
          select b.p_key, pg_catalog.min(b.line_number) as first_line
            from pg_temp.simplicity_batch as b
           where b.outcome = 'imported'
           group by b.p_key
      ) as f
      join pg_temp.simplicity_batch as b on b.line_number = f.first_line
      join public.entities as e on e.normalized_key = f.p_key
     order by f.first_line
    on conflict (entity_id) do nothing;

    -- The plaintiff of every creditor the run imports for (a few hundred rows).
    create temp table simplicity_plaintiffs on commit drop as
    select e.normalized_key as p_key, p.id as plaintiff_id
      from public.entities as e
      join public.plaintiffs as p on p.entity_id = e.id
     where e.normalized_key in (
         select b.p_key from pg_temp.simplicity_batch as b where b.outcome = 'imported'
     );
    analyze pg_temp.simplicity_plaintiffs;

    -- 4. Judgments and their court cases, with the ids generated in step 1.
    insert into public.judgments
        (id, plaintiff_id, debtor_entity_id, debtor_name, judgment_amount, balance_due, judgment_date,
         county, state, court, priority_level)
    select b.judgment_id, pl.plaintiff_id, e.id, b.d_name, b.amount, b.amount, b.judgment_date,
           b.county, b.state, b.court, b.priority
      from pg_temp.simplicity_batch as b
      join pg_temp.simplicity_plaintiffs as pl on pl.p_key = b.p_key
      join public.entities as e on e.normalized_key = b.d_key
     where b.outcome = 'imported'
     order by b.judgment_id;

    insert into judgments.cases (id, judgment_id, case_number, court, county, state)
    select b.case_id, b.judgment_id, b.case_number, b.court, b.county, b.state
      from pg_temp.simplicity_batch as b
     where b.outcome = 'imported'
     order by b.case_id;

    -- 5. Staging rows: outcome, reason and what each became. A repeated case number links to
    --    the known case, or to what the run's first line with that number became.
    update intake.simplicity_import_rows as s
       set status = o.outcome,
           error = o.error,
           plaintiff_id = o.plaintiff_id,
           judgment_id = o.judgment_id,
           case_id = o.case_id,
           processed_at = pg_catalog.now()
      from (
          select b.id, b.outcome, b.error,
                 case when b.existing_case_id is not null then b.existing_plaintiff_id
                      else pl.plaintiff_id end as plaintiff_id,
                 coalesce(b.existing_judgment_id, b.judgment_id, f.judgment_id) as judgment_id,
                 coalesce(b.existing_case_id, b.case_id, f.case_id) as case_id
            from pg_temp.simplicity_batch as b
            left join pg_temp.simplicity_batch as f
              on b.outcome = 'duplicate' and b.existing_case_id is null and f.line_number = b.first_line
            left join pg_temp.simplicity_plaintiffs as pl
              on b.outcome <> 'failed' and b.existing_case_id is null
             and pl.p_key = coalesce(f.p_key, b.p_key)
      ) as o
     where s.id = o.id;

    -- 6. The run's status and counters.
    update intake.simplicity_import_runs as r
       set status = 'completed',
           total_rows = k.total,
           imported_rows = k.imported,
           duplicate_rows = k.duplicate,
           failed_rows = k.failed,
           error = null,
           started_at = coalesce(r.started_at, pg_catalog.now()),
           finished_at = pg_catalog.now()
      from (
          select pg_catalog.count(*)::integer as total,
                 (pg_catalog.count(*) filter (where s.status = 'imported'))::integer as imported,
                 (pg_catalog.count(*) filter (where s.status = 'duplicate'))::integer as duplicate,
                 (pg_catalog.count(*) filter (where s.status = 'failed'))::integer as failed
            from intake.simplicity_import_rows as s
           where s.run_id = p_run_id
      ) as k
     where r.id = p_run_id;

    drop table pg_temp.simplicity_batch;
    drop table pg_temp.simplicity_plaintiffs;
end;
$$;

comment on function intake.materialize_simplicity_run(uuid) is
    'The set-based body of process_simplicity_imports(): validate, dedupe, create entities, plaintiffs, '
    'judgments and cases, mark staging rows and count. Internal; call process_simplicity_imports().';

revoke execute on function intake.materialize_simplicity_run(uuid) from public;
