"""Property tests of the job-kind policy: no generated public payload reaches a field outside
its kind's public row, neither through queue_job (and whatever it accepts is recorded as
public) nor past the worker's re-check.

Payloads mix the kind's own fields (with valid, unknown and malformed values), made-up
fields and nested values; each call runs as anon, a signed-in user of no tenant or a
signed-in viewer of the rows' tenant (all public callers) in a savepoint of the ``db``
fixture's rolled-back transaction. Only the viewer reaches the rows, so only its jobs are
ever accepted. The policy is read from the database, so the property holds for whatever a
migration grants."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.security.support import DEFAULT_TENANT, PUBLIC_ROLES, VIEWER, become
from tests.sql.enforcement_seed import Seeded
from workers.runtime.envelope import parse_envelope
from workers.runtime.errors import Forbidden
from workers.runtime.policy import load_policy

Conn = psycopg.Connection[Any]

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
REFUSALS = {"22023", "42501", "23503", "54000", "PT429"}
KINDS = ("enrich", "enforce", "outreach", "case_copilot")

# jsonb cannot hold \u0000 at all: PostgreSQL refuses it (22P05) before any function runs.
text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30
)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), text, st.uuids().map(str))
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=12,
)


@pytest.fixture
def world(db: Conn, enf_case: Seeded) -> dict[str, Any]:
    """The seeded rows' ids and each kind's shape and public fields, as the database has them."""
    db.execute(
        "insert into public.outreach_campaigns (name, description)"
        " values ('known', 'A campaign a public caller may name')"
    )
    # The property is about fields: rate limits (tested on their own) would only turn later
    # examples into refusals.
    db.execute(
        "update dragonfly.job_kind_policies set rate_per_minute = null, target_rate_per_hour = null"
    )
    policy = {
        kind: (shape, fields)
        for kind, shape, fields in db.execute(
            "select k.kind, k.payload_fields, p.fields from dragonfly.job_kinds k"
            " join dragonfly.job_kind_policies p on p.kind = k.kind and p.level = 'public'"
        ).fetchall()
    }
    ids = [enf_case.case_id, enf_case.court_case_id, enf_case.plaintiff_id, enf_case.judgment_id]
    valid = {
        ("enrich", "case_id"): enf_case.court_case_id,
        ("enforce", "case_id"): enf_case.case_id,
        ("case_copilot", "case_id"): enf_case.case_id,
        ("case_copilot", "judgment_id"): enf_case.judgment_id,
        ("outreach", "plaintiff_id"): enf_case.plaintiff_id,
        ("outreach", "campaign"): "known",
    }
    # The policy as a worker of each kind loads it when it starts.
    loaded = {kind: load_policy(db, kind) for kind in KINDS}
    return {"policy": policy, "ids": [str(i) for i in ids], "valid": valid, "loaded": loaded}


@st.composite
def public_jobs(draw: st.DrawFn, world: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """A kind and a payload: each of the kind's fields absent, valid or anything at all,
    sometimes with made-up fields; so that many are accepted and the rest refused."""
    kind = draw(st.sampled_from(KINDS))
    shape, _fields = world["policy"][kind]
    payload: dict[str, Any] = {}
    for name, spec in sorted(shape.items()):
        valid = st.sampled_from(
            [world["valid"].get((kind, name))] if (kind, name) in world["valid"] else []
        )
        if "values" in spec:
            valid = st.sampled_from(spec["values"])
        elif (kind, name) not in world["valid"]:
            valid = st.one_of(st.sampled_from(world["ids"]), text.filter(str.strip))
        choice = draw(st.sampled_from(["absent", "absent", "valid", "valid", "anything"]))
        if choice == "valid":
            payload[name] = draw(valid)
        elif choice == "anything":
            payload[name] = draw(json_value)
    if draw(st.integers(0, 5)) == 0:
        payload[draw(text.filter(bool))] = draw(json_value)
    return draw(st.sampled_from([*PUBLIC_ROLES, VIEWER, VIEWER])), kind, payload


@SETTINGS
@given(data=st.data())
def test_no_public_payload_reaches_a_privileged_field(
    db: Conn, world: dict[str, Any], data: st.DataObject
) -> None:
    role, kind, payload = data.draw(public_jobs(world))
    _shape, public_fields = world["policy"][kind]
    key = str(uuid.uuid4())
    refused: psycopg.Error | None = None
    try:
        with db.transaction():
            become(db, role)
            row = db.execute(
                "select public.queue_job(%s)",
                (Jsonb({"kind": kind, "idempotency_key": key, "payload": payload}),),
            ).fetchone()
            db.execute("reset role")
    except psycopg.Error as error:
        refused = error
    event("refused" if refused is not None else "accepted")
    if refused is not None:
        assert refused.sqlstate in REFUSALS, (refused.sqlstate, str(refused))
        assert len(str(refused)) < 1000
        return
    assert row is not None
    found = db.execute(f"select message from pgmq.q_{kind} where msg_id = %s", (row[0],)).fetchone()
    assert found is not None
    message = found[0]
    set_fields = {name for name, value in message["payload"].items() if value is not None}
    assert set_fields <= set(public_fields), (kind, payload)
    assert message["provenance"]["level"] == "public"
    # Every public kind references a row: only a caller who reaches its tenant gets through.
    assert role == VIEWER, (role, kind, payload)
    assert message["provenance"]["role"] == "authenticated"
    assert message["tenant"] == DEFAULT_TENANT
    assert message["idempotency_key"].startswith("public:")


@SETTINGS
@given(data=st.data())
def test_the_workers_recheck_lets_no_public_payload_reach_a_privileged_field(
    db: Conn, world: dict[str, Any], data: st.DataObject
) -> None:
    """The same property for the worker's re-check (the policy as a worker loads it), with
    the payload sent past the door: public or no provenance, any fields at all."""
    _role, kind, payload = data.draw(public_jobs(world))
    _shape, public_fields = world["policy"][kind]
    provenance = data.draw(st.sampled_from([{"level": "public", "role": "anon"}, None]))
    message: dict[str, Any] = {"kind": kind, "idempotency_key": "k", "payload": payload}
    if provenance is not None:
        message["provenance"] = provenance
    envelope = parse_envelope(message, kind)
    try:
        world["loaded"][kind].check(envelope)
    except Forbidden:
        event("forbidden")
        return
    event("allowed")
    assert {name for name, value in payload.items() if value is not None} <= set(public_fields)
