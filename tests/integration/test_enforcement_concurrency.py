"""The enforcement RPCs under real concurrency and real commits, each test on a database of
its own (``fresh_db_url``): racing case opens, concurrent payments, NOTIFY delivery on commit
(never on rollback), and refresh_enforcement_metrics() beside a busy case.

Nothing here sleeps for a fixed time: waits poll with a deadline, and "nothing arrived" is
proved by a later sentinel notification (notifications arrive in commit order).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

import psycopg
import pytest

from tests.sql.enforcement_seed import Seeded, one, rpc, seed

Conn = psycopg.Connection[Any]
T = TypeVar("T")

CHANNEL = "enforcement_events_channel"
DEADLINE = 20.0

pytestmark = pytest.mark.slow


@contextmanager
def connect(url: str, *, autocommit: bool = False) -> Iterator[Conn]:
    conn = psycopg.connect(url, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def seeded(url: str, **kwargs: Any) -> Seeded:
    with connect(url) as conn:
        result = seed(conn, **kwargs)
        conn.commit()
        return result


def wait_until(predicate: Callable[[], T], what: str, deadline: float = DEADLINE) -> T:
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def waiting_on_lock(url: str, pid: int) -> bool:
    with connect(url, autocommit=True) as conn:
        return bool(
            one(
                conn,
                "select coalesce(wait_event_type = 'Lock', false) from pg_stat_activity "
                "where pid = %s",
                (pid,),
            )
        )


# --------------------------------------------------------------------------------------
# One open case per judgment


def test_a_second_open_waits_for_the_first_and_then_is_refused(fresh_db_url: str) -> None:
    judgment = seeded(fresh_db_url, open_case=False).judgment_id
    with connect(fresh_db_url) as first, connect(fresh_db_url) as second:
        rpc(first, "open_enforcement_case", {"judgment_id": judgment})  # not committed yet
        second_pid = second.info.backend_pid

        def open_second() -> str | None:
            try:
                rpc(second, "open_enforcement_case", {"judgment_id": judgment})
                second.commit()
            except psycopg.Error as error:
                second.rollback()
                return error.sqlstate
            return None

        with ThreadPoolExecutor(1) as pool:
            outcome = pool.submit(open_second)
            wait_until(
                lambda: waiting_on_lock(fresh_db_url, second_pid), "the second open to block"
            )
            assert not outcome.done()
            first.commit()
            assert outcome.result(timeout=DEADLINE) == "23505"

    with connect(fresh_db_url) as conn:
        assert (
            one(
                conn,
                "select count(*) from public.enforcement_cases where judgment_id = %s",
                (judgment,),
            )
            == 1
        )


def test_racing_opens_create_exactly_one_case(fresh_db_url: str) -> None:
    judgment = seeded(fresh_db_url, open_case=False).judgment_id
    racers = 6
    barrier = threading.Barrier(racers)

    def race() -> str | None:
        with connect(fresh_db_url) as conn:
            barrier.wait(timeout=DEADLINE)
            try:
                rpc(conn, "open_enforcement_case", {"judgment_id": judgment})
                conn.commit()
            except psycopg.Error as error:
                return error.sqlstate
            return None

    with ThreadPoolExecutor(racers) as pool:
        outcomes = [f.result(timeout=DEADLINE) for f in [pool.submit(race) for _ in range(racers)]]
    assert outcomes.count(None) == 1
    assert outcomes.count("23505") == racers - 1
    with connect(fresh_db_url) as conn:
        assert (
            one(
                conn,
                "select count(*) from public.enforcement_cases where judgment_id = %s",
                (judgment,),
            )
            == 1
        )


# --------------------------------------------------------------------------------------
# Concurrent payments

PAYMENTS = 50
CONNECTIONS = 25  # all in flight at once; each makes PAYMENTS / CONNECTIONS payments


def pay_concurrently(url: str, case_id: str, amounts: list[Decimal]) -> list[str | None]:
    """Make the payments from CONNECTIONS connections started together; one outcome each."""
    barrier = threading.Barrier(CONNECTIONS)
    chunks = [amounts[i::CONNECTIONS] for i in range(CONNECTIONS)]

    def worker(chunk: list[Decimal]) -> list[str | None]:
        results: list[str | None] = []
        with connect(url, autocommit=True) as conn:
            barrier.wait(timeout=DEADLINE)
            for amount in chunk:
                try:
                    rpc(
                        conn,
                        "record_enforcement_payment",
                        {"case_id": case_id, "amount": str(amount)},
                    )
                    results.append(None)
                except psycopg.Error as error:
                    results.append(error.sqlstate)
        return results

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        futures = [pool.submit(worker, chunk) for chunk in chunks]
        return [outcome for f in futures for outcome in f.result(timeout=DEADLINE * 3)]


def balances(url: str, case_id: str) -> tuple[Decimal, Decimal, int]:
    with connect(url) as conn:
        row = conn.execute(
            """
            select c.current_balance, j.balance_due,
                   (select count(*) from public.enforcement_events e
                     where e.enforcement_case_id = c.id and e.event_kind = 'payment_received')
            from public.enforcement_cases c join public.judgments j on j.id = c.judgment_id
            where c.id = %s
            """,
            (case_id,),
        ).fetchone()
        assert row is not None
        return row[0], row[1], row[2]


@pytest.mark.parametrize("first_ends", ["commit", "rollback"])
def test_a_payment_retried_while_the_first_is_in_flight_is_recorded_once(
    fresh_db_url: str, first_ends: str
) -> None:
    case = seeded(fresh_db_url)
    assert case.case_id is not None
    payload = {"case_id": case.case_id, "amount": "40.00", "idempotency_key": "retry-1"}
    with connect(fresh_db_url) as first, connect(fresh_db_url) as second:
        result = rpc(first, "record_enforcement_payment", payload)  # not committed yet
        second_pid = second.info.backend_pid

        def retry() -> Any:
            answer = rpc(second, "record_enforcement_payment", payload)
            second.commit()
            return answer

        with ThreadPoolExecutor(1) as pool:
            outcome = pool.submit(retry)
            wait_until(lambda: waiting_on_lock(fresh_db_url, second_pid), "the retry to block")
            assert not outcome.done()
            getattr(first, first_ends)()
            replayed = outcome.result(timeout=DEADLINE)
    # Committed: the retry replays the first result. Rolled back: the retry is the payment.
    assert (replayed == result) is (first_ends == "commit")
    assert balances(fresh_db_url, case.case_id) == (Decimal("960.00"), Decimal("960.00"), 1)


def test_fifty_concurrent_payments_leave_the_exact_balance(fresh_db_url: str) -> None:
    case = seeded(fresh_db_url, amount="10000.00")
    assert case.case_id is not None
    amounts = [Decimal("1.01") * (i + 1) for i in range(PAYMENTS)]  # 1.01 .. 50.50
    outcomes = pay_concurrently(fresh_db_url, case.case_id, amounts)
    assert outcomes == [None] * PAYMENTS
    expected = Decimal("10000.00") - sum(amounts)
    assert balances(fresh_db_url, case.case_id) == (expected, expected, PAYMENTS)


def test_concurrent_payments_never_overdraw(fresh_db_url: str) -> None:
    case = seeded(fresh_db_url, amount="100.00")
    assert case.case_id is not None
    outcomes = pay_concurrently(fresh_db_url, case.case_id, [Decimal("3.00")] * PAYMENTS)
    assert outcomes.count(None) == 33
    assert outcomes.count("DF004") == PAYMENTS - 33
    assert balances(fresh_db_url, case.case_id) == (Decimal("1.00"), Decimal("1.00"), 33)


# --------------------------------------------------------------------------------------
# NOTIFY enforcement_events_channel


class Listener:
    """An autocommit LISTEN connection that remembers every payload it received."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.received: list[dict[str, Any]] = []
        conn.execute(f"listen {CHANNEL}")

    def until(self, event_id: str) -> list[dict[str, Any]]:
        """Collect notifications until ``event_id`` arrives (or the deadline passes)."""
        end = time.monotonic() + DEADLINE
        while not any(n["event_id"] == event_id for n in self.received):
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no notification for event {event_id}")
            for note in self.conn.notifies(timeout=remaining, stop_after=1):
                assert note.channel == CHANNEL
                self.received.append(json.loads(note.payload))
        return self.received

    def ids(self) -> set[str]:
        return {n["event_id"] for n in self.received}


