"""The overview totals per tenant (migrations 20261203110000 and 20261203110100).

Two tenants with open cases. A signed-in operator of one tenant (role ``authenticated`` with the
JWT ``sub`` of a ``tenant_members`` row), reading ``enforcement_overview_rollup``, its deltas
or ``v_enforcement_overview``, sees exactly their tenant's totals and nothing of the other's;
so does ``enforcement_operator`` narrowed by ``dragonfly.acting_tenant``. The totals stay exact
under concurrent, committed writers in both tenants; the drift check then finds nothing, and
the resync repairs each tenant's totals on their own.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.integration.test_enforcement_concurrency import DEADLINE, connect
from tests.sql.enforcement_seed import act_as, one, rpc, seed_court_case, seed_judgment

Conn = psycopg.Connection[Any]

DEFAULT_TENANT = "00000000-0000-4000-8000-000000000001"

# Every open case of one tenant aggregated on the spot: what the view must return for it.
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
            where c.stage_entered_at + make_interval(days => s.sla_days) < now()
        ) as sla_breach_count,
        count(*) filter (where c.next_action_at <= now()) as due_count,
        min(c.next_action_at) as next_action_at,
        min(c.stage_entered_at) as oldest
    from public.enforcement_cases as c
    join public.enforcement_stage_lookup as s on s.stage = c.current_stage
    where c.closed_at is null and c.tenant_id = %(tenant)s
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
order by t.rank nulls last, st.ordinal
"""

COLUMNS = (
    "tier, current_stage, case_count, stage_balance, sla_breach_count, due_count, "
    "next_action_at, max_days_in_stage, tier_case_count, tier_balance, tier_sla_breach_count, "
    "tenant_id"
)

# The totals as a caller sees them: folded rows plus pending deltas, per (tenant, tier, stage).
TOTALS = """
select t.tenant_id::text, t.tier, t.current_stage, sum(t.case_count)::bigint, sum(t.balance)
from (
    select tenant_id, tier, current_stage, case_count, balance
      from public.enforcement_overview_rollup
    union all
    select tenant_id, tier, current_stage, case_count, balance
      from public.enforcement_overview_rollup_deltas
) as t
group by 1, 2, 3
having sum(t.case_count) <> 0 or sum(t.balance) <> 0
order by 1, 2 nulls last, 3
"""


@dataclass(frozen=True)
class Tenant:
    id: str
    operator: str  # the JWT sub of a signed-in operator of this tenant


def new_id() -> str:
    return str(uuid.uuid4())


def make_tenant(conn: Conn, slug: str) -> Tenant:
    """A tenant and a signed-in operator of it."""
    tenant, user = new_id(), new_id()
    conn.execute(
        "insert into public.tenants (id, slug, name) values (%s, %s, %s)",
        (tenant, f"{slug}-{tenant[:8]}", slug.title()),
    )
    conn.execute(
        "insert into auth.users (id, email) values (%s, %s)", (user, f"ops@{slug}.example")
    )
    conn.execute(
        "insert into public.tenant_members (tenant_id, user_id, role) values (%s, %s, 'operator')",
        (tenant, user),
    )
    return Tenant(tenant, user)


SCORES = {"tier0": "90", "tier1": "60", "tier2": "30", "tier3": "10"}


def open_case(conn: Conn, tenant: Tenant, *, tier: str | None, amount: str) -> str:
    """A plaintiff of ``tenant``, a judgment and a court case scored into ``tier``, and an
    open case (as the fleet; the case takes the tier of its score)."""
    pid = new_id()
    conn.execute(
        "insert into public.plaintiffs (id, tenant_id, name, status) values (%s, %s, %s, 'new')",
        (pid, tenant.id, f"Plaintiff of {tenant.id[:8]}"),
    )
    jid = seed_judgment(conn, pid, amount=amount)
    seed_court_case(conn, jid, score=SCORES.get(tier or ""), tier=tier)
    return str(rpc(conn, "open_enforcement_case", {"judgment_id": jid, "created_by": "test"}))


def two_books(conn: Conn) -> tuple[Tenant, Tenant, dict[str, list[str]]]:
    """Tenant A: tier0 100.00 + 250.50 (one moved to bank_levy), tier1 75.25, unscored 10.00.
    Tenant B: tier0 999.99, tier2 30.00 + 5.00, one tier0 case closed."""
    a, b = make_tenant(conn, "alpha"), make_tenant(conn, "bravo")
    cases = {
        a.id: [
            open_case(conn, a, tier="tier0", amount="100.00"),
            open_case(conn, a, tier="tier0", amount="250.50"),
            open_case(conn, a, tier="tier1", amount="75.25"),
            open_case(conn, a, tier=None, amount="10.00"),
        ],
        b.id: [
            open_case(conn, b, tier="tier0", amount="999.99"),
            open_case(conn, b, tier="tier2", amount="30.00"),
            open_case(conn, b, tier="tier2", amount="5.00"),
            open_case(conn, b, tier="tier0", amount="123.00"),
        ],
    }
    rpc(conn, "set_enforcement_stage", {"case_id": cases[a.id][1], "stage": "bank_levy"})
    rpc(conn, "close_enforcement_case", {"case_id": cases[b.id][3], "status": "withdrawn"})
    return a, b, cases


