"""refresh_enforcement_metrics() passes that read only the marked cases (migration
20261204110000_refresh_marked_cases): a marked pass ends exactly where a full pass ends, after
any mix of changes and with the clock moved on; each path that marks a case (a write, an
expiring override, a case falling due, a deleted sla_resurfaced event, a case the refresh
could not lock) is shown on its own, with an unmarked drift beside it that only a full pass
sees (so the marked pass provably does not read unmarked cases); and a step that writes more
than its lock budget allows stops after a slice, leaving the rest of its chunk free.

Time is moved without waiting: the tests put the refresh's clock (``scanned_to``) back and
write the clock-driven columns without marking them, as if they had been written before the
last pass and their moment had come since.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_enforcement_concurrency import connect, seeded
from tests.sql.enforcement_seed import Seeded, one, rpc
from workers.scheduler.refresh import FULL_PASS, WHOLE_PASS

Conn = psycopg.Connection[Any]

pytestmark = pytest.mark.slow

CASES = 8
BOOK_SCORES = ("90", "60", "30", "10", "80", "50", "20", "5")
TIERS = ("tier0", "tier1", "tier2", "tier3")


def progress(conn: Conn) -> dict[str, Any]:
    value = one(conn, "select public.refresh_enforcement_metrics_progress()")
    assert isinstance(value, dict)
    return value


def run_pass(conn: Conn, full: bool = False) -> dict[str, Any]:
    """A whole pass inside the caller's transaction (one now(), so two passes compare)."""
    result = one(conn, "select public.refresh_enforcement_metrics(%s)", (full,))
    while not progress(conn)["finished"]:
        result = one(conn, "select public.refresh_enforcement_metrics()")
    assert isinstance(result, dict)
    return {k: v for k, v in result.items() if k != "ran_at"}


def unmarked(conn: Conn, sql: str, params: Any = None) -> None:
    """A write the marking triggers do not see (the refresh's own flag), standing for a
    change made before the last pass, or for drift that bypassed the triggers."""
    conn.execute("select set_config('dragonfly.refresh_step_writing', 'on', true)")
    conn.execute(sql, params)
    conn.execute("select set_config('dragonfly.refresh_step_writing', '', true)")


def clock_back(conn: Conn, by: str = "1 day") -> None:
    """As if the last pass had looked at the clock ``by`` ago."""
    conn.execute(
        "update enforcement_private.refresh_progress set scanned_to = now() - %s::interval",
        (by,),
    )


def fingerprint(conn: Conn, ids: list[str]) -> tuple[Any, ...]:
    cases = conn.execute(
        "select id, tier, tier_reason, tier_as_of, collectability_score, tier_override, "
        "override_expires_at, override_note, next_action_at from public.enforcement_cases "
        "where id = any(%s::uuid[]) order by id",
        (ids,),
    ).fetchall()
    history = conn.execute(
        "select enforcement_case_id, action, delta, note from public.enforcement_history "
        "where actor_type = 'automation' and enforcement_case_id = any(%s::uuid[]) "
        "order by enforcement_case_id, action, delta::text",
        (ids,),
    ).fetchall()
    events = conn.execute(
        "select enforcement_case_id, event_kind, occurred_at, payload "
        "from public.enforcement_events where actor = 'refresh_enforcement_metrics' "
        "and enforcement_case_id = any(%s::uuid[]) "
        "order by enforcement_case_id, event_kind, occurred_at, payload::text",
        (ids,),
    ).fetchall()
    mirror = conn.execute(
        "select j.id, j.collectability_tier from public.judgments j "
        "join public.enforcement_cases c on c.judgment_id = j.id "
        "where c.id = any(%s::uuid[]) order by j.id",
        (ids,),
    ).fetchall()
    return tuple(cases), tuple(history), tuple(events), tuple(mirror)