def sentinel(url: str, case_id: str) -> str:
    """Commit a note on ``case_id`` from a connection of its own; return its event id."""
    with connect(url) as conn:
        event_id = str(
            rpc(conn, "log_enforcement_event", {"case_id": case_id, "event_kind": "note_added"})
        )
        conn.commit()
        return event_id


def test_notify_arrives_after_commit_and_not_before(fresh_db_url: str) -> None:
    case = seeded(fresh_db_url)
    other = seeded(fresh_db_url)
    assert case.case_id
    assert other.case_id
    with connect(fresh_db_url, autocommit=True) as lconn, connect(fresh_db_url) as writer:
        listener = Listener(lconn)
        levy = str(
            rpc(
                writer,
                "log_enforcement_event",
                {
                    "case_id": case.case_id,
                    "event_kind": "bank_levy_filed",
                    "document_path": "l/1.pdf",
                },
            )
        )
        # While the writer's transaction is open, a later commit arrives and the levy does not.
        listener.until(sentinel(fresh_db_url, other.case_id))
        assert levy not in listener.ids()

        writer.commit()
        received = listener.until(levy)
        note = next(n for n in received if n["event_id"] == levy)
        assert note == {"event_id": levy, "case_id": case.case_id, "kind": "bank_levy_filed"}


