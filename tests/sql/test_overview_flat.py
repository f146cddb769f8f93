"""The flat v_enforcement_overview (migrations 20261204100000 to 20261204100200).

The SLA-breach and due counts come from day buckets kept by the totals' triggers, plus a
slice of the cutoff's day read from an index; the earliest next action and the oldest stage
entry from one index probe per group; the totals are trusted when the row-level security is
the migrations' and no ALTER TABLE of enforcement_cases happened since the last repair
(``tenancy.overview_totals_trusted()``), else the view takes the exact per-row path.

Checked here: the buckets after every kind of change (drift-free and equal to a direct count),
the boundaries at the cutoff and at midnight UTC in any session time zone, the view against a
direct aggregate for every kind of caller on generated books (Hypothesis), the fallback under
other policies, and that the read touches about as many pages with 20k open cases as with 2k.
The overview's older tests (tests/sql/test_enforcement_overview.py, test_tenant_rollup.py)
run unchanged against the same view.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from tests.sql.enforcement_seed import DEFAULT_TENANT, act_as, one, rpc, seed

Conn = psycopg.Connection[Any]

COLUMNS = (
    "tier, current_stage, case_count, stage_balance, sla_breach_count, due_count, "
    "next_action_at, max_days_in_stage, tier_case_count, tier_balance, tier_sla_breach_count, "
    "tenant_id"
)

# Every open case of the given tenants aggregated on the spot: what the view must return to a
# caller who reaches exactly those tenants.
REFERENCE = """
with per_stage as (
    select
        c.tenant_id,
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
            where c.stage_entered_at < now() - make_interval(days => s.sla_days)
        ) as sla_breach_count,
        count(*) filter (where c.next_action_at <= now()) as due_count,
        min(c.next_action_at) as next_action_at,
        min(c.stage_entered_at) as oldest
    from public.enforcement_cases as c
    join public.enforcement_stage_lookup as s on s.stage = c.current_stage
    where c.closed_at is null and c.tenant_id = any(%(tenants)s::uuid[])
    group by 1, 2, 3
)
select
    ps.tier, ps.current_stage, ps.case_count, ps.stage_balance, ps.sla_breach_count,
    ps.due_count, ps.next_action_at,
    floor(extract(epoch from now() - ps.oldest) / 86400)::integer,
    sum(ps.case_count) over (partition by ps.tenant_id, ps.tier),
    sum(ps.stage_balance) over (partition by ps.tenant_id, ps.tier),
    sum(ps.sla_breach_count) over (partition by ps.tenant_id, ps.tier),
    ps.tenant_id
