"""queue_job() and tenants: a job's rows must be in a tenant the caller reaches, the envelope
names that tenant, and keys and rate windows are kept per tenant
(migration 20261203120000_job_tenants.sql, docs/security.md "Tenants and jobs").

Two tenants, A and B, each with a case; an operator of each, a viewer of A. Every refusal is
compared with the answer for a row that does not exist (same SQLSTATE, same message but for
the id) and must write nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.security.support import (
    PUBLIC_ROLES,
    add_member,
    become,
    become_member,
    new_uuid,
    refusal,
    without_ids,
)
from tests.sql.enforcement_seed import Seeded, seed, seed_tenant

Conn = psycopg.Connection[Any]
MISSING = "00000000-0000-4000-8000-00000000dead"


@dataclass(frozen=True)
class World:
    a: str
    b: str
    case_a: Seeded
    case_b: Seeded
    operator_a: str
    operator_b: str
    viewer_a: str


@pytest.fixture
def world(db: Conn) -> World:
    a, b = seed_tenant(db, "acme"), seed_tenant(db, "beta")
    operator_a, operator_b, viewer_a = new_uuid(), new_uuid(), new_uuid()
    add_member(db, a, operator_a, "operator")
    add_member(db, b, operator_b, "operator")
    add_member(db, a, viewer_a, "viewer")
    return World(a, b, seed(db, tenant=a), seed(db, tenant=b), operator_a, operator_b, viewer_a)


def payloads(case: Seeded) -> dict[str, dict[str, Any]]:
    """A job per shipped kind on ``case``'s rows (every field one a public caller may set)."""
    return {
        "enrich": {"case_id": case.court_case_id},
        "enforce": {"case_id": case.case_id},
        "case_copilot": {"case_id": case.case_id},
        "outreach": {"plaintiff_id": case.plaintiff_id},
    }


def missing_payloads() -> dict[str, dict[str, Any]]:
    return {
        "enrich": {"case_id": MISSING},
        "enforce": {"case_id": MISSING},
        "case_copilot": {"case_id": MISSING},
        "outreach": {"plaintiff_id": MISSING},
    }


def queue_job(conn: Conn, job: dict[str, Any]) -> int:
    row = conn.execute("select public.queue_job(%s)", (Jsonb(job),)).fetchone()
    assert row is not None
    return int(row[0])


