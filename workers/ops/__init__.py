"""On-call operations: queue inspection, dead letters, enqueueing by hand, the security
report (what each role may call and touch, and the job-kind policy: ``security.py``, which
reads the catalog directly).

Each function takes a caller-supplied connection and calls one SQL function of
the ``dragonfly`` schema (sql/migrations/20261127004520_queue_stats.sql and
20261127004530_dead_letter_ops.sql), so the CLI, the metrics exporter and any
other caller see the same numbers and resolve dead letters the same way.
"""
