"""Hypothesis-generated payloads for every jsonb enforcement RPC.

Each payload mixes valid values (real case, judgment, plaintiff, action and task ids, real
stages, kinds and statuses) with wrong ones (random uuids, wrong JSON types, out-of-range
numbers, unknown fields, non-object payloads). Whatever comes in, a call either succeeds or
fails with one of the documented SQLSTATEs, and a failed call leaves every table it could
have written exactly as it was. Calls run as enforcement_operator, the way PostgREST would
make them; every example runs in a savepoint that is rolled back.

Strings never contain NUL or lone surrogates: jsonb cannot hold them, so the server refuses
such a payload while parsing the argument, before any RPC runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.sql.enforcement_seed import (
    DOCUMENTED_SQLSTATES,
    ENFORCEMENT_RPCS,
    act_as,
    fingerprint,
    rpc,
    seed,
)

Conn = psycopg.Connection[Any]

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
junk = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=5,
)
objects = st.dictionaries(text, junk, max_size=3)
timestamps = st.sampled_from(
    [
        "2026-01-01T00:00:00Z",
        "2020-02-29 12:00:00+02",
        "2150-01-01T00:00:00Z",
        "1899-12-31T00:00:00Z",
        "infinity",
        "not a date",
        "2026-13-40",
        "now",
    ]
) | st.datetimes(timezones=st.just(__import__("datetime").timezone.utc)).map(
    lambda d: d.isoformat()
)
money = (
    st.decimals(min_value=-10, max_value=2000, places=2, allow_nan=False).map(str)
    | st.floats(min_value=-10, max_value=2000, allow_nan=False)
    | st.integers(min_value=-5, max_value=2000)
    | st.sampled_from(["0", "0.001", "1e3", " 5 ", "abc", "999999999999.99"])
)
paths = st.sampled_from(["docs/a.pdf", "cases/x/y z.pdf", "../x", "/abs", "a//b", " "]) | text


@dataclass(frozen=True)
class World:
    """Rows the generated payloads may point at."""

    open_case: str
    closed_case: str
    subpoena_case: str
    judgment_without_case: str
    judgment_with_case: str
    plaintiff: str
    subpoena_action: str
    levy_action: str
    task: str


@pytest.fixture
def enf_world(db: Conn) -> World:
    open_ = seed(db)
    closed = seed(db)
    rpc(db, "close_enforcement_case", {"case_id": closed.case_id, "status": "withdrawn"})
    sub = seed(db)
    issued = rpc(
        db, "issue_subpoena", {"case_id": sub.case_id, "recipient": "Bank", "document_path": "s/1"}
    )
    levy = rpc(
        db, "queue_enforcement_action", {"case_id": open_.case_id, "action_type": "bank_levy"}
    )
    bare = seed(db, open_case=False)
    assert open_.case_id
    assert closed.case_id
    assert sub.case_id
    return World(
        open_case=open_.case_id,
        closed_case=closed.case_id,
        subpoena_case=sub.case_id,
        judgment_without_case=bare.judgment_id,
        judgment_with_case=open_.judgment_id,
        plaintiff=open_.plaintiff_id,
        subpoena_action=str(issued["action_id"]),
        levy_action=str(levy),
        task=str(issued["task_id"]),
    )


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Pick a strategy with the given weights (``a | b`` does not weight its branches)."""
    slots = [strategy for weight, strategy in options for _ in range(weight)]
    return st.sampled_from(range(len(slots))).flatmap(lambda i: slots[i])


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually ``good`` (so calls get past validation and reach the deeper rules), else ``bad``."""
    return weighted((9, good), (1, bad))


def ids(world: World) -> st.SearchStrategy[Any]:
    known = st.sampled_from(
        [
            world.open_case,
            world.closed_case,
            world.subpoena_case,
            world.judgment_without_case,
            world.judgment_with_case,
            world.plaintiff,
            world.subpoena_action,
            world.levy_action,
            world.task,
        ]
    )
    return mostly(known, st.uuids().map(str) | junk)


def choice(values: list[str]) -> st.SearchStrategy[Any]:
    return mostly(st.sampled_from(values), junk)


past = st.datetimes(
    min_value=__import__("datetime").datetime(2020, 1, 1),
    max_value=__import__("datetime").datetime(2026, 1, 1),
    timezones=st.just(__import__("datetime").timezone.utc),
).map(lambda d: d.isoformat())
future = st.sampled_from(["2031-01-01T00:00:00Z", "2030-06-30 09:00:00-05"])
good_money = st.decimals(min_value="0.01", max_value="1500", places=2).map(str) | st.integers(
    min_value=1, max_value=1500
)


def fields(
    name: str, world: World
) -> tuple[dict[str, st.SearchStrategy[Any]], dict[str, st.SearchStrategy[Any]]]:
    """(required, optional) field strategies of one RPC's payload."""
    any_id = ids(world)
    stages = [
        "pre_enforcement", "asset_search", "information_subpoena", "bank_levy",
        "wage_garnishment", "marshal_execution", "payment_plan", "satisfied", "nowhere",
    ]  # fmt: skip
    kinds = [
        "note_added", "asset_search_requested", "asset_search_completed", "bank_levy_filed",
        "bank_levy_served", "garnishment_remittance", "marshal_attempted", "marshal_result",
        "payment_received", "case_stage_changed", "subpoena_issued", "bogus_kind",
    ]  # fmt: skip
    words = mostly(st.text(st.characters(codec="ascii", categories=["L"]), min_size=1), junk)
    when = mostly(past, timestamps | junk)
    due = mostly(future, timestamps | junk)
    path = mostly(st.sampled_from(["docs/a.pdf", "cases/x/y z.pdf"]), paths | junk)
    meta = mostly(objects, junk)
    table: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "open_enforcement_case": (
            {"judgment_id": any_id},
            {
                "plaintiff_id": any_id,
                "tier": choice(["tier0", "tier1", "tier2", "tier3", "tier4"]),
                "collectability_score": mostly(good_money.filter(lambda v: float(v) <= 100), money),
                "created_by": words,
                "notes": words,
            },
        ),
        "close_enforcement_case": (
            {"case_id": any_id, "status": choice(["satisfied", "uncollectible", "withdrawn", "x"])},
            {"note": words, "closed_by": words},
        ),
        "set_enforcement_stage": (
            {"case_id": any_id, "stage": choice(stages)},
            {
                "actor": words,
                "note": words,
                "metadata": meta,
                "override": mostly(st.booleans(), junk),
                "next_action_at": when,
            },
        ),
        "log_enforcement_event": (
            {"case_id": any_id, "event_kind": choice(kinds)},
            {
                "payload": mostly(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "asset_flags": mostly(
                                st.dictionaries(
                                    st.sampled_from(["bank", "employer", "Bad Key"]), st.booleans()
                                ),
                                junk,
                            )
                        },
                    ),
                    objects | junk,
                ),
                "document_path": path,
                "related_task_id": any_id,
                "actor": words,
                "occurred_at": when,
            },
        ),
        "queue_enforcement_action": (
            {
                "case_id": any_id,
                "action_type": choice(["bank_levy", "garnishment", "subpoena", "marshal", "lien"]),
            },
            {
                "status": choice(
                    ["queued", "in_progress", "awaiting_response", "completed", "cancelled", "x"]
                ),
                "metadata": meta,
                "status_reason": words,
                "actor": words,
            },
        ),
        "record_enforcement_payment": (
            {"case_id": any_id, "amount": mostly(good_money, money | junk)},
            {
                "judgment_id": any_id,
                "received_at": when,
                "source": words,
                "document_path": path,
                "actor": words,
            },
        ),
        "issue_subpoena": (
            {"case_id": any_id, "recipient": words, "document_path": path},
            {
                "recipient_type": choice(["bank", "employer", "debtor", "other", "alien"]),
                "due_at": due,
                "metadata": meta,
                "note": words,
                "actor": words,
            },
        ),
        "record_subpoena_response": (
            {"outcome": choice(["complied", "partial", "objected", "no_response", "ignored"])},
            {
                "action_id": any_id,
                "case_id": any_id,
                "received_at": when,
                "document_path": path,
                "response": meta,
                "review_due_at": due,
                "note": words,
                "actor": words,
            },
        ),
    }
    return table[name]