def case_row(conn: Conn, case_id: str, columns: str) -> tuple[Any, ...]:
    row = conn.execute(
        f"select {columns} from public.enforcement_cases where id = %s", (case_id,)
    ).fetchone()
    assert row is not None
    return tuple(row)


def resurfaced(conn: Conn, case_id: str) -> int:
    return int(
        one(
            conn,
            "select count(*) from public.enforcement_events "
            "where enforcement_case_id = %s and event_kind = 'sla_resurfaced'",
            (case_id,),
        )
    )


@pytest.fixture(scope="module")
def book(backend: Any, template_db: str) -> Any:
    """A database of the module's own: ``CASES`` open cases settled by a full pass."""
    name = backend.clone(template_db)
    url = backend.url(name)
    made = [seeded(url, score=s, tier="tier0") for s in BOOK_SCORES]
    with connect(url, autocommit=True) as conn:
        conn.execute(FULL_PASS)
    yield url, sorted(made, key=lambda s: s.case_id or "")
    backend.drop(name)


# ---------------------------------------------------------------------------------------
# A marked pass ends where a full pass ends


def apply(conn: Conn, cases: list[Seeded], change: tuple[Any, ...]) -> None:
    kind, index, value = change
    case = cases[index % len(cases)]
    cid = case.case_id
    if kind == "rescore":
        conn.execute(
            "update judgments.cases set collectability_score = %s where id = %s",
            (value, case.court_case_id),
        )
    elif kind == "override":
        tier, hours = value
        conn.execute(
            "update public.enforcement_cases set tier_override = %s, "
            "override_expires_at = now() + make_interval(hours => %s), override_note = 'n' "
            "where id = %s",
            (tier, hours, cid),
        )
    elif kind == "clear_override":
        conn.execute(
            "update public.enforcement_cases set tier_override = null, override_expires_at = null "
            "where id = %s",
            (cid,),
        )
    elif kind == "next_action":
        conn.execute(
            "update public.enforcement_cases set next_action_at = "
            "case when %s::int is null then null else now() + make_interval(hours => %s) end "
            "where id = %s",
            (value, value, cid),
        )
    elif kind == "stage":
        conn.execute(
            "update public.enforcement_cases set current_stage = %s, "
            "stage_entered_at = now() - make_interval(days => 20) where id = %s",
            (value, cid),
        )
    elif kind == "drop_resurfaced":
        conn.execute(
            "delete from public.enforcement_events "
            "where enforcement_case_id = %s and event_kind = 'sla_resurfaced'",
            (cid,),
        )
    elif kind == "falls_due":
        # Written before the last pass, due since: only the clock can find it.
        unmarked(
            conn,
            "update public.enforcement_cases "
            "set next_action_at = now() - make_interval(mins => %s) where id = %s",
            (value, cid),
        )
    elif kind == "override_expires":
        tier, minutes = value
        unmarked(
            conn,
            "update public.enforcement_cases set tier = %s, tier_reason = 'override', "
            "tier_override = %s, override_expires_at = now() - make_interval(mins => %s), "
            "override_note = 'temporary' where id = %s",
            (tier, tier, minutes, cid),
        )
    elif kind == "balance":
        conn.execute(
            "update public.enforcement_cases set current_balance = current_balance - 1 "
            "where id = %s",
            (cid,),
        )
    else:  # pragma: no cover
        raise AssertionError(kind)


