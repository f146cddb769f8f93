-- Read access for the Ops Console (enforcement_operator) to the enforcement data behind the
-- views, as row-level security policies.
--
-- Why read-only: every write goes through the SECURITY DEFINER RPCs, which validate the
-- payload and keep the invariants (stages, balances, state machines, timeline). The
-- operator gets no INSERT, UPDATE or DELETE on any of these tables; service_role keeps full
-- rights and bypasses RLS, as on Supabase. The fleet (dragonfly_worker) gets no table
-- rights at all: it writes through the RPCs and reads through its own SECURITY DEFINER
-- readers in the dragonfly schema, like the rest of the fleet.
--
-- Why the views need table rights at all: the views are security_invoker, so a caller
-- needs SELECT on the tables a view reads and sees only the rows the policies let through.
--
-- Case visibility is the root: every table hanging off a case (events, history, actions,
-- documents, the case's tasks) is visible exactly when its parent case is, through an
-- exists() on enforcement_cases evaluated with the caller's own rights, so narrowing the
-- case policy later (per team, per tenant) narrows all of them at once.
--
-- Role matrix (docs/rpc.md has the full table):
--   anon, authenticated   nothing here (no table, view or RPC right).
--   enforcement_operator  SELECT on cases, events, history, actions, documents, the cases'
--                         tasks, judgments, plaintiffs, judgments.cases and the five views;
--                         EXECUTE on the eight enforcement RPCs.
--   dragonfly_worker      EXECUTE on log_enforcement_event, queue_enforcement_action,
--                         set_enforcement_stage, issue_subpoena and
--                         refresh_enforcement_metrics; no table or view right.
--   service_role          everything.

grant select
    on public.enforcement_cases,
       public.enforcement_events,
       public.enforcement_history,
       public.enforcement_actions,
       public.enforcement_documents,
       public.plaintiff_tasks,
       public.judgments,
       public.plaintiffs,
       judgments.cases
    to enforcement_operator;

-- The root of visibility.
create policy "Enforcement operators can read every case"
    on public.enforcement_cases
    for select
    to enforcement_operator
    using (true);

-- Children inherit the parent case's visibility.
create policy "Events are visible to whoever can see their case"
    on public.enforcement_events
    for select
    to enforcement_operator
    using (
        exists (
            select 1 from public.enforcement_cases as c
             where c.id = enforcement_events.enforcement_case_id
        )
    );

create policy "History is visible to whoever can see its case"
    on public.enforcement_history
    for select
    to enforcement_operator
    using (
        exists (
            select 1 from public.enforcement_cases as c
             where c.id = enforcement_history.enforcement_case_id
        )
    );

create policy "Actions are visible to whoever can see their case"
    on public.enforcement_actions
    for select
    to enforcement_operator
    using (
        exists (
            select 1 from public.enforcement_cases as c
             where c.id = enforcement_actions.enforcement_case_id
        )
    );

create policy "Documents are visible to whoever can see their case"
    on public.enforcement_documents
    for select
    to enforcement_operator
    using (
        exists (
            select 1 from public.enforcement_cases as c
             where c.id = enforcement_documents.enforcement_case_id
        )
    );

create policy "Enforcement tasks are visible to whoever can see their case"
    on public.plaintiff_tasks
    for select
    to enforcement_operator
    using (
        plaintiff_tasks.enforcement_case_id is not null
        and exists (
            select 1 from public.enforcement_cases as c
             where c.id = plaintiff_tasks.enforcement_case_id
        )
    );

-- What the pipeline and the snapshot join.
create policy "Enforcement operators can read judgments"
    on public.judgments
    for select
    to enforcement_operator
    using (true);

create policy "Enforcement operators can read plaintiffs"
    on public.plaintiffs
    for select
    to enforcement_operator
    using (true);

create policy "Enforcement operators can read court cases"
    on judgments.cases
    for select
    to enforcement_operator
    using (true);