def writes(conn: Conn) -> tuple[Any, ...]:
    row = conn.execute(
        "select (select count(*) from dragonfly.enqueued_jobs),"
        " (select count(*) from pgmq.q_enrich), (select count(*) from pgmq.q_enforce),"
        " (select count(*) from pgmq.q_outreach), (select count(*) from pgmq.q_case_copilot),"
        " (select coalesce(sum(jobs), 0) from dragonfly.enqueue_rate_windows)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def as_user(conn: Conn, user: str | None, call: Callable[[], Any]) -> Any:
    """``call()`` in a savepoint as the signed-in ``user`` (None: the test's internal role)."""
    with conn.transaction():
        if user is not None:
            become_member(conn, user)
        result = call()
        conn.execute("reset role")
    return result


def refused_as(conn: Conn, user: str | None, job: dict[str, Any]) -> psycopg.Error:
    """queue_job(job) as ``user`` must fail and write nothing; the error."""
    before = writes(conn)

    def call() -> None:
        if user is not None:
            become_member(conn, user)
        queue_job(conn, job)

    error = refusal(conn, call)
    assert writes(conn) == before
    return error


@contextmanager
def acting(conn: Conn, tenant: str) -> Iterator[None]:
    """Act in ``tenant`` (dragonfly.acting_tenant), as a worker does for a job, inside a
    savepoint; cleared after it (a released savepoint keeps a SET LOCAL)."""
    with conn.transaction():
        conn.execute("select set_config('dragonfly.acting_tenant', %s, true)", (tenant,))
        try:
            yield
        finally:
            conn.execute("select set_config('dragonfly.acting_tenant', '', true)")


def answer(error: psycopg.Error) -> tuple[str | None, str]:
    return error.sqlstate, without_ids(error.diag.message_primary or "")


def message_of(conn: Conn, kind: str, msg_id: int) -> dict[str, Any]:
    row = conn.execute(f"select message from pgmq.q_{kind} where msg_id = %s", (msg_id,))
    found = row.fetchone()
    assert found is not None
    return dict(found[0])


def stored_key(conn: Conn, kind: str, msg_id: int) -> str:
    row = conn.execute(
        "select idempotency_key from dragonfly.enqueued_jobs where kind = %s and msg_id = %s",
        (kind, msg_id),
    ).fetchone()
    assert row is not None
    return str(row[0])


# --- the envelope names the tenant --------------------------------------------------------


def test_an_operators_job_names_the_tenant_of_its_row(db: Conn, world: World) -> None:
    for kind, payload in payloads(world.case_a).items():
        job = {"kind": kind, "idempotency_key": f"console-{kind}", "payload": payload}
        msg_id = as_user(db, world.operator_a, lambda job=job: queue_job(db, job))
        envelope = message_of(db, kind, msg_id)
        assert envelope["tenant"] == world.a
        assert envelope["provenance"]["level"] == "operator"
        assert envelope["idempotency_key"] == f"tenant:{world.a}:console-{kind}"
        assert stored_key(db, kind, msg_id) == envelope["idempotency_key"]


def test_the_fleets_job_names_the_tenant_and_may_name_it_itself(db: Conn, world: World) -> None:
    job = {
        "kind": "enforce",
        "idempotency_key": "fleet",
        "payload": {"case_id": world.case_b.case_id},
    }
    envelope = message_of(db, "enforce", queue_job(db, job))
    assert envelope["tenant"] == world.b
    assert envelope["idempotency_key"] == "fleet"  # the fleet's keys stay as given
    named = {**job, "idempotency_key": "fleet-named", "tenant": world.b}
    assert message_of(db, "enforce", queue_job(db, named))["tenant"] == world.b


def test_request_case_copilot_sends_its_job_in_the_cases_tenant(db: Conn, world: World) -> None:
    row = db.execute("select public.request_case_copilot(%s)", (world.case_b.case_id,)).fetchone()
    assert row is not None
    envelope = message_of(db, "case_copilot", int(row[0]))
    assert envelope["tenant"] == world.b
    assert envelope["payload"]["case_id"] == world.case_b.case_id


# --- another tenant's rows are rows that do not exist -------------------------------------


def test_an_operator_of_b_cannot_enqueue_for_as_rows(db: Conn, world: World) -> None:
    gone = missing_payloads()
    for kind, payload in payloads(world.case_a).items():
        job = {"kind": kind, "idempotency_key": "poach", "payload": payload}
        expected = answer(refused_as(db, world.operator_b, {**job, "payload": gone[kind]}))
        assert expected[0] == "23503", expected
        assert answer(refused_as(db, world.operator_b, job)) == expected
        # Naming A's tenant, or B's own, does not help.
        for tenant in (world.a, world.b):
            assert answer(refused_as(db, world.operator_b, {**job, "tenant": tenant})) == expected


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_anon_and_non_members_reach_no_tenant(db: Conn, world: World, role: str) -> None:
    """What anon (and a signed-in user of no tenant) sends about any row is answered as about
    a row that does not exist: the default tenant's rows too."""
    default_case = seed(db)
    gone = missing_payloads()
    for case in (default_case, world.case_a):
        for kind, payload in payloads(case).items():
            job = {"kind": kind, "idempotency_key": "try", "payload": payload}
            before = writes(db)

            def call(job: dict[str, Any] = job) -> None:
                become(db, role)
                queue_job(db, job)

            got = answer(refusal(db, call))
            missing = answer(
                refusal(db, lambda kind=kind, job=job: call({**job, "payload": gone[kind]}))
            )
            assert got == missing
            assert got[0] == "23503"
            assert writes(db) == before


def test_a_viewer_is_a_public_caller_of_its_tenant(db: Conn, world: World) -> None:
    job = {
        "kind": "enforce",
        "idempotency_key": "look",
        "payload": {"case_id": world.case_a.case_id},
    }
    envelope = message_of(db, "enforce", as_user(db, world.viewer_a, lambda: queue_job(db, job)))
    assert envelope["provenance"]["level"] == "public"
    assert envelope["tenant"] == world.a
    assert envelope["idempotency_key"].startswith("public:")
    other = {**job, "payload": {"case_id": world.case_b.case_id}}
    gone = {**job, "payload": {"case_id": MISSING}}
    assert answer(refused_as(db, world.viewer_a, other)) == answer(
        refused_as(db, world.viewer_a, gone)
    )


def test_a_named_tenant_must_be_the_rows(db: Conn, world: World) -> None:
    job = {
        "kind": "enforce",
        "idempotency_key": "named",
        "payload": {"case_id": world.case_a.case_id},
    }
    gone = {**job, "payload": {"case_id": MISSING}, "tenant": world.a}
    expected = answer(refused_as(db, None, gone))
    assert answer(refused_as(db, None, {**job, "tenant": world.b})) == expected
    assert answer(refused_as(db, None, {**job, "tenant": MISSING})) == expected
    error = refused_as(db, None, {**job, "tenant": "acme"})
    assert error.sqlstate == "22023"
    assert "tenant must be a tenant id" in str(error)
    assert message_of(db, "enforce", queue_job(db, {**job, "tenant": world.a}))["tenant"] == world.a


def test_an_acting_tenant_narrows_the_fleet(db: Conn, world: World) -> None:
    """A worker acting for a job of B (dragonfly.acting_tenant) enqueues only in B."""
    job = {
        "kind": "enforce",
        "idempotency_key": "follow-up",
        "payload": {"case_id": world.case_a.case_id},
    }
    gone = {**job, "payload": {"case_id": MISSING}}
    with acting(db, world.b):
        assert answer(refusal(db, lambda: queue_job(db, job))) == answer(
            refusal(db, lambda: queue_job(db, gone))
        )
        mine = {**job, "payload": {"case_id": world.case_b.case_id}}
        assert message_of(db, "enforce", queue_job(db, mine))["tenant"] == world.b


# --- jobs that reference no row -----------------------------------------------------------


@pytest.fixture
def shapeless(db: Conn) -> str:
    db.execute("select dragonfly.register_job_kind('shapeless', 'A kind without a shape.')")
    return "shapeless"


def test_a_job_without_a_row_names_its_tenant_or_crosses_tenants(
    db: Conn, world: World, shapeless: str
) -> None:
    # The fleet: none named crosses tenants (internal only); a tenant named is kept.
    crossing = queue_job(db, {"kind": shapeless, "idempotency_key": "sweep"})
    assert message_of(db, shapeless, crossing)["tenant"] is None
    named = queue_job(db, {"kind": shapeless, "idempotency_key": "sweep-a", "tenant": world.a})
    assert message_of(db, shapeless, named)["tenant"] == world.a
    missing = refused_as(db, None, {"kind": shapeless, "idempotency_key": "x", "tenant": MISSING})
    assert (missing.sqlstate, without_ids(str(missing.diag.message_primary))) == (
        "23503",
        "queue_job: no tenant <id>",
    )
    with acting(db, world.b):
        narrowed = queue_job(db, {"kind": shapeless, "idempotency_key": "in-b"})
        assert message_of(db, shapeless, narrowed)["tenant"] == world.b
        # Narrowed to B, the fleet cannot name A.
        error = refusal(
            db,
            lambda: queue_job(db, {"kind": shapeless, "idempotency_key": "y", "tenant": world.a}),
        )
        assert answer(error) == answer(missing)

    # An operator of one tenant: that tenant. Of two: it must say which.
    job = {"kind": shapeless, "idempotency_key": "op"}
    msg_id = as_user(db, world.operator_a, lambda: queue_job(db, job))
    assert message_of(db, shapeless, msg_id)["tenant"] == world.a
    assert answer(refused_as(db, world.operator_a, {**job, "tenant": world.b})) == answer(missing)
    add_member(db, world.b, world.operator_a, "operator")
    error = refused_as(db, world.operator_a, {**job, "idempotency_key": "op2"})
    assert error.sqlstate == "22023"
    assert "must name their tenant" in str(error)
    msg_id = as_user(
        db,
        world.operator_a,
        lambda: queue_job(db, {**job, "idempotency_key": "op2", "tenant": world.b}),
    )
    assert message_of(db, shapeless, msg_id)["tenant"] == world.b


# --- keys and rate windows are per tenant -------------------------------------------------


def test_an_operator_of_b_reusing_a_key_of_a_neither_collides_nor_learns(
    db: Conn, world: World
) -> None:
    key = {"kind": "enforce", "idempotency_key": "plan-now"}
    of_a = as_user(
        db,
        world.operator_a,
        lambda: queue_job(db, {**key, "payload": {"case_id": world.case_a.case_id}}),
    )
    # B's operator with the same key: a job of B's own, in B's namespace.
    job_b = {**key, "payload": {"case_id": world.case_b.case_id}}
    of_b = as_user(db, world.operator_b, lambda: queue_job(db, job_b))
    assert of_b != of_a
    assert stored_key(db, "enforce", of_a) == f"tenant:{world.a}:plan-now"
    assert stored_key(db, "enforce", of_b) == f"tenant:{world.b}:plan-now"
    assert as_user(db, world.operator_b, lambda: queue_job(db, job_b)) == of_b
    # With A's case the repeat is not answered at all: the case is not B's to name.
    poach = {**key, "payload": {"case_id": world.case_a.case_id}}
    gone = {**key, "payload": {"case_id": MISSING}}
    assert answer(refused_as(db, world.operator_b, poach)) == answer(
        refused_as(db, world.operator_b, gone)
    )
    # Operators of one tenant share its namespace.
    colleague = new_uuid()
    add_member(db, world.a, colleague, "admin")
    assert as_user(db, colleague, lambda: queue_job(db, poach)) == of_a


def test_queue_jobs_answers_each_element_in_its_tenant(db: Conn, world: World) -> None:
    # A deployment that grants the bulk call to signed-in users (docs/rpc.md); rolled back.
    db.execute("grant execute on function public.queue_jobs(jsonb) to authenticated")
    mine = {
        "kind": "enforce",
        "idempotency_key": "bulk-b",
        "payload": {"case_id": world.case_b.case_id},
    }
    theirs = {
        "kind": "enforce",
        "idempotency_key": "bulk-a",
        "payload": {"case_id": world.case_a.case_id},
    }
    alone = answer(refused_as(db, world.operator_b, theirs))
    before = writes(db)
    rows = as_user(
        db,
        world.operator_b,
        lambda: db.execute(
            "select msg_id, sqlstate, message from public.queue_jobs(%s)", (Jsonb([mine, theirs]),)
        ).fetchall(),
    )
    assert rows[0][0] is not None
    assert rows[0][1] is None
    assert message_of(db, "enforce", rows[0][0])["tenant"] == world.b
    assert rows[1][0] is None
    assert (rows[1][1], without_ids(rows[1][2])) == alone
    assert writes(db)[0] == before[0] + 1


def test_public_rate_windows_are_per_tenant(db: Conn, world: World) -> None:
    db.execute(
        "update dragonfly.job_kind_policies set rate_per_minute = 1"
        " where kind = 'enforce' and level = 'public'"
    )
    viewer_b = new_uuid()
    add_member(db, world.b, viewer_b, "viewer")
    first = {
        "kind": "enforce",
        "idempotency_key": "r1",
        "payload": {"case_id": world.case_a.case_id},
    }
    as_user(db, world.viewer_a, lambda: queue_job(db, first))
    second = {
        **first,
        "idempotency_key": "r2",
        "payload": {"case_id": seed(db, tenant=world.a).case_id},
    }
    assert refused_as(db, world.viewer_a, second).sqlstate == "PT429"
    # B's public callers have a window of their own: A's traffic neither fills nor shows in it.
    other = {**first, "payload": {"case_id": world.case_b.case_id}}
    assert as_user(db, viewer_b, lambda: queue_job(db, other)) > 0


def test_the_doors_reach_is_caller_tenants(db: Conn, world: World) -> None:
    """dragonfly.job_tenants_reached() answers what tenancy.caller_tenants() answers (null
    meaning every tenant; write tenants for operators, read tenants for public callers), for
    every kind of caller, narrowed or not: the door's shortcut for signed-in users cannot
    drift from the policies' rule."""
    db.execute(
        """
        create function public.t_reach()
        returns table (door uuid[], policy uuid[])
        language sql
        security definer
        set search_path = ''
        as $$
            select coalesce(
                       dragonfly.job_tenants_reached(dragonfly.caller_trust_level()),
                       (select pg_catalog.array_agg(t.id) from public.tenants as t)
                   ),
                   tenancy.caller_tenants(
                       case dragonfly.caller_trust_level()
                           when 'public' then 'read' else 'write'
                       end
                   )
        $$
        """
    )
    db.execute("grant execute on function public.t_reach() to public")
    admin_b = new_uuid()
    add_member(db, world.b, admin_b, "admin")
    add_member(db, world.a, admin_b, "viewer")
    callers: list[tuple[str, str | None]] = [
        ("anon", None),
        ("authenticated", new_uuid()),  # a member of nothing
        ("authenticated", world.viewer_a),
        ("authenticated", world.operator_a),
        ("authenticated", admin_b),
        ("enforcement_operator", None),
        ("service_role", None),
    ]
    seen = set()
    for role, sub in callers:
        for acting in (None, world.a, world.b):
            with db.transaction():
                db.execute(
                    "select set_config('dragonfly.acting_tenant', %s, true)", (acting or "",)
                )
                claims = {"role": role, **({"sub": sub} if sub else {})}
                db.execute(
                    "select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),)
                )
                db.execute(f"set local role {role}")
                row = db.execute("select door, policy from public.t_reach()").fetchone()
                db.execute("reset role")
                db.execute("select set_config('dragonfly.acting_tenant', '', true)")
            assert row is not None
            door, policy = (sorted(map(str, x)) for x in row)
            assert door == policy, (role, sub, acting)
            seen.add(tuple(door))
    assert len(seen) > 3  # the callers reach different tenants: the comparison means something
