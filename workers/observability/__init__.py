"""Health and metrics of every fleet process.

- ``metrics``: prometheus-client collectors: job counters and durations (fed by
  the consumer through the :class:`~workers.runtime.hooks.JobMetrics`
  hooks), queue gauges read from ``dragonfly.queue_stats()`` at scrape time,
  and the scheduler's task counters.
- ``probe``: one small database connection per process for readiness and the
  queue gauges, reconnected when it breaks.
- ``http``: the ``/healthz``, ``/readyz`` and ``/metrics`` server.
"""
