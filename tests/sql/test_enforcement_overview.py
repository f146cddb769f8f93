"""v_enforcement_overview and the trigger-kept totals behind it (migration ...002790).

The view must always equal a direct aggregate of the open cases the caller can see: after
every kind of change, under row-level security that hides cases, in replica mode, after a
TRUNCATE, for writers in REPEATABLE READ, and after the totals were desynchronized by hand
(the nightly resync repairs them). The reference below is the direct aggregate the view
used to be. Concurrent, committed writers are in tests/integration/test_enforcement_concurrency.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.sql.enforcement_seed import Seeded, act_as, one, rpc, seed

Conn = psycopg.Connection[Any]

COLUMNS = (
    "tier, current_stage, case_count, stage_balance, sla_breach_count, due_count, "
    "next_action_at, max_days_in_stage, tier_case_count, tier_balance, tier_sla_breach_count"
)

# Every open case aggregated on the spot: what the view must return.
REFERENCE = """
with per_stage as (
    select
        case
            when c.tier_override is not null
                 and (c.override_expires_at is null or c.override_expires_at > now())
                then c.tier_override
            else c.tier
        end as tier,
        c.current_stage,
        count(*) as case_count,
        sum(c.current_balance) as stage_balance,
        count(*) filter (
            where c.stage_entered_at + make_interval(days => s.sla_days) < now()
        ) as sla_breach_count,
        count(*) filter (where c.next_action_at <= now()) as due_count,
        min(c.next_action_at) as next_action_at,
        min(c.stage_entered_at) as oldest
    from public.enforcement_cases as c
    join public.enforcement_stage_lookup as s on s.stage = c.current_stage
    where c.closed_at is null
    group by 1, 2
)
select
    ps.tier, ps.current_stage, ps.case_count, ps.stage_balance, ps.sla_breach_count,
    ps.due_count, ps.next_action_at,
    floor(extract(epoch from now() - ps.oldest) / 86400)::integer,
    sum(ps.case_count) over (partition by ps.tier),
    sum(ps.stage_balance) over (partition by ps.tier),
    sum(ps.sla_breach_count) over (partition by ps.tier)
from per_stage as ps
join public.enforcement_stage_lookup as st on st.stage = ps.current_stage
left join public.enforcement_tier_lookup as t on t.tier = ps.tier
order by t.rank nulls last, st.ordinal
"""


def overview(db: Conn) -> list[tuple[Any, ...]]:
    return db.execute(f"select {COLUMNS} from public.v_enforcement_overview").fetchall()


def reference(db: Conn) -> list[tuple[Any, ...]]:
    return db.execute(REFERENCE).fetchall()


def drift(db: Conn) -> list[tuple[Any, ...]]:
    return db.execute("select * from enforcement_private.overview_rollup_drift()").fetchall()


def assert_exact(db: Conn) -> None:
    assert drift(db) == []
    assert overview(db) == reference(db)


def book(db: Conn) -> list[Seeded]:
    """Open cases in several tiers (one without a tier) with different balances."""
    return [
        seed(db, tier="tier0", score="90", amount="100.00"),
        seed(db, tier="tier0", score="80", amount="250.50"),
        seed(db, tier="tier1", score="60", amount="75.25"),
        seed(db, tier="tier2", score="30", amount="999.99"),
        seed(db, tier=None, score=None, amount="10.00"),
        seed(db, tier=None, score=None, amount="20.00"),
    ]


def test_the_view_keeps_its_columns(db: Conn) -> None:
    """The spec's columns in their places, then the tenant (migration 20261203110100)."""
    columns = [
        r[0]
        for r in db.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'public' and table_name = 'v_enforcement_overview' "
            "order by ordinal_position"
        ).fetchall()
    ]
    assert ", ".join(columns) == COLUMNS + ", tenant_id"


