"""refresh_enforcement_metrics() in short transactions: each step commits its chunk, a pass
resumes after a crash, and an RPC on a case of a committed chunk never waits for the rest of
the pass. Each test on a database of its own; waits poll with a deadline.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from tests.integration.test_enforcement_concurrency import connect, seeded, wait_until
from tests.sql.enforcement_seed import one, rpc
from workers.scheduler.base import DailyAt, TaskContext
from workers.scheduler.refresh import WHOLE_PASS, RefreshMetricsTask

Conn = psycopg.Connection[Any]

pytestmark = pytest.mark.slow


def book(url: str, cases: int) -> list[str]:
    """``cases`` open tier0 cases, settled by a first pass, then all re-scored to tier3."""
    made = [seeded(url, score="80", tier="tier0") for _ in range(cases)]
    with connect(url, autocommit=True) as admin:
        admin.execute(WHOLE_PASS)
        admin.execute(
            "update judgments.cases set collectability_score = 10, collectability_tier = 'tier3' "
            "where judgment_id = any(%s::uuid[])",
            ([s.judgment_id for s in made],),
        )
    return sorted(s.case_id for s in made)


def tiers(conn: Conn, ids: list[str]) -> list[str]:
    rows = conn.execute(
        "select tier from public.enforcement_cases where id = any(%s::uuid[]) order by id", (ids,)
    ).fetchall()
    return [r[0] for r in rows]


def progress(conn: Conn) -> dict[str, Any]:
    value = one(conn, "select public.refresh_enforcement_metrics_progress()")
    assert isinstance(value, dict)
    return value


def test_an_rpc_on_a_committed_chunk_returns_while_the_refresh_waits_on_a_later_one(
    fresh_db_url: str,
) -> None:
    ids = book(fresh_db_url, 6)
    outcome: dict[str, Any] = {}

    def run_refresh() -> None:
        with connect(fresh_db_url, autocommit=True) as conn:
            conn.execute("set dragonfly.refresh_chunk_size = '2'")
            conn.execute("set dragonfly.refresh_lock_wait = '1min'")
            conn.execute("set application_name = 'refresh-under-test'")
            conn.execute(WHOLE_PASS)
            outcome["result"] = progress(conn)["totals"]

    with connect(fresh_db_url) as holder, connect(fresh_db_url, autocommit=True) as observer:
        # The first case of the second chunk is busy: the refresh must stop there.
        holder.execute(
            "select 1 from public.enforcement_cases where id = %s for no key update", (ids[2],)
        )
        refresher = threading.Thread(target=run_refresh)
        refresher.start()
        try:
            wait_until(
                lambda: one(
                    observer,
                    "select count(*) from pg_stat_activity "
                    "where application_name = 'refresh-under-test' and wait_event_type = 'Lock'",
                ),
                "the refresh to wait on the held case",
            )
            state = progress(observer)
            assert (state["phase"], state["after_id"]) == ("cases", ids[1])
            # The first chunk is committed and unlocked while the refresh is still running.
            assert tiers(observer, ids) == ["tier3", "tier3", "tier0", "tier0", "tier0", "tier0"]
            with connect(fresh_db_url) as console:
                console.execute("set lock_timeout = '1s'")
                rpc(console, "set_enforcement_stage", {"case_id": ids[0], "stage": "asset_search"})
                console.commit()
            assert refresher.is_alive()
        finally:
            holder.rollback()
            refresher.join(timeout=60)
    assert not refresher.is_alive()
    assert outcome["result"]["tiers_changed"] == 6
    with connect(fresh_db_url) as conn:
        assert progress(conn)["finished"] is True
        assert tiers(conn, ids) == ["tier3"] * 6


def test_a_pass_resumes_after_a_step_that_never_committed(fresh_db_url: str) -> None:
    ids = book(fresh_db_url, 5)
    with connect(fresh_db_url) as conn:
        conn.execute("set dragonfly.refresh_chunk_size = '2'")
        first = one(conn, "select public.refresh_enforcement_metrics()")
        conn.commit()
        assert first["tiers_changed"] == 2
        # A step that dies before its commit changes nothing, not even the cursor.
        one(conn, "select public.refresh_enforcement_metrics()")
        conn.rollback()
        assert progress(conn)["after_id"] == ids[1]
        conn.commit()
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("set dragonfly.refresh_chunk_size = '2'")
        conn.execute(WHOLE_PASS)
        assert progress(conn)["totals"]["tiers_changed"] == 5
        assert progress(conn)["steps"] >= 4
        assert tiers(conn, ids) == ["tier3"] * 5
        events = conn.execute(
            "select count(*) from public.enforcement_events "
            "where event_kind = 'tier_changed' and enforcement_case_id = any(%s::uuid[]) "
            "group by enforcement_case_id",
            (ids,),
        ).fetchall()
        assert events == [(1,)] * 5


def test_a_bad_chunk_size_is_refused(fresh_db_url: str) -> None:
    with connect(fresh_db_url) as conn:
        conn.execute("set dragonfly.refresh_chunk_size = '0'")
        with pytest.raises(psycopg.Error) as refused:
            conn.execute("select public.refresh_enforcement_metrics()")
        assert refused.value.sqlstate == "22023"


def test_the_scheduler_runs_the_pass_one_step_per_transaction_and_resumes_after_a_stop(
    fresh_db_url: str,
) -> None:
    ids = book(fresh_db_url, 5)
    task = RefreshMetricsTask(DailyAt.parse("02:30"))
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("set dragonfly.refresh_chunk_size = '2'")
        stop = threading.Event()
        stop.set()  # asked to stop: one step, then out
        stopped = task.run_once(TaskContext(conn=conn, now=datetime.now(UTC), stop=stop))
        assert stopped.detail["interrupted"] is True
        assert progress(conn)["phase"] == "cases"
        assert tiers(conn, ids) == ["tier3", "tier3", "tier0", "tier0", "tier0"]
        done = task.run_once(TaskContext(conn=conn, now=datetime.now(UTC), stop=threading.Event()))
        assert done.status == "ok"
        assert done.detail["tiers_changed"] == 5
        assert done.detail["steps"] >= 3
        assert done.detail["vacuumed"] is True
        vacuumed = one(
            conn,
            "select last_vacuum is not null from pg_stat_user_tables "
            "where relid = 'public.enforcement_cases'::regclass",
        )
        assert vacuumed is True
        assert progress(conn)["finished"] is True
        assert tiers(conn, ids) == ["tier3"] * 5


def test_a_step_reads_from_its_cursor_through_the_index_even_with_a_generic_plan(
    fresh_db_url: str,
) -> None:
    """A generic plan of "after is null or id > after" cannot be an index range, so every step
    read the book from its first id (a pass quadratic in the book). The cursor condition of
    the generic plans must be the plain range "id > <cursor>"."""
    book(fresh_db_url, 3)
    notices: list[str] = []
    with connect(fresh_db_url, autocommit=True) as conn:
        try:
            conn.execute("load 'auto_explain'")
        except psycopg.Error:
            pytest.skip("auto_explain is not available on this server")
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        for setting in (
            "auto_explain.log_min_duration = 0",
            "auto_explain.log_nested_statements = on",
            "auto_explain.log_level = notice",
            "plan_cache_mode = force_generic_plan",
            "dragonfly.refresh_chunk_size = '1'",
        ):
            conn.execute(f"set {setting}")
        conn.execute(WHOLE_PASS)
    chunk_plans = [n for n in notices if "v_ids := array(" in n]
    assert len(chunk_plans) >= 2, notices  # the cases and the judgments steps
    for plan in chunk_plans:
        assert "(id > COALESCE($1" in plan, plan
        assert "IS NULL" not in plan, plan