def test_notify_never_arrives_after_a_rollback(fresh_db_url: str) -> None:
    case = seeded(fresh_db_url)
    assert case.case_id
    with connect(fresh_db_url, autocommit=True) as lconn, connect(fresh_db_url) as writer:
        listener = Listener(lconn)
        doomed = str(
            rpc(
                writer,
                "log_enforcement_event",
                {"case_id": case.case_id, "event_kind": "note_added"},
            )
        )
        stage = rpc(
            writer, "set_enforcement_stage", {"case_id": case.case_id, "stage": "asset_search"}
        )
        writer.rollback()
        listener.until(sentinel(fresh_db_url, case.case_id))
        assert doomed not in listener.ids()
        assert str(stage["event_id"]) not in listener.ids()


def test_every_writer_of_events_notifies(fresh_db_url: str) -> None:
    case = seeded(fresh_db_url)
    assert case.case_id
    with connect(fresh_db_url, autocommit=True) as lconn, connect(fresh_db_url) as writer:
        listener = Listener(lconn)
        payment = rpc(writer, "record_enforcement_payment", {"case_id": case.case_id, "amount": 5})
        subpoena = rpc(
            writer,
            "issue_subpoena",
            {"case_id": case.case_id, "recipient": "B", "document_path": "s/x"},
        )
        direct = one(
            writer,
            "insert into public.enforcement_events (enforcement_case_id, event_kind) "
            "values (%s, 'note_added') returning id::text",
            (case.case_id,),
        )
        writer.commit()
        listener.until(direct)
        kinds = {n["kind"] for n in listener.received}
        assert {"payment_received", "subpoena_issued", "action_opened", "note_added"} <= kinds
        assert {str(payment["event_id"]), str(subpoena["event_id"]), direct} <= listener.ids()
        assert all(set(n) == {"event_id", "case_id", "kind"} for n in listener.received)


# --------------------------------------------------------------------------------------
# refresh_enforcement_metrics() beside the fleet


def test_refresh_skips_a_case_an_rpc_holds_and_catches_it_next_time(fresh_db_url: str) -> None:
    busy = seeded(fresh_db_url, score="80", tier="tier0")
    idle = seeded(fresh_db_url, score="80", tier="tier0")
    with connect(fresh_db_url, autocommit=True) as admin:
        admin.execute("select public.refresh_enforcement_metrics()")
        admin.execute(
            "update judgments.cases set collectability_score = 10, collectability_tier = 'tier3' "
            "where judgment_id = any(%s::uuid[])",
            ([busy.judgment_id, idle.judgment_id],),
        )
    with connect(fresh_db_url) as holder, connect(fresh_db_url) as scheduler:
        rpc(holder, "set_enforcement_stage", {"case_id": busy.case_id, "stage": "asset_search"})
        scheduler.execute("set statement_timeout = '10s'")  # a wait would fail, not hang
        result = one(scheduler, "select public.refresh_enforcement_metrics()")
        scheduler.commit()
        assert result["skipped_locked"] == 1
        assert result["tiers_changed"] == 1
        holder.commit()
        again = one(scheduler, "select public.refresh_enforcement_metrics()")
        scheduler.commit()
        assert again["tiers_changed"] == 1
        assert again["skipped_locked"] == 0
        tiers = scheduler.execute(
            "select tier from public.enforcement_cases where id = any(%s::uuid[])",
            ([busy.case_id, idle.case_id],),
        ).fetchall()
        assert tiers == [("tier3",), ("tier3",)]