MINUTES_IN_WINDOW = st.integers(min_value=1, max_value=600)  # within the day put back
CHANGES = st.lists(
    st.one_of(
        st.tuples(
            st.just("rescore"),
            st.integers(0, CASES - 1),
            st.one_of(st.none(), st.decimals(0, 100, places=2).map(str)),
        ),
        st.tuples(
            st.just("override"),
            st.integers(0, CASES - 1),
            st.tuples(st.sampled_from(TIERS), st.integers(-48, 48)),
        ),
        st.tuples(st.just("clear_override"), st.integers(0, CASES - 1), st.none()),
        st.tuples(
            st.just("next_action"),
            st.integers(0, CASES - 1),
            st.one_of(st.none(), st.integers(-72, 72)),
        ),
        st.tuples(
            st.just("stage"),
            st.integers(0, CASES - 1),
            st.sampled_from(("pre_enforcement", "asset_search", "bank_levy")),
        ),
        st.tuples(st.just("drop_resurfaced"), st.integers(0, CASES - 1), st.none()),
        st.tuples(st.just("falls_due"), st.integers(0, CASES - 1), MINUTES_IN_WINDOW),
        st.tuples(
            st.just("override_expires"),
            st.integers(0, CASES - 1),
            st.tuples(st.sampled_from(TIERS), MINUTES_IN_WINDOW),
        ),
        st.tuples(st.just("balance"), st.integers(0, CASES - 1), st.none()),
    ),
    max_size=12,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=CHANGES, chunk=st.sampled_from(("1", "3", "250")))
def test_a_marked_pass_ends_where_a_full_pass_ends(
    book: Any, changes: list[tuple[Any, ...]], chunk: str
) -> None:
    url, cases = book
    ids = [c.case_id for c in cases]
    with connect(url) as conn:
        try:
            conn.execute("select set_config('dragonfly.refresh_chunk_size', %s, true)", (chunk,))
            # Night 1 left the book settled; the changes of day 2 (some only the clock sees).
            clock_back(conn)
            for change in changes:
                apply(conn, cases, change)
            conn.execute("savepoint day2")
            marked = run_pass(conn)
            assert progress(conn)["mode"] == "marked"
            after_marked = fingerprint(conn, ids)
            conn.execute("rollback to savepoint day2")
            full = run_pass(conn, full=True)
            assert progress(conn)["mode"] == "full"
            assert fingerprint(conn, ids) == after_marked
            assert marked == full
        finally:
            conn.rollback()


# ---------------------------------------------------------------------------------------
# Each path on its own, beside drift only a full pass sees


def drift(conn: Conn, case: Seeded) -> None:
    """A court case re-scored behind the triggers' back."""
    unmarked(
        conn,
        "update judgments.cases set collectability_score = 5 where id = %s",
        (case.court_case_id,),
    )
    # (the court-case trigger ignores the refresh flag; take its mark back)
    conn.execute(
        "delete from enforcement_private.refresh_marks where case_id = %s", (case.case_id,)
    )


def test_a_marked_pass_reads_only_marked_cases_and_a_full_pass_reads_all(
    fresh_db_url: str,
) -> None:
    written, drifted = (seeded(fresh_db_url, score="80", tier="tier0") for _ in range(2))
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(WHOLE_PASS)
        assert progress(conn)["mode"] == "full"  # the first pass after the migration
        assert one(conn, "select count(*) from enforcement_private.refresh_marks") == 0
    with connect(fresh_db_url) as conn:
        conn.execute(
            "update judgments.cases set collectability_score = 30 where id = %s",
            (written.court_case_id,),
        )
        drift(conn, drifted)
        conn.commit()
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(WHOLE_PASS)
        state = progress(conn)
        assert state["mode"] == "marked"
        assert state["totals"]["tiers_changed"] == 1
        assert case_row(conn, written.case_id or "", "tier") == ("tier2",)
        assert case_row(conn, drifted.case_id or "", "tier") == ("tier0",)
        # The refresh's own writes leave no marks behind.
        assert one(conn, "select count(*) from enforcement_private.refresh_marks") == 0
        conn.execute(FULL_PASS)
        assert progress(conn)["mode"] == "full"
        assert progress(conn)["totals"]["tiers_changed"] == 1
        assert case_row(conn, drifted.case_id or "", "tier") == ("tier3",)