from per_stage as ps
join public.enforcement_stage_lookup as st on st.stage = ps.current_stage
left join public.enforcement_tier_lookup as t on t.tier = ps.tier
order by ps.tenant_id, t.rank nulls last, st.ordinal
"""

# The buckets as a reader sees them (folded rows plus pending deltas), and as they should be.
BUCKETS = """
select tenant_id::text, tier, current_stage, day, sum(entered_count)::int, sum(action_count)::int
from (
    select tenant_id, tier, current_stage, day, entered_count, action_count
      from public.enforcement_overview_days
    union all
    select tenant_id, tier, current_stage, day, entered_count, action_count
      from public.enforcement_overview_days_deltas
) as b
group by 1, 2, 3, 4
having sum(entered_count) <> 0 or sum(action_count) <> 0
order by 1, 2 nulls last, 3, 4
"""
EXPECTED_BUCKETS = """
select c.tenant_id::text, c.tier, c.current_stage, x.day, sum(x.entered)::int, sum(x.action)::int
from public.enforcement_cases as c
cross join lateral (
    values ((c.stage_entered_at at time zone 'UTC')::date, 1, 0),
           ((c.next_action_at at time zone 'UTC')::date, 0, 1)
) as x (day, entered, action)
where c.closed_at is null and c.tier_override is null and x.day is not null
group by 1, 2, 3, 4
order by 1, 2 nulls last, 3, 4
"""

TIERS = [None, "tier0", "tier1", "tier2", "tier3"]
STAGES = [
    "pre_enforcement",
    "asset_search",
    "information_subpoena",
    "bank_levy",
    "wage_garnishment",
    "marshal_execution",
    "payment_plan",
]


def new_id() -> str:
    return str(uuid.uuid4())


def overview(db: Conn) -> list[tuple[Any, ...]]:
    return db.execute(f"select {COLUMNS} from public.v_enforcement_overview").fetchall()


def reference(db: Conn, tenants: list[str]) -> list[tuple[Any, ...]]:
    return db.execute(REFERENCE, {"tenants": tenants}).fetchall()


def all_tenants(db: Conn) -> list[str]:
    return [r[0] for r in db.execute("select id::text from public.tenants").fetchall()]


def trusted(db: Conn) -> bool:
    return bool(one(db, "select tenancy.overview_totals_trusted()"))


def assert_buckets_exact(db: Conn, label: str = "") -> None:
    assert db.execute("select * from enforcement_private.overview_days_drift()").fetchall() == []
    assert db.execute("select * from enforcement_private.overview_rollup_drift()").fetchall() == []
    assert db.execute(BUCKETS).fetchall() == db.execute(EXPECTED_BUCKETS).fetchall(), label


def assert_view_exact(db: Conn, label: str = "") -> None:
    """As the owner, the enforcement operator and service_role: the direct aggregate."""
    tenants = all_tenants(db)
    assert overview(db) == reference(db, tenants), label
    for role in ("enforcement_operator", "service_role"):
        with db.transaction(force_rollback=True):
            act_as(db, role)
            assert overview(db) == reference(db, tenants), (label, role)


@contextmanager
def as_member(db: Conn, user: str) -> Iterator[None]:
    """A signed-in member (role authenticated, the JWT's sub), in a rolled-back savepoint."""
    with db.transaction(force_rollback=True):
        act_as(db, "authenticated", user, "member@example.test")
        yield


def member(db: Conn, tenant: str, role: str) -> str:
    user = new_id()
    db.execute(
        "insert into auth.users (id, email) values (%s, %s)", (user, f"{user[:8]}@example.test")
    )
    db.execute(
        "insert into public.tenant_members (tenant_id, user_id, role) values (%s, %s, %s)",
        (tenant, user, role),
    )
    return user


def new_tenant(db: Conn, slug: str) -> str:
    tid = new_id()
    db.execute(
        "insert into public.tenants (id, slug, name) values (%s, %s, %s)",
        (tid, f"{slug}-{tid[:8]}", slug.title()),
    )
    return tid


def judgments(db: Conn, tenant: str, n: int) -> list[str]:
    """``n`` judgments of one plaintiff of ``tenant``, set-based; their ids."""
    pid = new_id()
    db.execute(
        "insert into public.plaintiffs (id, name, status, tenant_id) values (%s, 'P', 'new', %s)",
        (pid, tenant),
    )
    rows = db.execute(
        "insert into public.judgments (plaintiff_id, debtor_name, judgment_amount, balance_due, "
        "priority_level, status, county, state) "
        "select %s, 'Debtor ' || g, 1000, 1000, 'normal', 'active', 'Kings', 'NY' "
        "from generate_series(1, %s) g returning id::text",
        (pid, n),
    ).fetchall()
    return [r[0] for r in rows]


def set_case(db: Conn, case_id: str, **columns: Any) -> None:
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in columns
    )
    db.execute(
        sql.SQL("update public.enforcement_cases set {} where id = %(id)s").format(assignments),
        {**columns, "id": case_id},
    )


# --------------------------------------------------------------------------------------
# The buckets follow every change