def test_exact_after_every_kind_of_change(db: Conn) -> None:
    cases = book(db)
    assert_exact(db)
    a, b, c, d, e, f = (s.case_id for s in cases)

    steps: list[tuple[str, Any]] = [
        ("stage", lambda: rpc(db, "set_enforcement_stage", {"case_id": a, "stage": "bank_levy"})),
        (
            "payment",
            lambda: rpc(db, "record_enforcement_payment", {"case_id": b, "amount": "50.25"}),
        ),
        (
            "payment, unscored",
            lambda: rpc(db, "record_enforcement_payment", {"case_id": e, "amount": "1"}),
        ),
        ("close", lambda: rpc(db, "close_enforcement_case", {"case_id": c, "status": "withdrawn"})),
        (
            "no-op for the totals",
            lambda: rpc(db, "log_enforcement_event", {"case_id": d, "event_kind": "note_added"}),
        ),
        (
            "tier change",
            lambda: db.execute(
                "update public.enforcement_cases set tier = 'tier3' where id = %s", (d,)
            ),
        ),
        (
            "override until next week",
            lambda: db.execute(
                "update public.enforcement_cases set tier_override = 'tier1', "
                "override_expires_at = now() + interval '7 days' where id = %s",
                (a,),
            ),
        ),
        (
            "override that has expired",
            lambda: db.execute(
                "update public.enforcement_cases set tier_override = 'tier0', "
                "override_expires_at = now() - interval '1 hour' where id = %s",
                (f,),
            ),
        ),
        (
            "override without expiry",
            lambda: db.execute(
                "update public.enforcement_cases set tier_override = 'tier2' where id = %s", (e,)
            ),
        ),
        (
            "override cleared",
            lambda: db.execute(
                "update public.enforcement_cases set tier_override = null, "
                "override_expires_at = null where id = %s",
                (a,),
            ),
        ),
        (
            "clock-dependent columns",
            lambda: db.execute(
                "update public.enforcement_cases set "
                "stage_entered_at = now() - interval '40 days', "
                "next_action_at = now() - interval '1 day' where id = any(%s::uuid[])",
                ([b, d],),
            ),
        ),
        (
            "many rows in one statement",
            lambda: db.execute(
                "update public.enforcement_cases set current_balance = current_balance + 1 "
                "where closed_at is null"
            ),
        ),
        ("nightly refresh", lambda: one(db, "select public.refresh_enforcement_metrics()")),
        (
            "delete",
            lambda: db.execute("delete from public.enforcement_cases where id = %s", (b,)),
        ),
        ("a new case", lambda: seed(db, tier="tier3", score="10", amount="5.00")),
    ]
    for label, step in steps:
        step()
        assert drift(db) == [], label
        assert overview(db) == reference(db), label


def test_an_override_counts_in_its_tier_until_it_expires(db: Conn) -> None:
    s = seed(db, tier="tier0", score="90", amount="40.00")
    seed(db, tier="tier0", score="90", amount="2.00")

    def tier0_and_tier3() -> list[tuple[Any, ...]]:
        return [(r[0], r[2], r[3]) for r in overview(db) if r[1] == "pre_enforcement"]

    db.execute(
        "update public.enforcement_cases set tier_override = 'tier3', "
        "override_expires_at = now() + interval '1 day' where id = %s",
        (s.case_id,),
    )
    assert tier0_and_tier3() == [("tier0", 1, Decimal("2.00")), ("tier3", 1, Decimal("40.00"))]
    # Expiry is a matter of the clock: no write to the rollup happens, the view still moves it.
    db.execute(
        "update public.enforcement_cases set override_expires_at = now() - interval '1 second' "
        "where id = %s",
        (s.case_id,),
    )
    assert tier0_and_tier3() == [("tier0", 2, Decimal("42.00"))]
    assert_exact(db)


def test_exact_as_the_operator_under_row_level_security(db: Conn) -> None:
    book(db)
    act_as(db, "enforcement_operator")
    assert overview(db) == reference(db)
    assert overview(db) != []


def test_groups_the_caller_cannot_fully_see_are_summed_from_visible_rows(db: Conn) -> None:
    """A narrower case policy: the totals cover hidden cases, so the view must not use them."""
    cases = book(db)
    hidden = cases[1].case_id  # tier0, 250.50: tier0 / pre_enforcement has one more case
    db.execute(
        sql.SQL(
            'create policy "Test hides one case" on public.enforcement_cases as restrictive '
            "for select to enforcement_operator using (id <> {}::uuid)"
        ).format(sql.Literal(hidden))
    )
    act_as(db, "enforcement_operator")
    rows = {(r[0], r[1]): r for r in overview(db)}
    assert rows[("tier0", "pre_enforcement")][2:4] == (1, Decimal("100.00"))
    assert overview(db) == reference(db)

    # Without the right to read the totals at all, every group is recounted: still exact.
    db.execute("reset role")
    db.execute(
        'drop policy "Members read their tenants\' overview totals" '
        "on public.enforcement_overview_rollup"
    )
    act_as(db, "enforcement_operator")
    assert one(db, "select count(*) from public.enforcement_overview_rollup") == 0
    assert overview(db) == reference(db)


def test_changes_in_replica_mode_are_counted(db: Conn) -> None:
    """Bulk loads often run with session_replication_role = replica: the totals follow.

    Such a load names the tenant itself: the trigger that copies it from the judgment is an
    ordinary one and does not fire in replica mode."""
    s = seed(db, open_case=False)
    db.execute("set local session_replication_role = replica")
    db.execute(
        "insert into public.enforcement_cases (judgment_id, plaintiff_id, tenant_id, tier, "
        "current_balance, created_by) values (%s, %s, tenancy.default_tenant_id(), 'tier1', "
        "123.45, 'bulk')",
        (s.judgment_id, s.plaintiff_id),
    )
    db.execute("set local session_replication_role = origin")
    assert_exact(db)
    assert ("tier1", "pre_enforcement") in {(r[0], r[1]) for r in overview(db)}