def test_a_case_that_falls_due_is_resurfaced_by_the_clock(fresh_db_url: str) -> None:
    due, drifted = (seeded(fresh_db_url) for _ in range(2))
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(WHOLE_PASS)
    with connect(fresh_db_url) as conn:
        clock_back(conn, "2 hours")
        unmarked(
            conn,
            "update public.enforcement_cases set next_action_at = now() - interval '1 hour' "
            "where id = %s",
            (due.case_id,),
        )
        # Due before the clock's last look and never resurfaced: drift, not the clock's.
        unmarked(
            conn,
            "update public.enforcement_cases set next_action_at = now() - interval '3 hours' "
            "where id = %s",
            (drifted.case_id,),
        )
        conn.commit()
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(WHOLE_PASS)
        assert progress(conn)["mode"] == "marked"
        assert progress(conn)["totals"]["resurfaced"] == 1
        assert (resurfaced(conn, due.case_id or ""), resurfaced(conn, drifted.case_id or "")) == (
            1,
            0,
        )
        conn.execute(WHOLE_PASS)  # once per due date
        assert progress(conn)["totals"]["resurfaced"] == 0
        conn.execute(FULL_PASS)
        assert progress(conn)["totals"]["resurfaced"] == 1
        assert resurfaced(conn, drifted.case_id or "") == 1


def test_an_override_that_expires_is_cleared_by_the_clock(fresh_db_url: str) -> None:
    expiring, drifted = (seeded(fresh_db_url, score="80", tier="tier0") for _ in range(2))
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(WHOLE_PASS)
    with connect(fresh_db_url) as conn:
        clock_back(conn, "2 hours")
        for case, ago in ((expiring, "1 hour"), (drifted, "3 hours")):
            unmarked(
                conn,
                "update public.enforcement_cases set tier = 'tier3', tier_reason = 'override', "
                "tier_override = 'tier3', override_expires_at = now() - %s::interval, "
                "override_note = 'temporary' where id = %s",
                (ago, case.case_id),
            )
        conn.commit()
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(WHOLE_PASS)
        assert progress(conn)["totals"]["overrides_expired"] == 1
        assert case_row(conn, expiring.case_id or "", "tier, tier_override") == ("tier0", None)
        assert case_row(conn, drifted.case_id or "", "tier_override") == ("tier3",)
        conn.execute(FULL_PASS)
        assert progress(conn)["totals"]["overrides_expired"] == 1


def test_a_deleted_sla_resurfaced_event_marks_its_case(fresh_db_url: str) -> None:
    case = seeded(fresh_db_url)
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(
            "update public.enforcement_cases set next_action_at = now() - interval '1 day' "
            "where id = %s",
            (case.case_id,),
        )
        conn.execute(WHOLE_PASS)
        assert resurfaced(conn, case.case_id or "") == 1
        conn.execute(
            "delete from public.enforcement_events "
            "where enforcement_case_id = %s and event_kind = 'sla_resurfaced'",
            (case.case_id,),
        )
        conn.execute(WHOLE_PASS)
        assert progress(conn)["mode"] == "marked"
        assert resurfaced(conn, case.case_id or "") == 1


def test_a_lookup_change_or_an_old_full_pass_makes_the_next_pass_full(
    fresh_db_url: str,
) -> None:
    seeded(fresh_db_url)
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(WHOLE_PASS)
        conn.execute(WHOLE_PASS)
        assert progress(conn)["mode"] == "marked"
        conn.execute("update public.enforcement_stage_lookup set sla_days = sla_days")
        assert progress(conn)["full_requested"] is True
        conn.execute(WHOLE_PASS)
        assert (progress(conn)["mode"], progress(conn)["full_requested"]) == ("full", False)
        conn.execute(WHOLE_PASS)
        assert progress(conn)["mode"] == "marked"
        conn.execute(
            "update enforcement_private.refresh_progress "
            "set last_full_started_at = now() - interval '8 days'"
        )
        conn.execute(WHOLE_PASS)
        assert progress(conn)["mode"] == "full"
        conn.execute("set dragonfly.refresh_full_every = '1 hour'")
        conn.execute(WHOLE_PASS)
        assert progress(conn)["mode"] == "marked"


