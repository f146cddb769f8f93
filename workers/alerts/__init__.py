"""The alert listener: enforcement events fanned out to Slack, email and queue_job.

- ``models``: pydantic models at the boundaries (notification payload, event, rule, delivery).
- ``rules``: routing, a pure function of the rules and the event.
- ``render``: the text of a Slack message and of an email.
- ``retry``: the pure ``(attempt, error) -> decision`` backoff function.
- ``sinks``: one adapter per destination (Slack webhook, SMTP, queue_job).
- ``store``: the named queries of ``queries.sql`` (routing, claiming, recording).
- ``listener``: the LISTEN connection, catch-up and the delivery loop (``run_once`` + ``loop``).
- ``metrics``: Prometheus collectors.

docs/alerts.md explains the design: delivery records, catch-up, several listeners.
"""
