"""The scheduler's default tasks, built from settings.

To add a task (an SLA sweep, say): write a module with a class that has a
``name``, a ``schedule`` (:class:`~workers.scheduler.base.DailyAt`,
:class:`~workers.scheduler.base.Every` or your own) and ``run_once(ctx)``, test
``run_once`` directly, and append an instance here.
"""

from __future__ import annotations

from datetime import timedelta

from workers.enforce.sweep import SlaSweepTask
from workers.scheduler.base import DailyAt, Every, Task
from workers.scheduler.history import QueueHistoryTask
from workers.scheduler.refresh import RefreshMetricsTask
from workers.scheduler.retention import RetentionTask
from workers.settings import Settings


def default_tasks(settings: Settings) -> list[Task]:
    return [
        RefreshMetricsTask(DailyAt.parse(settings.scheduler_refresh_at)),
        RetentionTask(
            Every(timedelta(minutes=settings.retention_interval_minutes)),
            completed_days=settings.retention_completed_days,
            dedupe_days=settings.retention_dedupe_days,
            archive_days=settings.retention_archive_days,
            dead_letter_days=settings.retention_dead_letter_days,
            alert_days=settings.retention_alert_days,
            queue_history_days=settings.retention_queue_history_days,
            batch_size=settings.retention_batch_size,
        ),
        SlaSweepTask.every_minutes(
            settings.enforce_sla_sweep_minutes, batch=settings.enforce_sla_sweep_batch
        ),
        QueueHistoryTask(Every(timedelta(minutes=1))),
    ]