def test_a_case_the_refresh_could_not_lock_keeps_its_mark(fresh_db_url: str) -> None:
    busy, free = sorted(
        (seeded(fresh_db_url, score="80", tier="tier0") for _ in range(2)),
        key=lambda s: s.case_id or "",
    )
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(WHOLE_PASS)
        conn.execute(
            "update judgments.cases set collectability_score = 30 where id = any(%s::uuid[])",
            ([busy.court_case_id, free.court_case_id],),
        )
    with connect(fresh_db_url) as holder, connect(fresh_db_url, autocommit=True) as conn:
        holder.execute(
            "select 1 from public.enforcement_cases where id = %s for no key update",
            (busy.case_id,),
        )
        conn.execute("set dragonfly.refresh_lock_wait = '10ms'")
        conn.execute(WHOLE_PASS)
        assert progress(conn)["totals"]["skipped_locked"] == 1
        assert case_row(conn, free.case_id or "", "tier") == ("tier2",)
        holder.rollback()
        conn.execute(WHOLE_PASS)
        assert progress(conn)["mode"] == "marked"
        assert progress(conn)["totals"]["tiers_changed"] == 1
        assert case_row(conn, busy.case_id or "", "tier") == ("tier2",)


# ---------------------------------------------------------------------------------------
# A step holds its locks for one slice past its budget


def test_a_step_stops_after_the_slice_that_spends_its_lock_budget(fresh_db_url: str) -> None:
    made = [seeded(fresh_db_url, score="80", tier="tier0") for _ in range(5)]
    ids = sorted(s.case_id or "" for s in made)
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute(WHOLE_PASS)
        conn.execute(
            "update judgments.cases set collectability_score = 10 where id = any(%s::uuid[])",
            ([s.court_case_id for s in made],),
        )
    with connect(fresh_db_url) as refresh, connect(fresh_db_url) as console:
        refresh.execute("set dragonfly.refresh_write_batch = '2'")
        refresh.execute("set dragonfly.refresh_lock_budget = '0'")
        step = one(refresh, "select public.refresh_enforcement_metrics()")
        # Not committed yet: the step's locks are held. It wrote the first slice only ...
        assert step["cases_changed"] == 2
        assert progress(refresh)["phase"] == "cases"
        # ... so a case of its chunk past the slice is free for the console now,
        console.execute("set lock_timeout = '200ms'")
        rpc(console, "log_enforcement_event", {"case_id": ids[2], "event_kind": "note_added"})
        console.commit()
        # while a case of the slice waits for the step's commit.
        with pytest.raises(psycopg.errors.LockNotAvailable):
            rpc(console, "log_enforcement_event", {"case_id": ids[0], "event_kind": "note_added"})
        console.rollback()
        refresh.commit()
        assert progress(refresh)["after_id"] == ids[1]
        refresh.commit()
    with connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("set dragonfly.refresh_write_batch = '2'")
        conn.execute("set dragonfly.refresh_lock_budget = '0'")
        conn.execute(WHOLE_PASS)
        state = progress(conn)
        assert state["totals"]["tiers_changed"] == 5
        assert state["steps"] >= 3
        tiers = conn.execute(
            "select tier from public.enforcement_cases where id = any(%s::uuid[])", (ids,)
        ).fetchall()
        assert tiers == [("tier3",)] * 5


def test_bad_write_settings_are_refused(fresh_db_url: str) -> None:
    for setting, value in (
        ("dragonfly.refresh_write_batch", "0"),
        ("dragonfly.refresh_lock_budget", "soon"),
        ("dragonfly.refresh_full_every", "weekly"),
    ):
        seeded(fresh_db_url)
        with connect(fresh_db_url) as conn:
            conn.execute(f"set {setting} = '{value}'")
            with pytest.raises(psycopg.Error) as refused:
                conn.execute("select public.refresh_enforcement_metrics(true)")
            assert refused.value.sqlstate == "22023", setting
