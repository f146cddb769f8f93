"""Audit fields record the session, not the payload (finding: 7 of 7 RPCs recorded the
caller's ``actor`` / ``closed_by`` / ``created_by``); timestamps are ISO 8601 only; the
typed-argument maintenance RPCs name a bad argument."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.security.support import OPERATOR_EMAIL, become, postgrest_rpc, refusal
from tests.sql.enforcement_seed import (
    DIGESTED_TABLES,
    ENFORCEMENT_RPCS,
    Seeded,
    fingerprint,
    one,
    rpc,
    seed_court_case,
    seed_judgment,
    valid_call,
)

Conn = psycopg.Connection[Any]

NAMED = "dragonfly:scheduler"
ACTOR_FIELD = {"open_enforcement_case": "created_by", "close_enforcement_case": "closed_by"}
AUDIT_TABLES = tuple(t for t in DIGESTED_TABLES if t != "public.judgments")
FLEET_RPCS = (
    "set_enforcement_stage",
    "log_enforcement_event",
    "queue_enforcement_action",
    "issue_subpoena",
)


def recorded_actors(conn: Conn) -> set[str]:
    """Every value of every audit column (actor, *_by) of the tables the RPCs write."""
    columns = conn.execute(
        "select table_schema || '.' || table_name, column_name from information_schema.columns"
        " where table_schema || '.' || table_name = any(%s) and data_type = 'text'"
        " and (column_name = 'actor' or column_name like '%%\\_by')",
        (list(AUDIT_TABLES),),
    ).fetchall()
    assert len(columns) >= 8
    query = " union ".join(f"select {column} from {table}" for table, column in columns)
    return {row[0] for row in conn.execute(query).fetchall() if row[0] is not None}


def call_naming(conn: Conn, role: str, name: str, seeded: Seeded) -> set[str]:
    """Call ``name`` as ``role`` with the payload naming NAMED as its actor; return what the
    audit columns hold afterwards (the call is rolled back)."""
    with conn.transaction(force_rollback=True):
        _, payload = valid_call(conn, name, seeded)
        payload[ACTOR_FIELD.get(name, "actor")] = NAMED
        become(conn, role)
        rpc(conn, name, payload)
        conn.execute("reset role")
        return recorded_actors(conn)


@pytest.mark.parametrize("name", ENFORCEMENT_RPCS)
def test_an_operator_is_recorded_as_itself_with_the_name_as_a_note(
    db: Conn, enf_case: Seeded, name: str
) -> None:
    actors = call_naming(db, "enforcement_operator", name, enf_case)
    assert NAMED not in actors
    assert f"{OPERATOR_EMAIL} (on behalf of {NAMED})" in actors


@pytest.mark.parametrize("name", ENFORCEMENT_RPCS)
def test_an_operator_naming_nobody_is_recorded_as_itself(
    db: Conn, enf_case: Seeded, name: str
) -> None:
    with db.transaction(force_rollback=True):
        _, payload = valid_call(db, name, enf_case)
        become(db, "enforcement_operator")
        rpc(db, name, payload)
        db.execute("reset role")
        assert OPERATOR_EMAIL in recorded_actors(db)


@pytest.mark.parametrize("name", ENFORCEMENT_RPCS)
def test_service_role_may_name_the_actor(db: Conn, enf_case: Seeded, name: str) -> None:
    assert NAMED in call_naming(db, "service_role", name, enf_case)


@pytest.mark.parametrize("name", FLEET_RPCS)
def test_the_fleet_may_name_the_actor(db: Conn, enf_case: Seeded, name: str) -> None:
    assert NAMED in call_naming(db, "dragonfly_worker", name, enf_case)


@pytest.mark.parametrize(
    ("role", "sqlstate"),
    # anon may not execute them; a signed-in user may, and, no member of the case's tenant,
    # reaches no row: the answer of a missing one.
    [("anon", "42501"), ("authenticated", "P0002")],
)
@pytest.mark.parametrize("name", ENFORCEMENT_RPCS)
def test_public_callers_cannot_call_the_enforcement_rpcs(
    db: Conn, enf_case: Seeded, role: str, sqlstate: str, name: str
) -> None:
    _, payload = valid_call(db, name, enf_case)
    before = fingerprint(db)
    error = refusal(db, lambda: (become(db, role), rpc(db, name, payload)))
    assert error.sqlstate == sqlstate
    assert fingerprint(db) == before


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("set_enforcement_stage", "next_action_at"),
        ("log_enforcement_event", "occurred_at"),
        ("record_enforcement_payment", "received_at"),
        ("issue_subpoena", "due_at"),
    ],
)
@pytest.mark.parametrize("value", ["tomorrow", "J2461000", "1/2/2027", "epoch", "now", "allballs"])
def test_timestamp_fields_are_iso_8601_only(
    db: Conn, enf_case: Seeded, name: str, field: str, value: str
) -> None:
    _, payload = valid_call(db, name, enf_case)
    payload[field] = value
    before = fingerprint(db)
    error = refusal(db, lambda: (become(db, "enforcement_operator"), rpc(db, name, payload)))
    assert error.sqlstate == "22023"
    assert f"{field} must be an ISO 8601 timestamp" in str(error)
    assert fingerprint(db) == before


@pytest.mark.parametrize(
    "value", ["2030-01-02T03:04:05Z", "2030-01-02 03:04:05.123456+02:00", "2030-01-02T03:04"]
)
def test_iso_8601_timestamps_are_accepted(db: Conn, enf_case: Seeded, value: str) -> None:
    result = rpc(
        db,
        "set_enforcement_stage",
        {"case_id": enf_case.case_id, "stage": "asset_search", "next_action_at": value},
    )
    assert one(db, "select %s::timestamptz = %s::timestamptz", (result["next_action_at"], value))


def court_case(db: Conn) -> str:
    return seed_court_case(db, seed_judgment(db))


@pytest.mark.parametrize(
    ("rpc_name", "body", "argument"),
    [
        ("set_case_enrichment", {"p_case_id": "x", "p_collectability_score": 5}, "p_case_id"),
        ("set_case_enrichment", {"p_collectability_score": "high"}, "p_collectability_score"),
        ("set_case_scores", {"p_identity_score": "1e999999"}, "p_identity_score"),
        ("set_case_scores", {"p_asset_score": "N" * 1_000_000}, "p_asset_score"),
        ("set_case_scores", {"p_collectability_tier": "T" * 1_000_000}, "p_collectability_tier"),
    ],
)
def test_set_case_rpcs_answer_22023_naming_the_argument(
    db: Conn, rpc_name: str, body: dict[str, Any], argument: str
) -> None:
    scores = {
        "p_identity_score": 1,
        "p_contactability_score": 1,
        "p_asset_score": 1,
        "p_recency_amount_score": 1,
        "p_adverse_penalty": 1,
    }
    full: dict[str, Any] = {"p_case_id": court_case(db), "p_collectability_score": 50}
    full["p_collectability_tier"] = None
    if rpc_name == "set_case_scores":
        full |= scores
    full |= body
    error = refusal(db, lambda: (become(db, "service_role"), postgrest_rpc(db, rpc_name, full)))
    message = str(error.diag.message_primary)
    assert error.sqlstate == "22023"
    assert f"{rpc_name}: {argument}" in message
    assert len(message) < 250


def test_set_case_scores_takes_json_numbers_as_postgrest_sends_them(db: Conn) -> None:
    case_id = court_case(db)
    with db.transaction():
        become(db, "service_role")
        postgrest_rpc(
            db,
            "set_case_scores",
            {
                "p_case_id": case_id,
                "p_identity_score": 90,
                "p_contactability_score": 80.5,
                "p_asset_score": "70",
                "p_recency_amount_score": 60,
                "p_adverse_penalty": 0,
                "p_collectability_score": 77.25,
                "p_collectability_tier": None,
            },
        )
        db.execute("reset role")
    row = db.execute(
        "select contactability_score, collectability_score, collectability_tier"
        " from judgments.cases where id = %s",
        (case_id,),
    ).fetchone()
    assert row is not None
    assert (float(row[0]), float(row[1]), row[2]) == (80.5, 77.25, "tier0")


@pytest.mark.parametrize("name", ENFORCEMENT_RPCS)
def test_an_unknown_field_is_named_in_at_most_100_characters(
    db: Conn, enf_case: Seeded, name: str
) -> None:
    _, payload = valid_call(db, name, enf_case)
    payload["K" * 1_000_000] = 1
    error = refusal(db, lambda: (become(db, "enforcement_operator"), rpc(db, name, payload)))
    message = str(error.diag.message_primary)
    assert error.sqlstate == "22023"
    assert f"{name}: unknown field(s) KKK" in message
    assert len(message) < 200
