-- Keep the visibility maps of enforcement_cases and judgments current after a refresh night.
--
-- Why: v_enforcement_overview counts open cases with an index-only scan of
-- enforcement_cases_overview_idx, and v_priority_pipeline ranks with one of
-- judgments_pipeline_order_idx. An index-only scan reads the heap for every row on a page
-- that is not marked all-visible, and any write clears that mark for its page. A night
-- that re-scores 5% of the book touches most pages of enforcement_cases (and, through the
-- tier mirror, of judgments), and the default autovacuum threshold (20% of the table)
-- never fires for it, so the next day's reads paid a heap fetch per row (the overview at a
-- million cases: 223 ms freshly vacuumed, 1.7 s after a 5% night). Worse for the pipeline:
-- once ANALYZE (10% threshold, so it runs first) records the lost visibility, the planner
-- prices the index-only scan as random heap reads and may sort the book instead.
--
-- So both tables are vacuumed after 1% of their rows changed (plus 1,000), before they
-- are analyzed (2%): a night's changes are vacuumed within a minute or two of the refresh,
-- and the scheduler also vacuums both right after a pass that changed something
-- (workers/scheduler/refresh.py). The cost is more frequent, smaller vacuums of two tables.

alter table public.enforcement_cases set (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);

alter table public.judgments set (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02
);
