"""The fleet's scheduler: periodic maintenance tasks, one runner per fleet.

- ``base``: what a task is (a name, a schedule, ``run_once``) and the schedules;
- ``lock``: the fleet-wide session advisory lock (``pg_try_advisory_lock``);
- ``runs``: ``dragonfly.scheduler_runs``, so a restart never runs a slot twice;
- ``refresh``: the nightly ``refresh_enforcement_metrics()`` (unless pg_cron does it);
- ``retention``: batched pruning of completed jobs, PGMQ archives, resolved dead letters;
- ``tasks``: the default task list (add new tasks there);
- ``service``: :class:`Scheduler` — ``run_once()`` and the loop around it.
"""