EXPECTED_TOTALS = {
    "a": [
        ("tier0", "bank_levy", 1, Decimal("250.50")),
        ("tier0", "pre_enforcement", 1, Decimal("100.00")),
        ("tier1", "pre_enforcement", 1, Decimal("75.25")),
        (None, "pre_enforcement", 1, Decimal("10.00")),
    ],
    "b": [
        ("tier0", "pre_enforcement", 1, Decimal("999.99")),
        ("tier2", "pre_enforcement", 2, Decimal("35.00")),
    ],
}
EXPECTED_OVERVIEW = {  # (tier, stage, case_count, stage_balance, tier_case_count, tier_balance)
    "a": [
        ("tier0", "pre_enforcement", 1, Decimal("100.00"), 2, Decimal("350.50")),
        ("tier0", "bank_levy", 1, Decimal("250.50"), 2, Decimal("350.50")),
        ("tier1", "pre_enforcement", 1, Decimal("75.25"), 1, Decimal("75.25")),
        (None, "pre_enforcement", 1, Decimal("10.00"), 1, Decimal("10.00")),
    ],
    "b": [
        ("tier0", "pre_enforcement", 1, Decimal("999.99"), 1, Decimal("999.99")),
        ("tier2", "pre_enforcement", 2, Decimal("35.00"), 2, Decimal("35.00")),
    ],
}


@contextmanager
def signed_in(conn: Conn, tenant: Tenant) -> Iterator[None]:
    """Read as the tenant's signed-in operator, in a savepoint that is rolled back."""
    with conn.transaction(force_rollback=True):
        act_as(conn, "authenticated", tenant.operator, "ops@example.test")
        yield


