"""record_enforcement_payment with an idempotency_key: a repeat writes nothing.

Each test runs in the ``db`` fixture's rolled-back transaction; the concurrent case (two
connections, one key) is in tests/integration/test_enforcement_concurrency.py.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sql.enforcement_seed import Seeded, fingerprint, one, refused, rpc, seed

Conn = psycopg.Connection[Any]
PAY = "record_enforcement_payment"


def key() -> str:
    return f"pay-{uuid.uuid4()}"


def keys_used(db: Conn) -> int:
    return int(one(db, "select count(*) from enforcement_private.payment_idempotency_keys"))


def balance(db: Conn, seeded: Seeded) -> Decimal:
    value = one(
        db, "select current_balance from public.enforcement_cases where id = %s", (seeded.case_id,)
    )
    assert isinstance(value, Decimal)
    return value


def test_the_same_key_again_returns_the_first_result_and_writes_nothing(
    db: Conn, enf_case: Seeded
) -> None:
    payload = {"case_id": enf_case.case_id, "amount": "125.50", "idempotency_key": key()}
    first = rpc(db, PAY, payload)
    assert first["case_balance"] == 874.50
    before = fingerprint(db)
    again = rpc(db, PAY, {**payload, "amount": 125.5, "source": "console retry"})
    assert again == first
    assert fingerprint(db) == before  # no event, no history, no balance change
    assert balance(db, enf_case) == Decimal("874.50")
    event = one(
        db, "select payload from public.enforcement_events where id = %s", (first["event_id"],)
    )
    assert event["idempotency_key"] == payload["idempotency_key"]


def test_without_a_key_a_payment_sent_twice_is_two_payments(db: Conn, enf_case: Seeded) -> None:
    payload = {"case_id": enf_case.case_id, "amount": 100}
    first, second = rpc(db, PAY, payload), rpc(db, PAY, payload)
    assert first["event_id"] != second["event_id"]
    assert balance(db, enf_case) == Decimal("800.00")
    assert keys_used(db) == 0


def test_the_same_key_for_another_amount_or_case_is_refused(db: Conn, enf_case: Seeded) -> None:
    other = seed(db)
    used = key()
    rpc(db, PAY, {"case_id": enf_case.case_id, "amount": 10, "idempotency_key": used})
    error = refused(
        db, "23505", PAY, {"case_id": enf_case.case_id, "amount": 11, "idempotency_key": used}
    )
    assert f"idempotency_key {used} was already used for a payment of 10.00" in str(error)
    refused(db, "23505", PAY, {"case_id": other.case_id, "amount": 10, "idempotency_key": used})
    assert keys_used(db) == 1
    assert balance(db, other) == Decimal("1000.00")


def test_a_refused_payment_does_not_use_up_its_key(db: Conn, enf_case: Seeded) -> None:
    used = key()
    refused(
        db, "DF004", PAY, {"case_id": enf_case.case_id, "amount": 5000, "idempotency_key": used}
    )
    assert keys_used(db) == 0
    result = rpc(db, PAY, {"case_id": enf_case.case_id, "amount": 50, "idempotency_key": used})
    assert result["amount"] == 50


def test_a_replay_after_the_case_closed_still_returns_the_first_result(
    db: Conn, enf_case: Seeded
) -> None:
    payload = {"case_id": enf_case.case_id, "amount": 1000, "idempotency_key": key()}
    first = rpc(db, PAY, payload)
    rpc(db, "close_enforcement_case", {"case_id": enf_case.case_id, "status": "satisfied"})
    assert rpc(db, PAY, payload) == first


@pytest.mark.parametrize("bad", ["", "   ", 42, True, ["k"], "k" * 201])
def test_a_malformed_key_is_refused(db: Conn, enf_case: Seeded, bad: Any) -> None:
    error = refused(
        db, "22023", PAY, {"case_id": enf_case.case_id, "amount": 1, "idempotency_key": bad}
    )
    assert "idempotency_key" in str(error)
    assert keys_used(db) == 0


# Payments drawn from a few keys, amounts and no key at all: the balance falls by the amount
# of each key's first use and of every keyless payment; a reuse with another amount is 23505.
PAYMENTS = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", None]), st.sampled_from(["1.00", "2.50", "7"])),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(payments=PAYMENTS)
def test_balance_counts_each_key_once(db: Conn, payments: list[tuple[str | None, str]]) -> None:
    with db.transaction(force_rollback=True):
        case = seed(db)
        run = uuid.uuid4().hex
        first_amount: dict[str, Decimal] = {}
        expected = Decimal("1000.00")
        for name, amount in payments:
            payload: dict[str, Any] = {"case_id": case.case_id, "amount": amount}
            if name is None:
                rpc(db, PAY, payload)
                expected -= Decimal(amount)
                continue
            payload["idempotency_key"] = f"{run}-{name}"
            if name not in first_amount:
                first_amount[name] = Decimal(amount)
                expected -= Decimal(amount)
                rpc(db, PAY, payload)
            elif first_amount[name] == Decimal(amount):
                rpc(db, PAY, payload)
            else:
                refused(db, "23505", PAY, payload)
        assert balance(db, case) == expected
        events = one(
            db,
            "select count(*) from public.enforcement_events "
            "where enforcement_case_id = %s and event_kind = 'payment_received'",
            (case.case_id,),
        )
        assert events == len(first_amount) + sum(name is None for name, _ in payments)
