"""The scheduler's tasks and tick, called directly (run_once) on a database of the test's own.

pg_cron is not installed on the test servers; the stand-aside test creates a
stand-in ``cron.job`` table (the columns pg_cron has) in the test's database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.fleet.helpers import wait_for
from workers.observability.http import Readiness
from workers.scheduler.base import DailyAt, Every, TaskContext, TaskResult
from workers.scheduler.refresh import RefreshMetricsTask
from workers.scheduler.retention import RetentionTask
from workers.scheduler.runs import last_run
from workers.scheduler.service import NotLeader, Scheduler, Tick
from workers.scheduler.tasks import default_tasks
from workers.settings import Settings

Conn = psycopg.Connection[Any]
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
NIGHTLY = DailyAt(time(2, 30, tzinfo=UTC))


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


def ctx(conn: Conn, now: datetime = T0) -> TaskContext:
    return TaskContext(conn=conn, now=now, stop=threading.Event())


def install_fake_refresh(conn: Conn) -> None:
    """A refresh_enforcement_metrics() of the test's own that counts its calls."""
    conn.execute("drop function if exists public.refresh_enforcement_metrics() cascade")
    conn.execute("create table public.refresh_calls (at timestamptz default clock_timestamp())")
    conn.execute(
        "create function public.refresh_enforcement_metrics() returns void language sql"
        " as $$ insert into public.refresh_calls default values $$"
    )


def refresh_calls(conn: Conn) -> int:
    row = conn.execute("select count(*) from public.refresh_calls").fetchone()
    assert row is not None
    return int(row[0])


# -- schedules -----------------------------------------------------------------


def test_daily_slot_runs_once_per_day_and_catches_up_a_missed_slot() -> None:
    assert NIGHTLY.latest_slot(T0) == datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
    assert NIGHTLY.latest_slot(T0.replace(hour=1)) == datetime(2026, 11, 26, 2, 30, tzinfo=UTC)
    assert NIGHTLY.due_slot(T0, None) == datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
    assert DailyAt.parse("23:05").at == time(23, 5, tzinfo=UTC)


def test_every_is_due_after_its_interval() -> None:
    every = Every(timedelta(minutes=60))
    assert every.due_slot(T0, None) == T0


# -- retention -----------------------------------------------------------------