def test_truncate_empties_the_totals(db: Conn) -> None:
    book(db)
    db.execute("truncate public.enforcement_cases cascade")
    assert one(db, "select count(*) from public.enforcement_overview_rollup") == 0
    assert one(db, "select count(*) from public.enforcement_overview_rollup_deltas") == 0
    assert overview(db) == []
    seed(db, tier="tier1", score="60")
    assert_exact(db)


def test_writers_fold_their_deltas_into_the_totals(db: Conn) -> None:
    book(db)
    # This transaction holds the fold lock since its first write and folds every time.
    assert one(db, "select count(*) from public.enforcement_overview_rollup_deltas") == 0
    assert one(db, "select count(*) from public.enforcement_overview_rollup") > 0
    assert_exact(db)


def test_a_writer_in_repeatable_read_appends_without_folding(db: Conn) -> None:
    db.execute("set transaction isolation level repeatable read")
    cases = book(db)
    assert one(db, "select count(*) from public.enforcement_overview_rollup_deltas") > 0
    rpc(db, "record_enforcement_payment", {"case_id": cases[0].case_id, "amount": "1.00"})
    assert_exact(db)


def test_the_nightly_resync_repairs_totals_desynchronized_by_hand(db: Conn) -> None:
    cases = book(db)
    trigger = "enforcement_cases_overview_rollup_update"
    db.execute(f"alter table public.enforcement_cases disable trigger {trigger}")
    db.execute(
        "update public.enforcement_cases set current_balance = 1 where id = %s", (cases[0].case_id,)
    )
    db.execute(
        "update public.enforcement_cases set tier = 'tier3' where id = %s", (cases[2].case_id,)
    )
    db.execute(f"alter table public.enforcement_cases enable always trigger {trigger}")
    assert len(drift(db)) == 3  # tier0 balance, tier1 and tier3 counts
    result = one(db, "select public.refresh_enforcement_metrics()")
    assert result["overview_totals_resynced"] == 3
    assert_exact(db)
    assert one(db, "select public.refresh_enforcement_metrics()")["overview_totals_resynced"] == 0


def test_the_totals_are_read_only_and_the_helpers_private(db: Conn) -> None:
    for table in (
        "public.enforcement_overview_rollup",
        "public.enforcement_overview_rollup_deltas",
    ):
        assert one(db, "select relrowsecurity from pg_class where oid = %s::regclass", (table,))
        for role in ("anon", "dragonfly_worker"):
            assert not one(
                db,
                "select has_table_privilege(%s, %s, 'select,insert,update,delete')",
                (role, table),
            )
        # Signed-in members read their tenants' rows (tests/sql/test_tenant_rollup.py).
        for role in ("authenticated", "enforcement_operator", "service_role"):
            assert one(db, "select has_table_privilege(%s, %s, 'select')", (role, table))
            assert not one(
                db,
                "select has_table_privilege(%s, %s, 'insert,update,delete,truncate')",
                (role, table),
            )
    for function in (
        "enforcement_private.fold_overview_rollup()",
        "enforcement_private.resync_overview_rollup()",
        "enforcement_private.overview_rollup_drift()",
    ):
        for role in (
            "anon",
            "authenticated",
            "enforcement_operator",
            "dragonfly_worker",
            "service_role",
        ):
            assert not one(db, "select has_function_privilege(%s, %s, 'execute')", (role, function))
    triggers = db.execute(
        "select tgname, tgenabled from pg_trigger "
        "where tgrelid = 'public.enforcement_cases'::regclass and tgname like '%overview_rollup%' "
        "order by 1"
    ).fetchall()
    assert [t[0] for t in triggers] == [
        "enforcement_cases_overview_rollup_delete",
        "enforcement_cases_overview_rollup_insert",
        "enforcement_cases_overview_rollup_truncate",
        "enforcement_cases_overview_rollup_update",
    ]
    assert {t[1] for t in triggers} == {"A"}  # ENABLE ALWAYS


@pytest.mark.parametrize("role", ["enforcement_operator", "service_role"])
def test_the_overview_reads_the_totals_and_the_index(fresh_db_url: str, role: str) -> None:
    """No sequential scan of enforcement_cases and no sum over its balances.

    On a database of its own: the shared test database's planner statistics depend on what
    the tests before this one wrote and rolled back (dead rows, autovacuum's ANALYZE)."""
    with psycopg.connect(fresh_db_url, autocommit=False) as db:
        try:
            _check_overview_plan(db, role)
        finally:
            db.rollback()


def _check_overview_plan(db: Conn, role: str) -> None:
    book(db)
    db.execute("set local enable_seqscan = off")  # the test book is too small to be realistic
    act_as(db, role)
    plan = "\n".join(
        r[0] for r in db.execute("explain select * from public.v_enforcement_overview").fetchall()
    )
    assert "enforcement_cases_overview_idx" in plan
    assert "enforcement_overview_rollup" in plan
