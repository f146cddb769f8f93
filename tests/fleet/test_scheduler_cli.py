"""``dragonfly scheduler --once | --run TASK | --status`` through the real CLI."""

from __future__ import annotations

import psycopg

from tests.harness import run_cli, worker_url


def test_once_run_and_status(fresh_db_url: str) -> None:
    # The scheduler logs in as a member of dragonfly_worker, as it is deployed.
    env = {"DATABASE_URL": worker_url(fresh_db_url), "DRAGONFLY_LOG_FORMAT": "json"}
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("drop function if exists public.refresh_enforcement_metrics() cascade")

    never = run_cli("scheduler", "--status", env=env)
    assert never.returncode == 0, never.stderr
    # Other tasks (e.g. the SLA sweep) may follow ours.
    assert never.stdout.splitlines()[:4] == [
        "refresh_enforcement_metrics: daily at 02:30 UTC",
        "  never run",
        "retention: every 60 min",
        "  never run",
    ]

    once = run_cli("scheduler", "--once", env=env)
    assert once.returncode == 0, once.stderr
    assert "refresh_enforcement_metrics: skipped" in once.stdout
    assert "retention: ok" in once.stdout
    assert '"event": "scheduler_task_skipped"' in once.stderr

    nothing_due = run_cli("scheduler", "--once", env=env)
    assert "refresh_enforcement_metrics" not in nothing_due.stdout
    assert "retention" not in nothing_due.stdout

    forced = run_cli("scheduler", "--run", "retention", env=env)
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.startswith("retention: ok")

    status = run_cli("scheduler", "--status", env=env)
    assert "skipped" in status.stdout.splitlines()[1]
    assert "ok" in status.stdout.splitlines()[3]

    unknown = run_cli("scheduler", "--run", "nope", env=env)
    assert unknown.returncode == 2
    assert len(unknown.stderr.strip().splitlines()) == 1
    assert unknown.stderr.startswith(
        "dragonfly: no task 'nope'; tasks: refresh_enforcement_metrics, retention"
    )