def test_the_buckets_follow_every_kind_of_change(db: Conn) -> None:
    other = new_tenant(db, "other")
    cases = [
        seed(db, tier="tier0", score="90", amount="100.00").case_id,
        seed(db, tier="tier1", score="60", amount="75.25").case_id,
        seed(db, tier=None, score=None, amount="10.00").case_id,
        seed(db, tier="tier2", score="30", amount="20.00", tenant=other).case_id,
        seed(db, tier="tier2", score="30", amount="30.00", tenant=other).case_id,
    ]
    a, b, c, d, e = (str(x) for x in cases)
    assert_buckets_exact(db, "opened")
    assert trusted(db)
    assert_view_exact(db, "opened")

    def days() -> list[tuple[Any, ...]]:
        return db.execute(BUCKETS).fetchall()

    steps: list[tuple[str, Any]] = [
        (
            "stage move",
            lambda: rpc(db, "set_enforcement_stage", {"case_id": a, "stage": "bank_levy"}),
        ),
        (
            "entered 40 days ago, action yesterday",
            lambda: set_case(
                db,
                b,
                stage_entered_at=datetime.now().astimezone() - timedelta(days=40),
                next_action_at=datetime.now().astimezone() - timedelta(days=1),
            ),
        ),
        ("next action cleared", lambda: set_case(db, c, next_action_at=None)),
        ("tier change", lambda: set_case(db, d, tier="tier3")),
        ("override", lambda: set_case(db, e, tier_override="tier0")),
        ("override cleared", lambda: set_case(db, e, tier_override=None)),
        ("close", lambda: rpc(db, "close_enforcement_case", {"case_id": b, "status": "withdrawn"})),
        ("scored", lambda: set_case(db, c, tier="tier1")),
        ("delete", lambda: db.execute("delete from public.enforcement_cases where id = %s", (d,))),
        ("a new case", lambda: seed(db, tier="tier3", score="10", amount="5.00")),
        (
            "many rows in one statement",
            lambda: db.execute(
                "update public.enforcement_cases set stage_entered_at = stage_entered_at "
                "- interval '3 days 7 hours' where closed_at is null"
            ),
        ),
        ("nightly refresh", lambda: one(db, "select public.refresh_enforcement_metrics()")),
    ]
    for label, step in steps:
        step()
        assert_buckets_exact(db, label)
        assert_view_exact(db, label)

    # A payment moves no day: the buckets are written by nothing.
    before = days()
    deltas = one(db, "select count(*) from public.enforcement_overview_days_deltas")
    rpc(db, "record_enforcement_payment", {"case_id": a, "amount": "1.00"})
    assert days() == before
    assert one(db, "select count(*) from public.enforcement_overview_days_deltas") == deltas


def test_a_case_moved_to_another_tenant_moves_its_buckets(db: Conn) -> None:
    """A case never changes tenant (tenancy.inherited_tenant refuses it), but the triggers
    keep each side's tenant regardless; with the refusal switched off, the buckets follow."""
    other = new_tenant(db, "other")
    s = seed(db, tier="tier1", score="60")
    seed(db, tier="tier1", score="60", tenant=other)
    db.execute(
        "alter table public.enforcement_cases disable trigger enforcement_cases_inherit_tenant"
    )
    db.execute(
        "update public.enforcement_cases set tenant_id = %s where id = %s", (other, s.case_id)
    )
    db.execute(
        "alter table public.enforcement_cases "
        "enable always trigger enforcement_cases_inherit_tenant"
    )
    assert_buckets_exact(db)
    tenants = {r[0] for r in db.execute(BUCKETS).fetchall()}
    assert other in tenants
    # Altering enforcement_cases marked the totals suspect: the exact path, still exact ...
    assert not trusted(db)
    assert_view_exact(db)
    # ... until the nightly repair has checked them.
    one(db, "select public.refresh_enforcement_metrics()")
    assert trusted(db)
    assert_view_exact(db)


def test_a_case_lands_in_the_buckets_of_its_utc_days(db: Conn) -> None:
    db.execute("set local timezone = 'Pacific/Kiritimati'")  # UTC+14: local dates differ
    s = seed(db, tier="tier2", score="30")
    set_case(
        db,
        str(s.case_id),
        stage_entered_at="2026-03-01 23:30:00+00",
        next_action_at="2026-03-02 00:00:00+00",
    )
    rows = [r for r in db.execute(BUCKETS).fetchall() if r[1] == "tier2"]
    assert [(str(r[3]), r[4], r[5]) for r in rows] == [
        ("2026-03-01", 1, 0),
        ("2026-03-02", 0, 1),
    ]
    # Closing it empties both (once folded); the nightly repair drops the empty rows.
    rpc(db, "close_enforcement_case", {"case_id": s.case_id, "status": "withdrawn"})
    one(db, "select enforcement_private.fold_overview_days()")
    assert one(db, "select count(*) from public.enforcement_overview_days_deltas") == 0
    assert one(
        db,
        "select count(*) from public.enforcement_overview_days "
        "where entered_count = 0 and action_count = 0",
    )
    assert one(db, "select enforcement_private.resync_overview_days()") == 0
    assert not one(
        db,
        "select count(*) from public.enforcement_overview_days "
        "where entered_count = 0 and action_count = 0",
    )
    assert_buckets_exact(db)