def test_retention_prunes_old_rows_in_batches_and_keeps_the_rest(conn: Conn) -> None:
    old, recent = "now() - interval '40 days'", "now() - interval '1 day'"
    for i in range(5):
        conn.execute(
            "insert into dragonfly.completed_jobs (kind, idempotency_key, queue, msg_id, attempts,"
            f" completed_at) values ('enrich', %s, 'enrich', %s, 1, {old})",
            (f"old-{i}", i),
        )
    conn.execute(
        "insert into dragonfly.completed_jobs (kind, idempotency_key, queue, msg_id, attempts,"
        f" completed_at) values ('enrich', 'recent', 'enrich', 100, 1, {recent})"
    )
    # Archives: 3 old + 1 recent on enrich, 1 old on outreach.
    for queue, n in (("enrich", 4), ("outreach", 1)):
        for _ in range(n):
            conn.execute("select pgmq.archive(%s, pgmq.send(%s, '{}'::jsonb))", (queue, queue))
    conn.execute(
        "update pgmq.a_enrich set archived_at = now() - interval '10 days'"
        " where msg_id in (select msg_id from pgmq.a_enrich order by msg_id limit 3)"
    )
    conn.execute("update pgmq.a_outreach set archived_at = now() - interval '10 days'")
    # Dead letters: resolved long ago (pruned), resolved lately and open-but-old (kept).
    for i, (status, resolved) in enumerate(
        [("replayed", old), ("purged", old), ("purged", recent), ("dead", "null")]
    ):
        conn.execute(
            "insert into dragonfly.dead_letters (queue, msg_id, message, attempts, reason,"
            " last_error, dead_at, status, resolved_at, resolved_by) values"
            f" ('enrich', %s, '{{}}', 1, 'permanent', 'boom', {old}, %s, {resolved},"
            " case when %s = 'dead' then null else 'test' end)",
            (i, status, status),
        )

    # Alert deliveries: settled long ago (pruned); settled lately, or still open though old
    # (kept).
    for i, (status, changed) in enumerate(
        [
            ("delivered", old),
            ("dead", old),
            ("delivered", old),
            ("delivered", recent),
            ("failed", old),
            ("pending", old),
        ]
    ):
        conn.execute(
            "insert into dragonfly.alert_deliveries (event_id, case_id, event_kind,"
            " event_created_at, rule, sink, context, status, delivered_at, dead_at, updated_at)"
            " values (gen_random_uuid(), gen_random_uuid(), 'payment_recorded', now(), %s,"
            " 'slack', '{}', %s, case when %s = 'delivered' then now() end,"
            f" case when %s = 'dead' then now() end, {changed})",
            (f"rule-{i}", status, status, status),
        )

    task = RetentionTask(
        Every(timedelta(hours=1)),
        completed_days=30,
        archive_days=7,
        dead_letter_days=30,
        alert_days=30,
        batch_size=2,
    )
    result = task.run_once(ctx(conn))

    assert result.status == "ok"
    assert result.detail == {
        "enqueue_rate_windows": 0,
        "fleet_processes": 0,
        "completed_jobs": 5,
        "archives": {"case_copilot": 0, "enforce": 0, "enrich": 3, "outreach": 1},
        "dead_letters": 2,
        "alert_deliveries": 3,
    }

    def count(sql: str) -> int:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])

    assert count("select count(*) from dragonfly.completed_jobs") == 1
    assert count("select count(*) from pgmq.a_enrich") == 1
    assert count("select count(*) from pgmq.a_outreach") == 0
    assert count("select count(*) from dragonfly.dead_letters") == 2
    assert count("select count(*) from dragonfly.dead_letters where status = 'dead'") == 1
    kept = conn.execute("select rule from dragonfly.alert_deliveries order by rule").fetchall()
    assert [r[0] for r in kept] == ["rule-3", "rule-4", "rule-5"]

    again = task.run_once(ctx(conn))
    assert again.detail["completed_jobs"] == 0


def test_retention_with_every_period_zero_is_skipped(conn: Conn) -> None:
    task = RetentionTask(
        Every(timedelta(hours=1)), completed_days=0, archive_days=0, dead_letter_days=0
    )
    assert task.run_once(ctx(conn)).status == "skipped"


# -- dedupe records and rate-limit windows ---------------------------------------


def count(conn: Conn, query: str, params: Any = None) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


PROBE = "dedupe_probe"  # a kind of the tests' own: no payload shape, so {} is a job


def enqueue(conn: Conn, key: str, delay: int = 0) -> int:
    """queue_job() a job of the probe kind; its msg_id."""
    envelope = {"kind": PROBE, "idempotency_key": key, "payload": {}, "delay_seconds": delay}
    return count(conn, "select public.queue_job(%s)", (Jsonb(envelope),))