def payloads(name: str, world: World) -> st.SearchStrategy[Any]:
    required, optional = fields(name, world)
    shaped = st.fixed_dictionaries(required, optional=optional)
    if name == "record_subpoena_response":
        # It needs action_id or case_id: make one of them present in the shaped payloads.
        shaped = weighted(
            *(
                (1, st.fixed_dictionaries(
                    required | {key: optional[key]},
                    optional={k: v for k, v in optional.items() if k != key},
                ))
                for key in ("action_id", "case_id")
            )
        )  # fmt: skip
    wild = st.fixed_dictionaries({}, optional=required | optional)
    with_extra = st.tuples(shaped, st.dictionaries(text, junk, min_size=1, max_size=2)).map(
        lambda pair: pair[1] | pair[0]
    )
    return weighted((14, shaped), (2, wild), (2, with_extra), (1, junk))


@pytest.mark.parametrize("name", ENFORCEMENT_RPCS)
@SETTINGS
@given(data=st.data())
def test_generated_payloads_get_documented_codes_and_write_nothing_on_failure(
    db: Conn, enf_world: World, name: str, data: st.DataObject
) -> None:
    payload = data.draw(payloads(name, enf_world), label="payload")
    with db.transaction(force_rollback=True):
        before = fingerprint(db)
        try:
            with db.transaction():
                act_as(db, "enforcement_operator")
                rpc(db, name, payload)
            outcome = "ok"
        except psycopg.Error as error:
            outcome = error.sqlstate or "?"
            message = str(error)
        event(f"sqlstate {outcome}")
        if outcome != "ok":
            assert outcome in DOCUMENTED_SQLSTATES, (outcome, message, payload)
            db.execute("reset role")
            assert fingerprint(db) == before, payload


def test_the_generators_reach_both_success_and_refusal(db: Conn, enf_world: World) -> None:
    """Guard against a strategy that only ever produces garbage (or only valid calls)."""
    outcomes: Counter[str] = Counter()

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(payload=payloads("queue_enforcement_action", enf_world))
    def probe(payload: Any) -> None:
        with db.transaction(force_rollback=True):
            try:
                with db.transaction():
                    rpc(db, "queue_enforcement_action", payload)
                outcomes["ok"] += 1
            except psycopg.Error as error:
                outcomes[error.sqlstate or "?"] += 1

    probe()
    assert outcomes["22023"] > 0
    assert outcomes["ok"] > 0
    assert sum(outcomes.values()) == 40