def test_one_writer_in_eight_folds_the_day_deltas(fresh_db_url: str) -> None:
    """Committed writers, one transaction each: the day deltas are folded by those whose
    transaction id is a multiple of eight (migration 20261204100000), so they do not pile up,
    and the buckets stay exact throughout."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        case_id = str(seed(conn, tier="tier1", score="60").case_id)
        appended = 0
        for n in range(100):
            with conn.transaction():
                # Another day each time: two bucket rows out, two in.
                set_case(
                    conn,
                    case_id,
                    stage_entered_at=datetime.now().astimezone() - timedelta(days=n % 30),
                    next_action_at=datetime.now().astimezone() + timedelta(days=n % 7),
                )
                appended += 1
        pending = one(conn, "select count(*) from public.enforcement_overview_days_deltas")
        assert pending < appended  # some writer folded (odds of none: below one in a million)
        assert_buckets_exact(conn)
        one(conn, "select enforcement_private.resync_overview_days()")
        assert one(conn, "select count(*) from public.enforcement_overview_days_deltas") == 0
        assert_buckets_exact(conn)


def test_truncate_empties_the_buckets(db: Conn) -> None:
    seed(db, tier="tier1", score="60")
    db.execute("truncate public.enforcement_cases cascade")
    assert one(db, "select count(*) from public.enforcement_overview_days") == 0
    assert one(db, "select count(*) from public.enforcement_overview_days_deltas") == 0
    seed(db, tier="tier1", score="60")
    assert_buckets_exact(db)


def test_the_nightly_repair_rebuilds_buckets_desynchronized_by_hand(db: Conn) -> None:
    s = seed(db, tier="tier0", score="90")
    db.execute("delete from public.enforcement_overview_days")
    db.execute("delete from public.enforcement_overview_days_deltas")
    set_case(db, str(s.case_id), next_action_at=datetime.now().astimezone() + timedelta(days=3))
    assert db.execute("select * from enforcement_private.overview_days_drift()").fetchall() != []
    one(db, "select public.refresh_enforcement_metrics()")
    assert_buckets_exact(db)
    assert_view_exact(db)


def test_a_writer_in_repeatable_read_appends_bucket_deltas_without_folding(db: Conn) -> None:
    db.execute("set transaction isolation level repeatable read")
    seed(db, tier="tier1", score="60")
    assert one(db, "select count(*) from public.enforcement_overview_days_deltas") > 0
    assert_buckets_exact(db)
    assert_view_exact(db)


# --------------------------------------------------------------------------------------
# Boundaries


def test_the_boundaries_at_the_cutoff_and_at_midnight_utc(db: Conn) -> None:
    """Cases a microsecond either side of each cutoff and of the UTC midnights around it."""
    now = one(db, "select now()")
    sla = one(db, "select sla_days from public.enforcement_stage_lookup where stage = 'bank_levy'")
    breach_cut = one(db, "select now() - make_interval(days => %s)", (sla,))
    tick = timedelta(microseconds=1)

    def utc_midnight(moment: datetime, days: int = 0) -> datetime:
        return one(
            db,
            "select ((%s::timestamptz at time zone 'UTC')::date + %s)::timestamp "
            "at time zone 'UTC'",
            (moment, days),
        )

    entered = [
        breach_cut - tick,  # breached
        breach_cut,  # not: strictly before the cutoff
        breach_cut + tick,
        utc_midnight(breach_cut),  # the first instant of the cutoff's day: breached
        utc_midnight(breach_cut) - tick,  # the day before: breached, from the buckets
        utc_midnight(breach_cut, 1) - tick,  # the cutoff's day's last instant: not
        utc_midnight(breach_cut, 1),
        now,
    ]
    actions = [
        now,  # due: next_action_at <= now()
        now + tick,  # not
        now - tick,
        utc_midnight(now),  # today's first instant: due
        utc_midnight(now) - tick,  # yesterday's last: due, from the buckets
        utc_midnight(now, 1) - tick,  # today's last instant: not
        utc_midnight(now, 1),
        None,
    ]
    for when, action in zip(entered, actions, strict=True):
        s = seed(db, tier="tier1", score="60")
        rpc(db, "set_enforcement_stage", {"case_id": s.case_id, "stage": "bank_levy"})
        set_case(db, str(s.case_id), stage_entered_at=when, next_action_at=action)
    assert_buckets_exact(db)
    row = next(r for r in overview(db) if r[:2] == ("tier1", "bank_levy"))
    breached = sum(1 for when in entered if when < breach_cut)
    due = sum(1 for action in actions if action is not None and action <= now)
    assert (row[2], row[4], row[5]) == (8, breached, due)
    assert (breached, due) == (3, 4)
    assert row[6] == min(a for a in actions if a is not None)
    for zone in ("UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"):
        db.execute(sql.SQL("set local timezone = {}").format(sql.Literal(zone)))
        assert_view_exact(db, zone)


@pytest.mark.parametrize("offset", ["0", "1 microsecond", "11 hours 59 minutes", "12 hours"])
def test_both_halves_of_the_cutoff_day_count_alike(db: Conn, offset: str) -> None:
    """The view counts the cutoff's day forward from its midnight or backward from the next,
    whichever half is shorter, so which it takes depends on the time of day. Both formulas
    are evaluated here for a cutoff at several times of day, against a direct count."""
    seed(db, tier="tier1", score="60")
    for hours in range(0, 48, 3):
        t = seed(db, tier="tier1", score="60")
        set_case(
            db,
            str(t.case_id),
            stage_entered_at=one(
                db, "select date_trunc('day', now(), 'UTC') - make_interval(hours => %s)", (hours,)
            ),
        )
    counts = one(
        db,
        """
        with cut as (
            select date_trunc('day', now(), 'UTC') - interval '1 day' + %s::interval as c
        ),
        w as (
            select c, (c at time zone 'UTC')::date as d,
                   ((c at time zone 'UTC')::date)::timestamp at time zone 'UTC' as d0,
                   ((c at time zone 'UTC')::date + 1)::timestamp at time zone 'UTC' as d1
            from cut
        ),
        b as (
            select sum(r.entered_count) filter (where r.day < w.d) as before,
                   sum(r.entered_count) filter (where r.day <= w.d) as through
            from (
                select tier, current_stage, day, entered_count
                  from public.enforcement_overview_days
                union all
                select tier, current_stage, day, entered_count
                  from public.enforcement_overview_days_deltas
            ) r, w
            where r.tier = 'tier1' and r.current_stage = 'pre_enforcement'
        ),
        n as (
            select count(*) filter (where c.stage_entered_at >= w.d0 and c.stage_entered_at < w.c)
                       as forward,
                   count(*) filter (where c.stage_entered_at >= w.c and c.stage_entered_at < w.d1)
                       as backward,
                   count(*) filter (where c.stage_entered_at < w.c) as direct
            from public.enforcement_cases c, w
            where c.closed_at is null and c.tier_override is null and c.tier = 'tier1'
              and c.current_stage = 'pre_enforcement'
        )
        select array[coalesce(b.before, 0) + n.forward,
                     coalesce(b.through, 0) - n.backward,
                     n.direct]
        from b, n
        """,
        (offset,),
    )
    assert counts[0] == counts[1] == counts[2]


# --------------------------------------------------------------------------------------
# Every caller, generated books


@pytest.fixture
def two_tenants(db: Conn) -> dict[str, Any]:
    a, b = new_tenant(db, "alpha"), new_tenant(db, "bravo")
    return {
        "a": a,
        "b": b,
        "judgments": {a: judgments(db, a, 12), b: judgments(db, b, 12)},
        "operator_a": member(db, a, "operator"),
        "viewer_a": member(db, a, "viewer"),
        "viewer_b": member(db, b, "viewer"),
    }


# Offsets in minutes from now, dense around the interesting instants (a day is 1440).
OFFSETS = st.one_of(
    st.integers(min_value=-90 * 1440, max_value=30 * 1440),
    st.sampled_from([0, -1, 1, -1440, 1440, -30 * 1440, -60 * 1440, -14 * 1440]),
)
CASE = st.fixed_dictionaries(
    {
        "tenant": st.sampled_from(["a", "b"]),
        "tier": st.sampled_from(TIERS),
        "stage": st.sampled_from(STAGES),
        "entered": OFFSETS,
        "action": st.one_of(st.none(), OFFSETS),
        "override": st.one_of(
            st.none(), st.tuples(st.sampled_from(TIERS[1:]), st.none() | OFFSETS)
        ),
        "balance": st.integers(min_value=0, max_value=10_000),
    }
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(book=st.lists(CASE, min_size=0, max_size=12))
def test_the_flat_view_equals_the_direct_aggregate_for_every_caller(
    db: Conn, two_tenants: dict[str, Any], book: list[dict[str, Any]]
) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    with db.transaction(force_rollback=True):
        used = {a: 0, b: 0}
        for case in book:
            tenant = two_tenants[case["tenant"]]
            judgment = two_tenants["judgments"][tenant][used[tenant]]
            used[tenant] += 1
            override = case["override"]
            db.execute(
                "insert into public.enforcement_cases (judgment_id, plaintiff_id, tier, "
                "tier_override, override_expires_at, current_stage, stage_entered_at, "
                "next_action_at, current_balance, created_by) "
                "select j.id, j.plaintiff_id, %(tier)s, %(override)s, "
                "now() + make_interval(mins => %(expires)s), %(stage)s, "
                "now() + make_interval(mins => %(entered)s), "
                "now() + make_interval(mins => %(action)s), %(balance)s, 'hypothesis' "
                "from public.judgments j where j.id = %(judgment)s",
                {
                    "tier": case["tier"],
                    "override": override[0] if override else None,
                    "expires": override[1] if override else None,
                    "stage": case["stage"],
                    "entered": case["entered"],
                    "action": case["action"],
                    "balance": case["balance"],
                    "judgment": judgment,
                },
            )
        # Some of them closed afterwards, through the RPC's own path.
        for (case_id,) in db.execute(
            "select id from public.enforcement_cases where created_by = 'hypothesis' "
            "and current_balance % 3 = 0"
        ).fetchall():
            rpc(db, "close_enforcement_case", {"case_id": str(case_id), "status": "withdrawn"})
        assert_buckets_exact(db)
        assert trusted(db)
        everyone = all_tenants(db)
        assert overview(db) == reference(db, everyone)
        for role in ("service_role", "enforcement_operator"):
            with db.transaction(force_rollback=True):
                act_as(db, role)
                assert trusted(db)
                assert overview(db) == reference(db, everyone), role
        with db.transaction(force_rollback=True):
            act_as(db, "enforcement_operator")
            db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (b,))
            assert overview(db) == reference(db, [b])
        for user, tenants in (
            (two_tenants["operator_a"], [a]),
            (two_tenants["viewer_a"], [a]),
            (two_tenants["viewer_b"], [b]),
        ):
            with as_member(db, user):
                assert trusted(db)
                assert overview(db) == reference(db, tenants)
        with as_member(db, new_id()):  # signed in, member of nothing
            assert overview(db) == []


# --------------------------------------------------------------------------------------
# Trust: the policies, and the suspect mark


def test_a_restrictive_policy_sends_the_view_down_the_exact_path(db: Conn) -> None:
    cases = [seed(db, tier="tier0", score="90", amount=f"{n}.00").case_id for n in (1, 2, 3)]
    assert trusted(db)
    db.execute(
        sql.SQL(
            'create policy "Test hides one case" on public.enforcement_cases as restrictive '
            "for select to enforcement_operator using (id <> {}::uuid)"
        ).format(sql.Literal(cases[0]))
    )
    assert not trusted(db)
    with db.transaction(force_rollback=True):
        act_as(db, "enforcement_operator")
        rows = {(r[0], r[1]): r for r in overview(db)}
        assert rows[("tier0", "pre_enforcement")][2] == 2
        visible = db.execute(
            "select id::text from public.enforcement_cases where tenant_id = %s",
            (DEFAULT_TENANT,),
        ).fetchall()
        assert str(cases[0]) not in {r[0] for r in visible}
    db.execute('drop policy "Test hides one case" on public.enforcement_cases')
    assert trusted(db)


@pytest.mark.parametrize(
    "change",
    [
        "alter table public.enforcement_overview_days disable row level security",
        "alter table public.enforcement_overview_days force row level security",
        'alter policy "Members read their tenants\' overview days" '
        "on public.enforcement_overview_days using (true)",
        'alter policy "Members read their tenants\' cases" on public.enforcement_cases '
        "to authenticated",
        'create policy "Test: more" on public.enforcement_overview_rollup for select '
        "to enforcement_operator using (true)",
        'drop policy "Members see their tenants" on public.tenants',
    ],
)
def test_any_other_row_level_security_is_not_trusted(db: Conn, change: str) -> None:
    seed(db, tier="tier1", score="60")
    assert trusted(db)
    db.execute(change)
    assert not trusted(db)
    # Recording the new policies trusts them (what a migration that changes them on purpose
    # does), the nightly repair clears the suspect mark an ALTER TABLE may have left.
    one(db, "select enforcement_private.resync_overview_rollup()")
    one(db, "select enforcement_private.record_overview_policies()")
    assert trusted(db)


def test_altering_enforcement_cases_marks_the_totals_suspect_until_the_repair(db: Conn) -> None:
    seed(db, tier="tier1", score="60")
    db.execute("alter table public.enforcement_cases alter column notes set default 'x'")
    assert not trusted(db)
    assert one(db, "select count(*) from enforcement_private.overview_totals_suspect") == 1
    # Other tables are not its business.
    db.execute("alter table public.plaintiffs alter column name set default 'x'")
    assert one(db, "select count(*) from enforcement_private.overview_totals_suspect") == 1
    one(db, "select public.refresh_enforcement_metrics()")
    assert trusted(db)


def test_the_new_objects_are_private_or_read_only(db: Conn) -> None:
    for table in ("public.enforcement_overview_days", "public.enforcement_overview_days_deltas"):
        assert one(db, "select relrowsecurity from pg_class where oid = %s::regclass", (table,))
        for role in ("anon", "dragonfly_worker"):
            assert not one(
                db,
                "select has_table_privilege(%s, %s, 'select,insert,update,delete')",
                (role, table),
            )
        for role in ("authenticated", "enforcement_operator", "service_role"):
            assert one(db, "select has_table_privilege(%s, %s, 'select')", (role, table))
            assert not one(
                db,
                "select has_table_privilege(%s, %s, 'insert,update,delete,truncate')",
                (role, table),
            )
    roles = ("anon", "authenticated", "enforcement_operator", "dragonfly_worker", "service_role")
    for function in (
        "enforcement_private.overview_days_drift()",
        "enforcement_private.resync_overview_days()",
        "enforcement_private.fold_overview_days()",
        "enforcement_private.overview_policy_fingerprint()",
        "enforcement_private.record_overview_policies()",
    ):
        for role in roles:
            assert not one(db, "select has_function_privilege(%s, %s, 'execute')", (role, function))
    trust = "tenancy.overview_totals_trusted()"
    assert not one(db, "select has_function_privilege('anon', %s, 'execute')", (trust,))
    for role in ("authenticated", "enforcement_operator", "service_role"):
        assert one(db, "select has_function_privilege(%s, %s, 'execute')", (role, trust))
    for role in roles:
        assert not one(
            db,
            "select has_table_privilege(%s, 'enforcement_private.overview_totals_suspect', "
            "'select,insert,delete')",
            (role,),
        )
    assert one(
        db,
        "select evtenabled from pg_event_trigger "
        "where evtname = 'overview_totals_suspect_on_alter'",
    ) in ("O", "A")


# --------------------------------------------------------------------------------------
# The read does not grow with the book


def _book(conn: Conn, tenant: str, n: int, days: int) -> None:
    """``n`` open cases of ``tenant`` set-based, spread like bench_enforcement's book: seven
    stages, four tiers, stage entries over the last ``days`` days, next actions at the stage's
    SLA."""
    pid = new_id()
    conn.execute(
        "insert into public.plaintiffs (id, name, status, tenant_id) values (%s, 'P', 'new', %s)",
        (pid, tenant),
    )
    conn.execute(
        "insert into public.judgments (plaintiff_id, debtor_name, judgment_amount, balance_due, "
        "priority_level, status, county, state) "
        "select %s, 'Debtor ' || g, 1000, 1000, 'normal', 'active', 'Kings', 'NY' "
        "from generate_series(1, %s) g",
        (pid, n),
    )
    conn.execute(
        """
        insert into public.enforcement_cases (judgment_id, plaintiff_id, tier, current_stage,
                                              stage_entered_at, next_action_at, current_balance,
                                              created_by)
        select j.id, j.plaintiff_id,
               (array['tier0', 'tier1', 'tier2', 'tier3'])[1 + abs(hashtext(j.id::text)) %% 4],
               st.stage, e.entered, e.entered + make_interval(days => st.sla_days), 1000, 'book'
        from public.judgments j
        join public.enforcement_stage_lookup st on st.stage = (%(stages)s::text[])
            [1 + abs(hashtext(j.id::text || 's')) %% 7]
        cross join lateral (
            select now()
                   - make_interval(mins => abs(hashtext(j.id::text || 'x')) %% (%(days)s * 1440))
        ) as e (entered)
        where j.plaintiff_id = %(pid)s
        """,
        {"pid": pid, "stages": STAGES, "days": days},
    )


def _pages(conn: Conn, trusted_path: bool = True) -> int:
    """Buffers (hit or read) the overview's execution touched, as the enforcement operator."""
    with conn.transaction(force_rollback=True):
        if not trusted_path:
            conn.execute(
                "insert into enforcement_private.overview_totals_suspect values (now(), 'test')"
            )
        act_as(conn, "enforcement_operator")
        conn.execute("select * from public.v_enforcement_overview").fetchall()  # warm caches
        row = conn.execute(
            "explain (analyze, buffers, format json) select * from public.v_enforcement_overview"
        ).fetchone()
        assert row is not None
        plan = row[0][0]["Plan"]
        return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


