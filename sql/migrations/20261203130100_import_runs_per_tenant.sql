-- Imports belong to one tenant.
--
-- Why: a Simplicity run landed its plaintiffs, judgments and court cases in the default
-- tenant (the plaintiffs' column default) and matched case numbers and plaintiffs across all
-- tenants. A run now names its tenant (intake.simplicity_import_runs.tenant_id; the default
-- tenant when none is named, which is where every existing run's rows are), and processing
-- it creates every row in that tenant and matches known case numbers and plaintiffs only
-- inside it: the same export imported into two tenants is two independent books, and a
-- re-import into one finds that tenant's rows only. Enforcement cases opened later on its
-- judgments take the tenant from the judgment (20261203090000's triggers).
--
-- process_simplicity_imports (last in 20261127003500) also refuses a run of a tenant the
-- caller does not write in, exactly as a run that does not exist (the fleet and service
-- tooling write in every tenant; dragonfly.acting_tenant narrows them). Its result gains
-- tenant_id. intake.materialize_simplicity_run (last in 20261202160400) is unchanged but for
-- the tenant: where it looks up court cases and plaintiffs, and what it writes.

alter table intake.simplicity_import_runs
    add column tenant_id uuid not null default tenancy.default_tenant_id()
        references public.tenants (id) on delete restrict;

comment on column intake.simplicity_import_runs.tenant_id is
    'The tenant the run imports into: its plaintiffs, judgments and court cases are created there, and '
    'known case numbers and plaintiffs are matched there only. The default tenant when not named.';

create index simplicity_import_runs_tenant_id_idx on intake.simplicity_import_runs (tenant_id);

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
    v_pending boolean;
    v_processed bigint := 0;
    v_error text;
    v_sqlstate text;
    v_result jsonb;
begin
    if v_run_id is null then
        raise exception using errcode = '22023', message = 'process_simplicity_imports: import_run_id is required';
    end if;

    -- A run of a tenant the caller does not write in is a run that does not exist. (The
    -- tenant test comes before the row lock: another tenant's run is never waited for.)
    select r.status into v_status
      from intake.simplicity_import_runs as r
     where r.id = v_run_id
       and r.tenant_id = any (tenancy.caller_tenants('write'))
       for update;
    if not found then
        raise exception using
            errcode = 'P0002',
            message = pg_catalog.format('process_simplicity_imports: import run %s does not exist', v_run_id);
    end if;

    -- One run at a time: entities are shared by every tenant, and plaintiffs and case numbers
    -- by the runs of one tenant.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('dragonfly.process_simplicity_imports'));

    v_pending := exists (
        select from intake.simplicity_import_rows as s
         where s.run_id = v_run_id and s.status = 'pending'
    );

    if v_pending or v_status <> 'completed' then
        begin
            v_processed := intake.materialize_simplicity_run(v_run_id);
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
               'tenant_id', r.tenant_id,
               'status', r.status,
               'total_rows', r.total_rows,
               'imported_rows', r.imported_rows,
               'duplicate_rows', r.duplicate_rows,
               'failed_rows', r.failed_rows,
               'processed_now', case when r.status = 'completed' then v_processed else 0 end,
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
    'judgments.cases of the run''s tenant (set-based, one transaction). Bad rows are marked failed with the '
    'reason, case numbers known in the tenant duplicate; good rows go through. Re-running changes nothing. '
    'Returns {run_id, tenant_id, status, total_rows, imported_rows, duplicate_rows, failed_rows, '
    'processed_now, error}. An unexpected error marks the run failed and leaves its rows pending. 22023 null '
    'id, P0002 unknown run (or a run of a tenant the caller does not write in).';

revoke execute on function public.process_simplicity_imports(uuid) from public, anon, authenticated, service_role;
grant execute on function public.process_simplicity_imports(uuid) to service_role, dragonfly_worker;

create or replace function intake.materialize_simplicity_run(p_run_id uuid)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
set work_mem = '64MB'
set jit = off
as $$
declare
    -- Ids of the rows this run creates: the clock in milliseconds, then a sequence number
    -- (the line number), then 40 bits that differ row by row: md5(secret || line), the
    -- secret drawn at random once per run (judgments and cases share one digest per line,
    -- plaintiff and debtor entities have their own secrets) and never stored
    -- (docs/import.md). The same line gives the same id within the run (the statements below
    -- compute an id more than once); no id tells anything about another.
    v_id_prefix text := pg_catalog.lpad(
        pg_catalog.to_hex((pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000)::bigint), 12, '0');
    v_line_secret text := pg_catalog.gen_random_uuid()::text || ':';
    v_plaintiff_entity_secret text := pg_catalog.gen_random_uuid()::text || ':';
    v_debtor_entity_secret text := pg_catalog.gen_random_uuid()::text || ':';
    v_rows bigint;
    -- The run's tenant: every row it creates lands there, and only that tenant's court cases
    -- and plaintiffs are matched.
    v_tenant uuid := (select r.tenant_id from intake.simplicity_import_runs as r where r.id = p_run_id);
begin
    -- Left over only if an earlier call in this transaction failed half-way.
    if pg_catalog.to_regclass('pg_temp.simplicity_raw') is not null then
        drop table pg_temp.simplicity_raw;
    end if;
    if pg_catalog.to_regclass('pg_temp.simplicity_batch') is not null then
        drop table pg_temp.simplicity_batch;
    end if;
    if pg_catalog.to_regclass('pg_temp.simplicity_plaintiffs') is not null then
        drop table pg_temp.simplicity_plaintiffs;
    end if;

    -- 1. Parse and validate every pending row once. First the run's pending rows are read
    --    into a temporary table, with the values that repeat across an export (the
    --    plaintiff's name, email, phone and state; the debtor type, court, county, state and
    --    priority) as one row value each. A table rather than a CTE, because the planner then
    --    knows how many rows there are even when the staging table has no statistics yet
    --    (a freshly loaded export): misjudged as one row, the joins below become nested
    --    loops that are quadratic in the run's size.
    create temp table simplicity_raw on commit drop as
    select s.id,
           s.line_number,
           row(s.plaintiff_name, s.plaintiff_email, s.plaintiff_phone, s.plaintiff_state)
               ::intake.simplicity_plaintiff_columns as p_values,
           row(s.debtor_type, s.court, s.county, s.state, s.priority)
               ::intake.simplicity_judgment_columns as a_values,
           coalesce(s.judgment_date, '') as k_date,
           nullif(pg_catalog.btrim(s.debtor_name), '') as d_name,
           nullif(pg_catalog.upper(
               pg_catalog.regexp_replace(pg_catalog.btrim(s.case_number), '[[:space:]]+', ' ', 'g')
           ), '') as case_number,
           nullif(pg_catalog.btrim(s.judgment_amount), '') as amount_raw
      from intake.simplicity_import_rows as s
     where s.run_id = p_run_id and s.status = 'pending';
    get diagnostics v_rows = row_count;

    --    Then the repeating values are validated once per distinct value (or combination)
    --    and joined back; only the debtor's name, the case number and the amount are parsed
    --    per row. (A null and an empty raw value fall into different groups and get the same
    --    result: both are blank to every rule.) Repeated case numbers are ranked among the
    --    good rows, known ones found. Each row gets the ids it creates or links to: new
    --    judgments and cases get time-ordered ids (UUIDv7 layout) computed from the line
    --    number, so a repeat of a case number first seen in this run links to its first
    --    line's ids without a lookup. Only what the later steps need is kept.
    create temp table simplicity_batch on commit drop as
    -- Plaintiff columns: one row per distinct (name, email, phone, state).
    with plaintiff_values as materialized (
        select d.p_values,
               nullif(pg_catalog.btrim((d.p_values).name), '') as p_name,
               nullif(pg_catalog.btrim((d.p_values).email), '') as p_email_raw,
               nullif(pg_catalog.btrim((d.p_values).phone), '') as p_phone_raw,
               pg_catalog.upper(nullif(pg_catalog.btrim((d.p_values).state), '')) as p_state
          from (select distinct r.p_values from pg_temp.simplicity_raw as r) as d
    ),
    names as materialized (
        select x.p_name, x.p_type, intake.normalize_entity_name(x.p_type, x.p_name) as p_norm
          from (select d.p_name, intake.guess_entity_type(d.p_name) as p_type
                  from (select distinct v.p_name from plaintiff_values as v where v.p_name is not null) as d
                offset 0) as x
    ),
    plaintiffs as materialized (
        select v.p_values,
               n.p_type || ':' || n.p_norm as p_key,
               nullif(pg_catalog.concat_ws('; ',
                   case when v.p_name is null then 'plaintiff_name is required'
                        when pg_catalog.length(v.p_name) > 500 then 'plaintiff_name is longer than 500 characters'
                        when n.p_norm is null
                            then pg_catalog.format('plaintiff_name %s has no letters or digits', pg_catalog.quote_literal(v.p_name))
                   end,
                   case when v.p_email_raw is not null and intake.normalize_email(v.p_email_raw) is null
                        then pg_catalog.format('plaintiff_email %s is not an email address', pg_catalog.quote_literal(v.p_email_raw))
                   end,
                   case when v.p_phone_raw is not null and intake.normalize_phone(v.p_phone_raw) is null
                        then pg_catalog.format('plaintiff_phone %s is not a phone number', pg_catalog.quote_literal(v.p_phone_raw))
                   end,
                   case when v.p_state is not null and v.p_state !~ '^[A-Z]{2}$'
                        then pg_catalog.format('plaintiff_state %s is not a two-letter state code', pg_catalog.quote_literal(v.p_state))
                   end
               ), '') as p_errors
          from plaintiff_values as v
          left join names as n on n.p_name = v.p_name
    ),
    -- Judgment columns: one row per distinct (debtor type, court, county, state, priority).
    attributes as materialized (
        select a.a_values,
               a.d_type_given, a.court, a.county, a.state, a.priority,
               case when a.d_type_raw is not null and a.d_type_given is null
                    then pg_catalog.format('debtor_type %s is not person or organization', pg_catalog.quote_literal(a.d_type_raw))
               end as d_type_error,
               case when a.state is not null and a.state !~ '^[A-Z]{2}$'
                    then pg_catalog.format('state %s is not a two-letter state code', pg_catalog.quote_literal(a.state))
               end as state_error,
               case when a.priority not in ('urgent', 'high', 'normal', 'low', 'on_hold')
                    then pg_catalog.format('priority %s is not urgent, high, normal, low or on_hold', pg_catalog.quote_literal(a.priority_raw))
               end as priority_error
          from (
              select d.*,
                     case pg_catalog.lower(d.d_type_raw)
                         when 'person' then 'person'
                         when 'individual' then 'person'
                         when 'organization' then 'organization'
                         when 'organisation' then 'organization'
                         when 'business' then 'organization'
                         when 'company' then 'organization'
                         when 'corporation' then 'organization'
                         when 'org' then 'organization'
                     end as d_type_given,
                     coalesce(pg_catalog.lower(pg_catalog.replace(d.priority_raw, ' ', '_')), 'normal') as priority
                from (
                    select k.a_values,
                           nullif(pg_catalog.btrim((k.a_values).debtor_type), '') as d_type_raw,
                           nullif(pg_catalog.btrim((k.a_values).court), '') as court,
                           nullif(pg_catalog.btrim((k.a_values).county), '') as county,
                           pg_catalog.upper(nullif(pg_catalog.btrim((k.a_values).state), '')) as state,
                           nullif(pg_catalog.btrim((k.a_values).priority), '') as priority_raw
                      from (select distinct r.a_values from pg_temp.simplicity_raw as r) as k
                ) as d
          ) as a
    ),
    dates as materialized (
        select d.k_date, d.judgment_date,
               case when d.date_raw is not null and d.judgment_date is null
                        then pg_catalog.format('judgment_date %s is not a date (YYYY-MM-DD or MM/DD/YYYY)', pg_catalog.quote_literal(d.date_raw))
                    when d.judgment_date > current_date
                        then pg_catalog.format('judgment_date %s is in the future', d.judgment_date)
               end as date_error
          from (
              select k.k_date, k.date_raw, intake.parse_simplicity_date(k.date_raw) as judgment_date
                from (select r.k_date, nullif(pg_catalog.btrim(r.k_date), '') as date_raw
                        from (select distinct r.k_date from pg_temp.simplicity_raw as r) as r) as k
          ) as d
    ),
    parsed as (
        select r.id, r.line_number, p.p_key, p.p_errors, a.d_type_error, a.state_error, a.priority_error,
               dt.date_error, dt.judgment_date, a.court, a.county, a.state, a.priority,
               r.d_name, t.d_type, t.d_norm, r.case_number, r.amount_raw, t.amount
          from pg_temp.simplicity_raw as r
          join plaintiffs as p on p.p_values = r.p_values
          join attributes as a on a.a_values = r.a_values
          join dates as dt on dt.k_date = r.k_date
          cross join lateral (
              select g.d_type, intake.normalize_entity_name(g.d_type, r.d_name) as d_norm, g.amount
                from (select coalesce(a.d_type_given, intake.guess_entity_type(r.d_name)) as d_type,
                             -- The amount rule is the regular expression; plain digits with
                             -- an optional point and decimals (nearly every row) are decided
                             -- without it, with the same result.
                             case pg_catalog.translate(r.amount_raw, '0123456789', '')
                                 when '' then
                                     case when pg_catalog.length(r.amount_raw) <= 12 then r.amount_raw::numeric end
                                 when '.' then
                                     case when pg_catalog.strpos(r.amount_raw, '.') between 2 and 13
                                           and pg_catalog.length(r.amount_raw) - pg_catalog.strpos(r.amount_raw, '.') between 1 and 2
                                          then r.amount_raw::numeric end
                                 else
                                     case when r.amount_raw ~ '^\$?[[:space:]]*([0-9]{1,3}(,[0-9]{3})+|[0-9]{1,12})(\.[0-9]{1,2})?$'
                                          then pg_catalog.translate(r.amount_raw, '$, ', '')::numeric end
                             end as amount) as g
          ) as t
        offset 0
    ),
    checked as materialized (
        select n.id, n.line_number, n.p_key, n.judgment_date, n.court, n.county, n.state, n.priority,
               n.d_name, n.d_type, n.d_norm, n.case_number, n.amount,
               nullif(pg_catalog.concat_ws('; ',
                   n.p_errors,
                   case when n.d_name is null then 'debtor_name is required'
                        when pg_catalog.length(n.d_name) > 500 then 'debtor_name is longer than 500 characters'
                        when n.d_norm is null
                            then pg_catalog.format('debtor_name %s has no letters or digits', pg_catalog.quote_literal(n.d_name))
                   end,
                   n.d_type_error,
                   case when n.case_number is null then 'case_number is required'
                        when pg_catalog.length(n.case_number) > 100 then 'case_number is longer than 100 characters'
                   end,
                   n.state_error,
                   case when n.amount_raw is null then 'judgment_amount is required'
                        when n.amount is null or n.amount <= 0
                            then pg_catalog.format('judgment_amount %s is not a positive amount', pg_catalog.quote_literal(n.amount_raw))
                   end,
                   n.date_error,
                   n.priority_error
               ), '') as error
          from parsed as n
    ),
    -- Case numbers that more than one good row of the run carries, with their first line
    -- and that line's plaintiff.
    repeated as (
        select g.case_number, g.first_line, c.p_key as first_p_key
          from (
              select c.case_number, pg_catalog.min(c.line_number) as first_line
                from checked as c
               where c.error is null
               group by c.case_number
              having pg_catalog.count(*) > 1
          ) as g
          join checked as c on c.line_number = g.first_line
    ),
    resolved as materialized (
        select c.*,
               c.d_type || ':' || c.d_norm as d_key,
               case
                   when c.error is not null then 'failed'
                   when existing.id is not null or f.first_line <> c.line_number then 'duplicate'
                   else 'imported'
               end as outcome,
               existing.id as existing_case_id,
               existing.judgment_id as existing_judgment_id,
               existing_judgment.plaintiff_id as existing_plaintiff_id,
               f.first_line,
               f.first_p_key
          from checked as c
          left join repeated as f
            on c.error is null and f.case_number = c.case_number
          left join judgments.cases as existing
            on c.error is null and existing.tenant_id = v_tenant and existing.case_number = c.case_number
          left join public.judgments as existing_judgment
            on existing_judgment.id = existing.judgment_id
    ),
    -- The first imported line naming each debtor identity (where its entity comes from,
    -- unless the identity is also a plaintiff of the run).
    debtor_picks as (
        select pg_catalog.min(v.line_number) as line_number
          from resolved as v
         where v.outcome = 'imported'
         group by v.d_key
    )
    -- judgment_id and case_id: what the row becomes (imported) or links to (duplicate);
    -- link_p_key: the plaintiff it links to, unless it links to a known case.
    select v.id,
           v.line_number,
           case when v.outcome <> 'failed' then coalesce(v.existing_judgment_id,
                intake.time_ordered_uuid(v_id_prefix, coalesce(v.first_line, v.line_number),
                    pg_catalog.substr(r.bits, 1, 10))) end as judgment_id,
           case when v.outcome <> 'failed' then coalesce(v.existing_case_id,
                intake.time_ordered_uuid(v_id_prefix, coalesce(v.first_line, v.line_number),
                    pg_catalog.substr(r.bits, 11, 10))) end as case_id,
           v.existing_plaintiff_id,
           v.judgment_date,
           v.amount,
           v.outcome = 'imported' as is_new,
           dp.line_number is not null as is_debtor_pick,
           v.outcome,
           v.error,
           v.p_key,
           case when v.outcome <> 'failed' and v.existing_case_id is null
                then coalesce(v.first_p_key, v.p_key) end as link_p_key,
           v.d_type,
           v.d_norm,
           v.d_key,
           v.d_name,
           v.case_number,
           v.court,
           v.county,
           v.state,
           v.priority
      from resolved as v
     cross join lateral (
            -- One digest per line: 40 bits for its judgment's id, the next 40 for its case's.
            select pg_catalog.md5(v_line_secret || coalesce(v.first_line, v.line_number)) as bits
           ) as r
      left join debtor_picks as dp on dp.line_number = v.line_number;

    -- 2. The run's plaintiffs: one per plaintiff identity, from the first imported line
    --    naming it (looked up by (run_id, line_number)); their columns are normalized again
    --    from that staging row with the same rules as step 1. plaintiff_id is filled in
    --    step 4.
    create temp table simplicity_plaintiffs on commit drop as
    select f.p_key,
           f.first_line,
           v.p_type,
           v.p_name,
           intake.normalize_entity_name(v.p_type, v.p_name) as p_norm,
           intake.normalize_email(nullif(pg_catalog.btrim(v.plaintiff_email), '')) as p_email,
           intake.normalize_phone(nullif(pg_catalog.btrim(v.plaintiff_phone), '')) as p_phone,
           nullif(pg_catalog.btrim(v.plaintiff_address), '') as p_address,
           nullif(pg_catalog.btrim(v.plaintiff_city), '') as p_city,
           pg_catalog.upper(nullif(pg_catalog.btrim(v.plaintiff_state), '')) as p_state,
           nullif(pg_catalog.btrim(v.plaintiff_zip), '') as p_zip,
           null::uuid as plaintiff_id
      from (
          select b.p_key, pg_catalog.min(b.line_number) as first_line
            from pg_temp.simplicity_batch as b
           where b.is_new
           group by b.p_key
      ) as f
      join lateral (
          select s.*, intake.guess_entity_type(s.p_name) as p_type
            from (select s.*, nullif(pg_catalog.btrim(s.plaintiff_name), '') as p_name
                    from intake.simplicity_import_rows as s
                   where s.run_id = p_run_id and s.line_number = f.first_line) as s
      ) as v on true;

    -- 3. Entities: the plaintiffs and debtors of the new rows, one per normalized identity,
    --    each from the first imported line naming it, a plaintiff's line before a debtor's (so
    --    the plaintiff's entity gets that line's address): the run's plaintiffs (step 2), then
    --    the debtor picks of step 1 that are not also plaintiffs. Ids follow the file (pick =
    --    the line number, plus 2^32 on the debtor side), like the judgments that reference
    --    them. Identities already known are left out up front, so the insert needs no
    --    ON CONFLICT (a speculative insertion per row costs about half again as much); if
    --    another writer creates one of them meanwhile, the insert raises unique_violation and
    --    is redone with ON CONFLICT DO NOTHING, which keeps that writer's row.
    begin
        insert into public.entities
            (id, entity_type, display_name, normalized_name, address_line1, city, state, postal_code)
        select x.id, x.entity_type, x.display_name, x.normalized_name, x.address_line1, x.city, x.state, x.postal_code
          from (
              select p.first_line::bigint as pick,
                     intake.time_ordered_uuid(v_id_prefix, p.first_line,
                         pg_catalog.substr(pg_catalog.md5(v_plaintiff_entity_secret || p.first_line), 1, 10)) as id,
                     p.p_type as entity_type, p.p_name as display_name, p.p_norm as normalized_name,
                     p.p_address as address_line1, p.p_city as city, p.p_state as state, p.p_zip as postal_code
                from pg_temp.simplicity_plaintiffs as p
               where not exists (select from public.entities as k where k.normalized_key = p.p_key)
              union all
              select 4294967296 + b.line_number,
                     intake.time_ordered_uuid(v_id_prefix, b.line_number,
                         pg_catalog.substr(pg_catalog.md5(v_debtor_entity_secret || b.line_number), 1, 10)),
                     b.d_type, b.d_name, b.d_norm, null, null, null, null
                from pg_temp.simplicity_batch as b
               where b.is_debtor_pick
                 and not exists (select from pg_temp.simplicity_plaintiffs as p where p.p_key = b.d_key)
                 and not exists (select from public.entities as k where k.normalized_key = b.d_key)
          ) as x
         order by x.pick;
    exception when unique_violation then
        insert into public.entities
            (id, entity_type, display_name, normalized_name, address_line1, city, state, postal_code)
        select x.id, x.entity_type, x.display_name, x.normalized_name, x.address_line1, x.city, x.state, x.postal_code
          from (
              select p.first_line::bigint as pick,
                     intake.time_ordered_uuid(v_id_prefix, p.first_line,
                         pg_catalog.substr(pg_catalog.md5(v_plaintiff_entity_secret || p.first_line), 1, 10)) as id,
                     p.p_type as entity_type, p.p_name as display_name, p.p_norm as normalized_name,
                     p.p_address as address_line1, p.p_city as city, p.p_state as state, p.p_zip as postal_code
                from pg_temp.simplicity_plaintiffs as p
              union all
              select 4294967296 + b.line_number,
                     intake.time_ordered_uuid(v_id_prefix, b.line_number,
                         pg_catalog.substr(pg_catalog.md5(v_debtor_entity_secret || b.line_number), 1, 10)),
                     b.d_type, b.d_name, b.d_norm, null, null, null, null
                from pg_temp.simplicity_batch as b
               where b.is_debtor_pick
                 and not exists (select from pg_temp.simplicity_plaintiffs as p where p.p_key = b.d_key)
          ) as x
         order by x.pick
        on conflict (normalized_key) do nothing;
    end;

    -- 4. Plaintiffs: found by entity within the run's tenant, else created there from the
    --    first imported line naming them (another tenant's plaintiff of the same identity is
    --    never linked: each tenant has its own).
    insert into public.plaintiffs as p
        (tenant_id, entity_id, name, email, phone, address, city, state, postal_code, source)
    select v_tenant, e.id, f.p_name, f.p_email, f.p_phone, f.p_address, f.p_city, f.p_state, f.p_zip, 'simplicity'
      from pg_temp.simplicity_plaintiffs as f
      join public.entities as e on e.normalized_key = f.p_key
     order by f.first_line
    on conflict (tenant_id, entity_id) do nothing;

    update pg_temp.simplicity_plaintiffs as f
       set plaintiff_id = p.id
      from public.entities as e
      join public.plaintiffs as p on p.tenant_id = v_tenant and p.entity_id = e.id
     where e.normalized_key = f.p_key;

    -- 5. Judgments and their court cases, with the ids generated in step 1, in the run's
    --    tenant (the triggers check it is their plaintiff's and judgment's).
    insert into public.judgments
        (id, tenant_id, plaintiff_id, debtor_entity_id, debtor_name, judgment_amount, balance_due, judgment_date,
         county, state, court, priority_level)
    select b.judgment_id, v_tenant, pl.plaintiff_id, e.id, b.d_name, b.amount, b.amount, b.judgment_date,
           b.county, b.state, b.court, b.priority
      from pg_temp.simplicity_batch as b
      join pg_temp.simplicity_plaintiffs as pl on pl.p_key = b.p_key
      join public.entities as e on e.normalized_key = b.d_key
     where b.is_new
     order by b.judgment_id;

    insert into judgments.cases (id, tenant_id, judgment_id, case_number, court, county, state)
    select b.case_id, v_tenant, b.judgment_id, b.case_number, b.court, b.county, b.state
      from pg_temp.simplicity_batch as b
     where b.is_new
     order by b.case_id;

    -- 6. Staging rows: outcome, reason and what each became or links to (a record, not
    --    foreign keys). No index covers the columns written here, and the table's fillfactor
    --    leaves room on each page, so the rows are updated in place (HOT): no index entries,
    --    no referential checks.
    update intake.simplicity_import_rows as s
       set status = b.outcome,
           error = b.error,
           plaintiff_id = case when b.link_p_key is null then b.existing_plaintiff_id else pl.plaintiff_id end,
           judgment_id = b.judgment_id,
           case_id = b.case_id,
           processed_at = pg_catalog.now()
      from pg_temp.simplicity_batch as b
      left join pg_temp.simplicity_plaintiffs as pl on pl.p_key = b.link_p_key
     where s.id = b.id;

    -- 7. The run's status and counters.
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

    drop table pg_temp.simplicity_raw;
    drop table pg_temp.simplicity_batch;
    drop table pg_temp.simplicity_plaintiffs;
    return v_rows;
end;
$$;

comment on function intake.materialize_simplicity_run(uuid) is
    'The set-based body of process_simplicity_imports(): validate, dedupe against the run''s tenant, create '
    'entities (shared) and the tenant''s plaintiffs, judgments and cases, mark staging rows and count; returns '
    'the number of rows processed. Internal; call process_simplicity_imports().';

revoke execute on function intake.materialize_simplicity_run(uuid) from public;
