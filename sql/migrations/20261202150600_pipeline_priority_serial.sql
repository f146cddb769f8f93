-- public.judgment_priority_of() is PARALLEL UNSAFE: the console's pipeline reads never start
-- parallel workers.
--
-- Why: the function's high COST (migration 20261202150500) is charged to every plan of
-- v_priority_pipeline, also to the index-only scan that reads its value from the index, so
-- the estimates of a 50-row read run into the millions and the planner split the index scan
-- over parallel workers behind a Gather Merge. Starting workers costs more than the read
-- (10 -> 70 ms on a 10k book on a busy machine). A parallel-unsafe function keeps the whole
-- query in one process; the plan choice between the index and a sort is unchanged (both
-- are priced with the function).

alter function public.judgment_priority_of(text) parallel unsafe;