def totals(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(TOTALS).fetchall()


def table_tenants(conn: Conn) -> set[str]:
    rows = conn.execute(
        "select tenant_id::text from public.enforcement_overview_rollup "
        "union select tenant_id::text from public.enforcement_overview_rollup_deltas"
    ).fetchall()
    return {r[0] for r in rows}


def overview(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(f"select {COLUMNS} from public.v_enforcement_overview").fetchall()


def reference(conn: Conn, tenant: str) -> list[tuple[Any, ...]]:
    """As the superuser (no row-level security): the tenant's open cases aggregated."""
    return conn.execute(REFERENCE, {"tenant": tenant}).fetchall()


def drift(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute("select * from enforcement_private.overview_rollup_drift()").fetchall()


def short(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Overview rows as (tier, stage, case_count, stage_balance, tier_case_count, tier_balance)."""
    return [(r[0], r[1], r[2], r[3], r[8], r[9]) for r in rows]


@pytest.mark.parametrize("isolation", ["read committed", "repeatable read"])
def test_a_member_reads_only_their_tenants_totals(db: Conn, isolation: str) -> None:
    """In READ COMMITTED this transaction folds every change into the rollup; in REPEATABLE
    READ writers only append, so every total is a pending delta: both tables are covered."""
    db.execute(f"set transaction isolation level {isolation}")
    a, b, _ = two_books(db)
    folded = one(db, "select count(*) from public.enforcement_overview_rollup_deltas") == 0
    assert folded is (isolation == "read committed")

    for tenant, key, other in ((a, "a", b), (b, "b", a)):
        expected_totals = [(tenant.id, *row) for row in EXPECTED_TOTALS[key]]
        with signed_in(db, tenant):
            assert totals(db) == expected_totals
            assert table_tenants(db) == {tenant.id}
            rows = overview(db)
            assert short(rows) == EXPECTED_OVERVIEW[key]
            assert {str(r[-1]) for r in rows} == {tenant.id}
            # Filtering on the other tenant finds nothing at all.
            assert (
                one(
                    db,
                    "select count(*) from public.v_enforcement_overview where tenant_id = %s",
                    (other.id,),
                )
                == 0
            )
        assert rows == reference(db, tenant.id)

    # The superuser sees both tenants' rows in the view, each tenant's exactly as its member.
    both = overview(db)
    for tenant in (a, b):
        assert [r for r in both if str(r[-1]) == tenant.id] == reference(db, tenant.id)


def test_the_enforcement_operator_narrowed_to_a_tenant_reads_only_its_totals(db: Conn) -> None:
    a, b, _ = two_books(db)
    for tenant, key in ((a, "a"), (b, "b")):
        with db.transaction(force_rollback=True):
            act_as(db, "enforcement_operator")
            db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (tenant.id,))
            assert totals(db) == [(tenant.id, *row) for row in EXPECTED_TOTALS[key]]
            assert short(overview(db)) == EXPECTED_OVERVIEW[key]
    # Not narrowed, the role reaches every tenant (the default tenant holds nothing here).
    with db.transaction(force_rollback=True):
        act_as(db, "enforcement_operator")
        assert table_tenants(db) == {a.id, b.id}
        assert {str(r[-1]) for r in overview(db)} == {a.id, b.id}


def test_callers_without_a_tenant_read_no_totals(db: Conn) -> None:
    two_books(db)
    stranger = new_id()
    db.execute("insert into auth.users (id, email) values (%s, 'nobody@example.test')", (stranger,))
    with db.transaction(force_rollback=True):
        act_as(db, "authenticated", stranger)  # signed in, member of nothing
        assert totals(db) == []
        assert overview(db) == []
    for table in ("enforcement_overview_rollup", "enforcement_overview_rollup_deltas"):
        with db.transaction(force_rollback=True):
            act_as(db, "anon")
            with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
                db.execute(f"select * from public.{table}")


def test_the_policies_are_the_cases_rule_for_members_and_operators(db: Conn) -> None:
    policies = db.execute(
        "select tablename, policyname, roles::text[], cmd, qual from pg_policies "
        "where schemaname = 'public' and tablename like 'enforcement_overview_rollup%' "
        "order by tablename"
    ).fetchall()
    assert [p[0] for p in policies] == [
        "enforcement_overview_rollup",
        "enforcement_overview_rollup_deltas",
    ]
    for _, _, roles, cmd, qual in policies:
        assert sorted(roles) == ["authenticated", "enforcement_operator"]
        assert cmd == "SELECT"
        assert "caller_tenants('read'::text)" in qual
        assert "tenant_id = ANY" in qual


def test_the_resync_repairs_each_tenant_on_its_own(db: Conn) -> None:
    a, b, cases = two_books(db)
    assert drift(db) == []
    trigger = "enforcement_cases_overview_rollup_update"
    db.execute(f"alter table public.enforcement_cases disable trigger {trigger}")
    db.execute(
        "update public.enforcement_cases set current_balance = 1 where id = %s", (cases[a.id][0],)
    )
    db.execute(
        "update public.enforcement_cases set current_stage = 'asset_search' where id = %s",
        (cases[b.id][1],),
    )
    db.execute(f"alter table public.enforcement_cases enable always trigger {trigger}")

    found = {(str(r[0]), r[1], r[2]): r[3:] for r in drift(db)}
    assert found == {
        # (rollup count, actual count, rollup balance, actual balance)
        (a.id, "tier0", "pre_enforcement"): (1, 1, Decimal("100.00"), Decimal("1.00")),
        (b.id, "tier2", "pre_enforcement"): (2, 1, Decimal("35.00"), Decimal("5.00")),
        (b.id, "tier2", "asset_search"): (None, 1, None, Decimal("30.00")),
    }
    # Before the repair: B's groups disagree in their counts, so the view recounts them and
    # stays exact; A's group agrees in count and drifted in balance only, which the view cannot
    # tell (what the nightly resync is for).
    with signed_in(db, b):
        assert overview(db) == reference(db, b.id)
    with signed_in(db, a):
        assert overview(db) != reference(db, a.id)

    assert one(db, "select public.refresh_enforcement_metrics()")["overview_totals_resynced"] == 3
    assert drift(db) == []
    for tenant in (a, b):
        with signed_in(db, tenant):
            rows = overview(db)
        assert rows == reference(db, tenant.id)
    assert one(db, "select enforcement_private.resync_overview_rollup()") == 0


def test_totals_counted_in_the_wrong_tenant_are_moved_by_the_resync(db: Conn) -> None:
    """What the migration does with the single-tenant totals: they land in the default
    tenant, and the resync moves each case's share into its own tenant."""
    a, b, _ = two_books(db)
    db.execute(
        "with moved as (delete from public.enforcement_overview_rollup "
        "where tenant_id = any(%s::uuid[]) returning tier, current_stage, case_count, balance) "
        "insert into public.enforcement_overview_rollup "
        "(tenant_id, tier, current_stage, case_count, balance) "
        "select %s, tier, current_stage, sum(case_count), sum(balance) from moved group by 2, 3",
        ([a.id, b.id], DEFAULT_TENANT),
    )
    assert {r[0] for r in totals(db)} == {DEFAULT_TENANT}
    assert {str(r[0]) for r in drift(db)} == {DEFAULT_TENANT, a.id, b.id}
    assert one(db, "select enforcement_private.resync_overview_rollup()") > 0
    assert drift(db) == []
    assert [r for r in totals(db) if r[0] == DEFAULT_TENANT] == []
    for tenant, key in ((a, "a"), (b, "b")):
        with signed_in(db, tenant):
            assert totals(db) == [(tenant.id, *row) for row in EXPECTED_TOTALS[key]]


# --------------------------------------------------------------------------------------
# Concurrent, committed writers in both tenants (a database of the test's own)


@pytest.mark.slow
def test_totals_stay_exact_per_tenant_under_concurrent_writers(fresh_db_url: str) -> None:
    with connect(fresh_db_url) as conn:
        a, b = make_tenant(conn, "alpha"), make_tenant(conn, "bravo")
        books: dict[str, list[str]] = {
            t.id: [
                open_case(conn, t, tier=tier, amount="5000.00")
                for tier in ("tier0", "tier1", "tier2") * 3
            ]
            for t in (a, b)
        }
        conn.commit()
    stages = ["asset_search", "information_subpoena", "bank_levy", "payment_plan"]
    writers = 6
    barrier = threading.Barrier(writers + 1)
    done = threading.Event()

    def write(seed: int) -> list[str]:
        rng = random.Random(seed)
        errors: list[str] = []
        with connect(fresh_db_url) as conn:
            barrier.wait(timeout=DEADLINE)
            for step in range(30):
                tenant = rng.choice([a, b])
                case = rng.choice(books[tenant.id])
                try:
                    if step % 2:
                        # The console's operator, acting in the case's tenant.
                        act_as(conn, "enforcement_operator")
                        conn.execute(
                            "select set_config('dragonfly.acting_tenant', %s, true)", (tenant.id,)
                        )
                    kind = rng.randrange(4)
                    if kind == 0:
                        rpc(conn, "record_enforcement_payment", {"case_id": case, "amount": "1.25"})
                    elif kind == 1:
                        rpc(
                            conn,
                            "set_enforcement_stage",
                            {"case_id": case, "stage": rng.choice(stages), "override": True},
                        )
                    elif kind == 2:
                        conn.execute("reset role")
                        conn.execute(
                            "update public.enforcement_cases set tier = %s where id = %s",
                            (rng.choice(["tier0", "tier1", "tier3"]), case),
                        )
                    else:
                        conn.execute("reset role")
                        open_case(conn, tenant, tier=rng.choice(["tier0", "tier2"]), amount="7.00")
                    if step % 7 == 3:
                        conn.rollback()  # rolled-back writes must leave no trace
                    else:
                        conn.commit()
                except psycopg.Error as error:
                    conn.rollback()
                    errors.append(f"{error.sqlstate}: {error}")
        return errors

    def read() -> list[str]:
        """A's operator reads while the writers write: never B's rows, and within one
        statement the overview's totals equal the open cases A can see."""
        problems: list[str] = []
        with connect(fresh_db_url) as conn:
            barrier.wait(timeout=DEADLINE)
            while not done.is_set():
                with signed_in(conn, a):
                    seen = table_tenants(conn) - {a.id}
                    row = conn.execute(
                        "select (select coalesce(sum(case_count), 0) from "
                        "public.v_enforcement_overview), (select coalesce(sum(stage_balance), 0) "
                        "from public.v_enforcement_overview), (select count(*) from "
                        "public.enforcement_cases where closed_at is null), (select "
                        "coalesce(sum(current_balance), 0) from public.enforcement_cases "
                        "where closed_at is null), (select count(*) from "
                        "public.v_enforcement_overview where tenant_id <> %s)",
                        (a.id,),
                    ).fetchone()
                conn.rollback()
                assert row is not None
                if seen:
                    problems.append(f"A's operator read totals of {seen}")
                if (row[0], row[1]) != (row[2], row[3]) or row[4] != 0:
                    problems.append(f"overview {row[:2]} against cases {row[2:4]}, others {row[4]}")
        return problems

    with ThreadPoolExecutor(writers + 1) as pool:
        reader = pool.submit(read)
        try:
            outcomes = list(pool.map(write, range(writers)))
        finally:
            done.set()
        assert reader.result() == []
    assert [e for errors in outcomes for e in errors] == []

    with connect(fresh_db_url) as conn:
        assert drift(conn) == []
        assert one(conn, "select enforcement_private.resync_overview_rollup()") == 0
        for tenant in (a, b):
            expected = reference(conn, tenant.id)
            assert expected != []
            with signed_in(conn, tenant):
                assert overview(conn) == expected
                assert {r[0] for r in totals(conn)} == {tenant.id}