def dedupe_keys(conn: Conn) -> set[str]:
    rows = conn.execute("select idempotency_key from dragonfly.enqueued_jobs").fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def jobs_in_every_state(conn: Conn) -> dict[str, int]:
    """Enqueued 40 days ago, one job per state it can be in; recent: settled yesterday."""
    conn.execute(
        "select dragonfly.register_job_kind(%s, 'Jobs of the dedupe prune tests.')", (PROBE,)
    )
    msg = {key: enqueue(conn, key) for key in ("queued", "in-flight", "dead", "dead-purged")}
    msg["deferred"] = enqueue(conn, "deferred", delay=3600)
    msg |= {key: enqueue(conn, key) for key in ("recent", "archived")}
    msg |= {f"done-{i}": enqueue(conn, f"done-{i}") for i in range(4)}
    conn.execute("select pgmq.set_vt(%s, %s, 300)", (PROBE, msg["in-flight"]))
    conn.execute(
        f"update pgmq.q_{PROBE} set read_ct = 1 where msg_id = any(%s)",
        ([msg["in-flight"], msg["dead"], msg["dead-purged"]],),
    )
    for key in ("dead", "dead-purged"):
        conn.execute(
            "select dragonfly.dead_letter_job(%s, %s, 1, 'permanent', 'no')", (PROBE, msg[key])
        )
    conn.execute(
        "select dragonfly.purge_dead_letters(array(select id from dragonfly.dead_letters"
        " where idempotency_key = 'dead-purged'), 'test')"
    )
    conn.execute("select pgmq.archive(%s, %s::bigint)", (PROBE, msg["archived"]))
    settled = [msg["recent"]] + [msg[f"done-{i}"] for i in range(4)]
    conn.execute("select pgmq.delete(%s, %s::bigint[])", (PROBE, settled))
    conn.execute(
        "update dragonfly.enqueued_jobs set enqueued_at = now() - case idempotency_key"
        " when 'recent' then interval '1 day' else interval '40 days' end"
    )
    return msg


UNSETTLED = {"queued", "in-flight", "deferred", "dead"}


def test_dedupe_prune_keeps_unsettled_jobs_and_deletes_old_settled_ones_in_batches(
    conn: Conn, jobs_in_every_state: dict[str, int]
) -> None:
    prune = "select dragonfly.prune_enqueued_jobs(interval '30 days', 2)"
    # Settled and old: dead-purged, archived and done-0..3, in batches of at most 2.
    assert [count(conn, prune) for _ in range(4)] == [2, 2, 2, 0]
    assert dedupe_keys(conn) == UNSETTLED | {"recent"}

    # Past the horizon a key enqueues again; a job still unsettled is still deduplicated.
    assert enqueue(conn, "done-0") != jobs_in_every_state["done-0"]
    assert enqueue(conn, "queued") == jobs_in_every_state["queued"]
    assert enqueue(conn, "dead") == jobs_in_every_state["dead"]


def test_retention_prunes_dedupe_records_past_their_days_and_rate_windows_every_run(
    conn: Conn, jobs_in_every_state: dict[str, int]
) -> None:
    conn.execute(
        "insert into dragonfly.enqueue_rate_windows (scope, window_start, jobs) values"
        " ('public:enrich', date_bin('1 minute', now(), timestamptz '2000-01-01'), 3),"
        " ('public:enrich:c-1', date_bin('1 hour', now(), timestamptz '2000-01-01'), 1),"
        " ('public:enrich:c-2', now() - interval '3 hours', 1),"
        " ('public:outreach', now() - interval '5 hours', 9)"
    )
    task = RetentionTask(
        Every(timedelta(hours=1)),
        completed_days=0,
        archive_days=0,
        dead_letter_days=0,
        dedupe_days=30,
        batch_size=2,
    )
    result = task.run_once(ctx(conn))
    assert result.detail == {"enqueue_rate_windows": 2, "fleet_processes": 0, "enqueued_jobs": 6}
    assert dedupe_keys(conn) == UNSETTLED | {"recent"}
    windows = conn.execute("select scope from dragonfly.enqueue_rate_windows order by 1")
    assert [r[0] for r in windows.fetchall()] == ["public:enrich", "public:enrich:c-1"]


