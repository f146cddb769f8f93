"""queue_jobs(): many queue_job() envelopes in one call (migration 20261202180000_queue_jobs.sql).

Each element must come out exactly as queue_job() would have answered it alone: the same
message id for a key enqueued before, the same SQLSTATE and message for a refusal, with the
others sent regardless. Most tests run in the ``db`` fixture's rolled-back transaction; the
concurrency test commits, so it has a database of its own.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from tests.security.support import DEFAULT_TENANT, VIEWER, become
from tests.sql.enforcement_seed import seed
from tests.sql.job_payloads import valid_jobs
from tests.sql.test_queue_rpcs import REFUSALS, queue_job, queue_length

Conn = psycopg.Connection[Any]
Outcome = tuple[int | None, str | None, str | None]


def queue_jobs(conn: Conn, jobs: list[Any]) -> list[Outcome]:
    rows = conn.execute(
        "select ordinality, msg_id, sent, sqlstate, message from public.queue_jobs(%s)",
        (Jsonb(jobs),),
    ).fetchall()
    assert [r[0] for r in rows] == list(range(1, len(jobs) + 1))
    SENT.clear()
    SENT.extend(r[2] for r in rows)
    return [(r[1], r[3], r[4]) for r in rows]


SENT: list[bool | None] = []
"""The ``sent`` column of the last :func:`queue_jobs` call."""


def alone(conn: Conn, job: Any) -> Outcome:
    """What queue_job() answers for ``job`` on its own (undone afterwards)."""
    try:
        with conn.transaction():
            msg_id = queue_job(conn, job)
            raise _Undo(msg_id)
    except _Undo as undo:
        return (undo.msg_id, None, None)
    except psycopg.Error as error:
        return (None, error.sqlstate, error.diag.message_primary)


class _Undo(Exception):
    def __init__(self, msg_id: int) -> None:
        self.msg_id = msg_id


@pytest.fixture
def jobs(db: Conn) -> dict[str, dict[str, Any]]:
    return valid_jobs(db)


def test_every_element_is_answered_as_queue_job_answers_it(
    db: Conn, jobs: dict[str, dict[str, Any]]
) -> None:
    good = [
        {"kind": kind, "idempotency_key": f"bulk-{kind}", "payload": payload}
        for kind, payload in jobs.items()
    ]
    bad = [job for job, _ in REFUSALS]
    bad += [
        {"kind": "enrich", "idempotency_key": "no-case", "payload": {}},
        {"kind": "enrich", "idempotency_key": "bad-case", "payload": {"case_id": "nope"}},
        {
            "kind": "enrich",
            "idempotency_key": "gone-case",
            "payload": {"case_id": "00000000-0000-4000-8000-000000000000"},
        },
        {"kind": "enrich", "idempotency_key": "public:x", "payload": jobs["enrich"]},
    ]
    mixed = [*good[:2], *bad, *good[2:]]
    expected = [alone(db, job) for job in bad]
    got = queue_jobs(db, mixed)
    assert got[2 : 2 + len(bad)] == expected
    assert all(sqlstate is not None for _, sqlstate, _ in expected)
    sent = [got[0], got[1], *got[2 + len(bad) :]]
    assert all(msg_id is not None and state is None for msg_id, state, _ in sent)
    # The good ones went out as queue_job() sends them, each to its kind's queue.
    for job, (msg_id, _, _) in zip(good, sent, strict=True):
        row = db.execute(
            f"select message from pgmq.q_{job['kind']} where msg_id = %s", (msg_id,)
        ).fetchone()
        assert row is not None
        message = row[0]
        assert set(message) == {
            "kind",
            "idempotency_key",
            "payload",
            "requested_by",
            "provenance",
            "tenant",
            "enqueued_at",
        }
        assert message["payload"] == job["payload"]
        assert message["provenance"]["level"] == "internal"
        assert message["tenant"] == DEFAULT_TENANT
        assert db.execute(
            "select msg_id from dragonfly.enqueued_jobs where kind = %s and idempotency_key = %s",
            (job["kind"], job["idempotency_key"]),
        ).fetchone() == (msg_id,)


def test_a_refused_job_sends_nothing_and_the_others_go(
    db: Conn, jobs: dict[str, dict[str, Any]]
) -> None:
    before = queue_length(db, "outreach")
    payload = jobs["outreach"]
    got = queue_jobs(
        db,
        [
            {"kind": "outreach", "idempotency_key": "a", "payload": payload},
            {"kind": "outreach", "idempotency_key": "b", "payload": {**payload, "channel": "fax"}},
            {"kind": "outreach", "idempotency_key": "c", "payload": payload},
        ],
    )
    assert got[1][0] is None
    assert got[1][1] == "22023"
    assert "payload.channel must be one of" in (got[1][2] or "")
    assert SENT == [True, None, True]
    assert got[0][0] is not None
    assert got[2][0] is not None
    assert queue_length(db, "outreach") == before + 2
    assert db.execute(
        "select count(*) from dragonfly.enqueued_jobs"
        " where kind = 'outreach' and idempotency_key = 'b'"
    ).fetchone() == (0,)


def test_a_key_twice_in_one_array_is_one_job(db: Conn, jobs: dict[str, dict[str, Any]]) -> None:
    before = queue_length(db, "enforce")
    one = {"kind": "enforce", "idempotency_key": "twice", "payload": jobs["enforce"]}
    other = {**one, "payload": {**jobs["enforce"], "trigger": "manual"}}
    got = queue_jobs(db, [one, other, one])
    assert got[0][0] is not None
    assert got == [got[0]] * 3
    assert SENT == [True, False, False]
    assert queue_length(db, "enforce") == before + 1


def test_a_key_enqueued_earlier_gets_its_first_message(
    db: Conn, jobs: dict[str, dict[str, Any]]
) -> None:
    first = queue_job(db, {"kind": "enrich", "idempotency_key": "early", "payload": jobs["enrich"]})
    before = queue_length(db, "enrich")
    # Whatever the payload, as queue_job() answers a repeat of the fleet's key (the fleet
    # reaches every tenant and its keys are not namespaced: see test_queue_job_tenants.py for
    # the others, whose payload is checked first).
    got = queue_jobs(
        db,
        [
            {"kind": "enrich", "idempotency_key": "early", "payload": {"bundle": {}}},
            {"kind": "enrich", "idempotency_key": "late", "payload": jobs["enrich"]},
        ],
    )
    assert got[0] == (first, None, None)
    assert SENT == [False, True]
    assert got[1][0] is not None
    assert got[1][0] != first
    assert queue_length(db, "enrich") == before + 1
    # And queue_job() afterwards answers a key queue_jobs() enqueued.
    assert (
        queue_job(db, {"kind": "enrich", "idempotency_key": "late", "payload": jobs["enrich"]})
        == got[1][0]
    )


def test_each_job_keeps_its_own_delay(db: Conn, jobs: dict[str, dict[str, Any]]) -> None:
    delays = [0, 3600, 0, 60, 3600]
    got = queue_jobs(
        db,
        [
            {
                "kind": "enforce",
                "idempotency_key": f"delay-{n}",
                "payload": jobs["enforce"],
                "delay_seconds": delay,
            }
            for n, delay in enumerate(delays)
        ],
    )
    for (msg_id, _, _), delay in zip(got, delays, strict=True):
        row = db.execute(
            "select extract(epoch from vt - now()) from pgmq.q_enforce where msg_id = %s", (msg_id,)
        ).fetchone()
        assert row is not None
        assert delay - 10 <= float(row[0]) <= delay + 10


def test_the_argument_must_be_an_array_of_at_most_1000(db: Conn) -> None:
    for value in (None, {"kind": "enrich"}, "x", 3):
        refused = pytest.raises(errors.InvalidParameterValue, match="jobs must be a JSON array")
        with refused, db.transaction():
            db.execute("select * from public.queue_jobs(%s)", (Jsonb(value),))
    job = {"kind": "enrich", "idempotency_key": "k"}
    too_many = pytest.raises(errors.ProgramLimitExceeded, match=r"at most 1000 jobs per call")
    with too_many, db.transaction():
        db.execute("select * from public.queue_jobs(%s)", (Jsonb([job] * 1001),))
    assert queue_jobs(db, []) == []


def test_granted_to_the_fleet_and_operators_only(db: Conn) -> None:
    rows = db.execute(
        "select r.rolname, has_function_privilege(r.rolname, 'public.queue_jobs(jsonb)', 'execute')"
        " from pg_roles r where r.rolname in"
        " ('anon', 'authenticated', 'service_role', 'enforcement_operator', 'dragonfly_worker')"
        " order by 1"
    ).fetchall()
    assert rows == [
        ("anon", False),
        ("authenticated", False),
        ("dragonfly_worker", True),
        ("enforcement_operator", True),
        ("service_role", True),
    ]
    assert db.execute(
        "select prosecdef, has_function_privilege('public', oid, 'execute') is not true"
        " from pg_proc where oid = 'public.queue_jobs(jsonb)'::regprocedure"
    ).fetchone() == (True, True)


@pytest.fixture
def public_bulk(db: Conn) -> None:
    """A deployment that grants the bulk call to the public roles (docs/rpc.md): they are
    then held to the same policy as through queue_job(). Rolled back with the test."""
    db.execute("grant execute on function public.queue_jobs(jsonb) to anon, authenticated")


# --- public callers ----------------------------------------------------------------------


def test_public_keys_live_in_the_callers_namespace(db: Conn, public_bulk: None) -> None:
    seeded = seed(db)
    internal = queue_job(
        db, {"kind": "enforce", "idempotency_key": "mine", "payload": {"case_id": seeded.case_id}}
    )
    become(db, VIEWER)
    got = queue_jobs(
        db,
        [
            {"kind": "enforce", "idempotency_key": "mine", "payload": {"case_id": seeded.case_id}},
            {"kind": "enrich", "idempotency_key": "b", "payload": {"bundle": {}}},
        ],
    )
    db.execute("reset role")
    # The fleet's key "mine" is neither taken nor revealed: the public one is another job.
    assert got[0][0] is not None
    assert got[0][0] != internal
    # A field public callers may not set is refused as queue_job() refuses it.
    assert got[1][1] == "42501"
    keys = [
        r[0]
        for r in db.execute(
            "select idempotency_key from dragonfly.enqueued_jobs"
            " where msg_id = %s and kind = 'enforce'",
            (got[0][0],),
        )
    ]
    assert len(keys) == 1
    assert keys[0].startswith("public:")
    assert keys[0].endswith(":mine")
    row = db.execute(
        "select message from pgmq.q_enforce where msg_id = %s", (got[0][0],)
    ).fetchone()
    assert row is not None
    assert row[0]["provenance"]["level"] == "public"


def test_public_callers_are_held_to_the_rate_limits(db: Conn, public_bulk: None) -> None:
    db.execute(
        "update dragonfly.job_kind_policies set rate_per_minute = 3"
        " where kind = 'enforce' and level = 'public'"
    )
    cases = [seed(db).case_id for _ in range(6)]
    one_case = seed(db).case_id
    become(db, VIEWER)
    first = queue_jobs(
        db,
        [
            {"kind": "enforce", "idempotency_key": "r0", "payload": {"case_id": cases[0]}},
            {"kind": "enforce", "idempotency_key": "r1", "payload": {"case_id": cases[1]}},
        ],
    )
    assert all(m is not None for m, _, _ in first)
    got = queue_jobs(
        db,
        [
            {"kind": "enforce", "idempotency_key": "r0", "payload": {"case_id": cases[0]}},
            {"kind": "enforce", "idempotency_key": "r2", "payload": {"case_id": cases[2]}},
            {"kind": "enforce", "idempotency_key": "r3", "payload": {"case_id": cases[3]}},
            {"kind": "enforce", "idempotency_key": "r4", "payload": {"case_id": cases[4]}},
        ],
    )
    # A repeat is free; one more new job fits in the minute, the rest are refused.
    assert got[0] == first[0]
    assert got[1][0] is not None
    for msg_id, sqlstate, message in got[2:]:
        assert (msg_id, sqlstate) == (None, "PT429")
        assert "rate limit reached: enforce jobs from public callers (3 per minute)" in (
            message or ""
        )
        assert "retry in " in (message or "")
    # The refused jobs were not counted; queue_job() agrees that the minute is full.
    r5 = {"kind": "enforce", "idempotency_key": "r5", "payload": {"case_id": cases[5]}}
    single = alone(db, r5)
    assert single[1] == "PT429"
    db.execute("reset role")
    # The window is the tenant's: public callers of other tenants have theirs.
    assert db.execute(
        "select jobs from dragonfly.enqueue_rate_windows where scope = %s",
        (f"public:enforce:tenant:{DEFAULT_TENANT}",),
    ).fetchone() == (3,)

    # The per-target hourly limit (4 enforce jobs per case for public callers).
    db.execute(
        "update dragonfly.job_kind_policies set rate_per_minute = null"
        " where kind = 'enforce' and level = 'public'"
    )
    become(db, VIEWER)
    got = queue_jobs(
        db,
        [
            {"kind": "enforce", "idempotency_key": f"t{n}", "payload": {"case_id": one_case}}
            for n in range(6)
        ],
    )
    db.execute("reset role")
    assert [m is not None for m, _, _ in got] == [True] * 4 + [False] * 2
    for _, sqlstate, message in got[4:]:
        assert sqlstate == "PT429"
        assert f"enforce jobs for {one_case} from public callers (4 per hour)" in (message or "")


# --- concurrency -------------------------------------------------------------------------


def test_a_key_committed_meanwhile_by_another_transaction_is_not_sent_twice(
    fresh_db_url: str,
) -> None:
    with psycopg.connect(fresh_db_url, autocommit=True) as setup:
        payload = valid_jobs(setup)["enrich"]
    job = {"kind": "enrich", "idempotency_key": "race", "payload": payload}
    with psycopg.connect(fresh_db_url) as first, psycopg.connect(fresh_db_url) as second:
        winner = queue_job(first, job)  # not committed yet: the probe below cannot see it
        result: list[Any] = []

        def bulk() -> None:
            result.append(queue_jobs(second, [job, {**job, "idempotency_key": "other"}]))
            second.commit()

        thread = threading.Thread(target=bulk)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the claim must wait for the other transaction"
        first.commit()
        thread.join(10)
        assert not thread.is_alive()
        got = result[0]
        assert got[0] == (winner, None, None)
        assert SENT == [False, True]
        assert got[1][0] is not None
        assert first.execute(
            "select count(*) from pgmq.q_enrich where message->>'idempotency_key' = 'race'"
        ).fetchone() == (1,)