def _leaf_pages(conn: Conn) -> int:
    return int(one(conn, "select pg_relation_size('public.enforcement_cases_overview_idx') / 8192"))


def test_the_read_touches_as_many_pages_at_20k_open_cases_as_at_2k(fresh_db_url: str) -> None:
    """Pages, not time: buffers the overview's execution touched, as the enforcement operator.

    Both books cover the same ten days, so they fill the same day buckets (rows ∝ days of
    history, the part meant to grow with time, not with cases). With ten times the cases the
    flat read may then pay one more level of each index it probes (the indexes grow a level
    between 2k and 20k entries, and each group has four probes), and the slightly longer
    slices of the cutoff days; nothing that reads the book. The exact path (forced by a
    suspect mark) reads every leaf of the overview index, for contrast."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        tenant = DEFAULT_TENANT
        _book(conn, tenant, 2_000, days=10)
        conn.execute("vacuum analyze")
        small, small_exact, small_leaves = _pages(conn), _pages(conn, False), _leaf_pages(conn)
        _book(conn, tenant, 18_000, days=10)
        conn.execute("vacuum analyze")
        large, large_exact, large_leaves = _pages(conn), _pages(conn, False), _leaf_pages(conn)
        groups = len(overview(conn))
        # Right after a night that rewrote every case (pages not all-visible, dead tuples in
        # the indexes and the buckets), before vacuum.
        conn.execute(
            "update public.enforcement_cases set tier = case tier when 'tier0' then 'tier1' "
            "when 'tier1' then 'tier0' else tier end"
        )
        rewritten = _pages(conn)
        with conn.transaction(force_rollback=True):
            act_as(conn, "enforcement_operator")
            assert overview(conn) == reference(conn, [tenant])
    figures = (small, large, rewritten, small_exact, large_exact, small_leaves, large_leaves)
    print("overview pages (flat 2k, 20k, rewritten; exact 2k, 20k; leaves 2k, 20k):", figures)
    assert groups == 28, figures
    # The exact path reads the book: every new leaf of the overview index.
    assert large_exact - small_exact > 0.8 * (large_leaves - small_leaves), figures
    # The flat path: at most one more index level per probe, and a page of slice per group.
    assert large - small <= 4 * groups + groups, figures
    # After the rewrite: a heap fetch per slice tuple and per probe, bounded by the groups.
    assert rewritten < 2.5 * small, figures