def test_dedupe_days_zero_keeps_every_record(
    conn: Conn, jobs_in_every_state: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRAGONFLY_RETENTION_DEDUPE_DAYS", "0")
    (task,) = [t for t in default_tasks(Settings()) if isinstance(t, RetentionTask)]
    assert task.dedupe_days == 0
    result = task.run_once(ctx(conn))
    assert result.status == "ok"
    assert "enqueued_jobs" not in result.detail
    assert dedupe_keys(conn) == set(jobs_in_every_state)


def test_the_rate_window_prune_only_takes_windows_that_are_over(conn: Conn) -> None:
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("select dragonfly.prune_enqueue_rate_windows(interval '59 minutes')")
    assert refused.value.sqlstate == "22023"
    assert "at least 1 hour" in str(refused.value)


# -- the nightly refresh ---------------------------------------------------------


def test_refresh_is_skipped_when_the_function_does_not_exist(conn: Conn) -> None:
    conn.execute("drop function if exists public.refresh_enforcement_metrics() cascade")
    result = RefreshMetricsTask(NIGHTLY).run_once(ctx(conn))
    assert result == TaskResult.skipped(
        "function public.refresh_enforcement_metrics() does not exist"
    )


@pytest.mark.parametrize("with_active_column", [True, False])
def test_refresh_stands_aside_when_pg_cron_schedules_it(
    conn: Conn, with_active_column: bool
) -> None:
    install_fake_refresh(conn)
    conn.execute("create schema if not exists cron")
    active = ", active boolean not null default true" if with_active_column else ""
    conn.execute(
        f"create table cron.job (jobid bigserial primary key, schedule text, command text{active})"
    )
    task = RefreshMetricsTask(NIGHTLY)
    conn.execute("insert into cron.job (schedule, command) values ('0 4 * * *', 'vacuum')")
    assert task.run_once(ctx(conn)).status == "ok"
    assert refresh_calls(conn) == 1

    conn.execute(
        "insert into cron.job (schedule, command) values"
        " ('30 2 * * *', 'SELECT public.refresh_enforcement_metrics()')"
    )
    result = task.run_once(ctx(conn))
    assert result == TaskResult.skipped("pg_cron schedules refresh_enforcement_metrics()")
    assert refresh_calls(conn) == 1

    if with_active_column:
        conn.execute("update cron.job set active = false")
        assert task.run_once(ctx(conn)).status == "ok"


# -- the tick: lock, slots, failures ----------------------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def statuses(tick: Tick) -> dict[str, str]:
    return {o.task: o.status for o in tick.outcomes}


def test_one_scheduler_leads_and_a_second_stands_by_until_the_first_is_gone(
    fresh_db_url: str, conn: Conn
) -> None:
    install_fake_refresh(conn)
    first = Scheduler(fresh_db_url, [RefreshMetricsTask(NIGHTLY)], clock=Clock(T0))
    second = Scheduler(fresh_db_url, [RefreshMetricsTask(NIGHTLY)], clock=Clock(T0))
    try:
        tick = first.run_once()
        assert tick.leader
        assert statuses(tick) == {"refresh_enforcement_metrics": "ok"}
        assert second.run_once() == Tick(leader=False)
        with pytest.raises(NotLeader):
            second.run_task("refresh_enforcement_metrics")
        first.close()
        tick = second.run_once()
        assert tick.leader
        # The slot was already covered by the first scheduler: nothing to run.
        assert tick.outcomes == []
    finally:
        first.close()
        second.close()
    assert refresh_calls(conn) == 1


def test_a_restarted_scheduler_does_not_run_a_slot_twice(fresh_db_url: str, conn: Conn) -> None:
    install_fake_refresh(conn)
    clock = Clock(T0)
    tasks = [RefreshMetricsTask(NIGHTLY)]
    scheduler = Scheduler(fresh_db_url, tasks, clock=clock, identity="host-a:1")
    try:
        assert statuses(scheduler.run_once()) == {"refresh_enforcement_metrics": "ok"}
        clock.now = T0 + timedelta(minutes=1)
        assert scheduler.run_once().outcomes == []
    finally:
        scheduler.close()
    assert refresh_calls(conn) == 1

    clock.now = T0 + timedelta(hours=3)
    restarted = Scheduler(fresh_db_url, tasks, clock=clock, identity="host-b:2")
    try:
        assert restarted.run_once().outcomes == []
        clock.now = T0 + timedelta(days=1)  # 10:00 the next day: that day's 02:30 slot is due
        assert statuses(restarted.run_once()) == {"refresh_enforcement_metrics": "ok"}
    finally:
        restarted.close()
    assert refresh_calls(conn) == 2
    record = last_run(conn, "refresh_enforcement_metrics")
    assert record is not None
    assert record.last_slot == datetime(2026, 11, 28, 2, 30, tzinfo=UTC)
    assert record.run_count == 2
    assert record.ran_by == "host-b:2"
    assert record.last_status == "ok"


class Boom:
    name = "boom"
    schedule = DailyAt(time(2, 30, tzinfo=UTC), retry_after=timedelta(minutes=15))

    def __init__(self) -> None:
        self.calls = 0

    def run_once(self, ctx: TaskContext) -> TaskResult:
        self.calls += 1
        if self.calls == 1:
            ctx.conn.execute("select 1/0")
        return TaskResult("ok")


def test_a_failed_task_is_recorded_and_retried_later_without_stopping_others(
    fresh_db_url: str, conn: Conn
) -> None:
    boom = Boom()
    retention = RetentionTask(
        Every(timedelta(hours=1)), completed_days=1, archive_days=1, dead_letter_days=1
    )
    clock = Clock(T0)
    scheduler = Scheduler(fresh_db_url, [boom, retention], clock=clock)
    try:
        tick = scheduler.run_once()
        assert statuses(tick) == {"boom": "failed", "retention": "ok"}
        record = last_run(conn, "boom")
        assert record is not None
        assert record.last_status == "failed"
        assert "division by zero" in record.last_detail["error"]

        clock.now = T0 + timedelta(minutes=5)
        assert scheduler.run_once().outcomes == []
        clock.now = T0 + timedelta(minutes=20)
        assert statuses(scheduler.run_once()) == {"boom": "ok"}
        clock.now = T0 + timedelta(minutes=61)
        assert statuses(scheduler.run_once()) == {"retention": "ok"}
    finally:
        scheduler.close()


def test_the_loop_reports_ready_and_stops_on_request(fresh_db_url: str) -> None:
    readiness = Readiness()
    scheduler = Scheduler(fresh_db_url, [RefreshMetricsTask(NIGHTLY)])
    thread = threading.Thread(target=scheduler.run, args=(0.05,), kwargs={"readiness": readiness})
    thread.start()
    try:
        wait_for(lambda: readiness.ready, timeout=15, what="the scheduler loop to be ready")
        assert scheduler.is_leader
    finally:
        scheduler.stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()
    assert not scheduler.is_leader


def test_the_loop_survives_an_unreachable_database() -> None:
    readiness = Readiness()
    scheduler = Scheduler(
        "postgresql://postgres@127.0.0.1:1/x", [RefreshMetricsTask(NIGHTLY)], connect_timeout=1
    )
    readiness.set_ready(True)
    thread = threading.Thread(target=scheduler.run, args=(0.05,), kwargs={"readiness": readiness})
    thread.start()
    try:
        wait_for(lambda: not readiness.ready, timeout=15, what="readiness to drop")
        assert readiness.reason == "database unavailable"
        assert thread.is_alive()
    finally:
        scheduler.stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


@pytest.mark.parametrize(
    ("function", "args"),
    [
        (name, args)
        for name in (
            "prune_completed_jobs",
            "prune_archives",
            "prune_dead_letters",
            "prune_alert_deliveries",
            "prune_enqueued_jobs",
        )
        for args in (
            "interval '0 days', 10",
            "interval '-1 day', 10",
            "null, 10",
            "interval '1 day', 0",
        )
    ],
)
def test_the_prune_functions_refuse_a_bad_period_or_limit(
    conn: Conn, function: str, args: str
) -> None:
    with pytest.raises(psycopg.Error) as refused:
        conn.execute(f"select * from dragonfly.{function}({args})")
    assert refused.value.sqlstate == "22023"
    assert function in str(refused.value)
