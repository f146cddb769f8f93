-- Default alert rules, so a new installation alerts on what Ops watches first.
--
-- Why seeded here: rules are data, but an empty rule table would make the listener silently
-- useless. These are starting points; on-call changes them with `dragonfly alerts rules`
-- (docs/alerts.md lists them). A sink that no listener has configured (no webhook URL, no SMTP
-- host) leaves its deliveries pending, visible in `dragonfly alerts list --status pending`.

insert into dragonfly.alert_rules (name, description, event_kinds, tiers, min_amount, sinks, job_kind)
values
    ('levy_or_garnishment_served',
     'A bank levy or an income execution was served: funds may arrive; tell the team.',
     array['bank_levy_served', 'garnishment_served']::public.enforcement_event_kind[],
     null, null, array['slack'], null),
    ('levy_served_replan',
     'A served bank levy changes what the planner should do next: enqueue an enforce job for the case.',
     array['bank_levy_served']::public.enforcement_event_kind[],
     null, null, array['queue'], 'enforce'),
    ('payment_received',
     'Money came in on a case.',
     array['payment_received']::public.enforcement_event_kind[],
     null, null, array['slack'], null),
    ('high_value_case_update',
     'Progress on a tier0/tier1 case worth at least 10,000: asset search results, subpoena answers, '
     'marshal results and stage changes, to Slack and by email.',
     array['asset_search_completed', 'subpoena_complied', 'marshal_result',
           'case_stage_changed']::public.enforcement_event_kind[],
     array['tier0', 'tier1'], 10000, array['slack', 'email'], null),
    ('case_closed',
     'A case closed (satisfied, uncollectible or withdrawn).',
     array['case_closed']::public.enforcement_event_kind[],
     null, null, array['slack'], null);
