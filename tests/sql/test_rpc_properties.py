"""Property tests for the jsonb RPCs: queue_job, upsert_enrichment_bundle, insert_or_get_entity.

For arbitrary (mostly wrong) payloads, each call either succeeds with the documented effect
or fails with a documented SQLSTATE and writes nothing. Every example runs in a savepoint
that is rolled back, inside the ``db`` fixture's transaction.

Strings never contain NUL: PostgreSQL's jsonb cannot hold \\u0000, so such a payload is
refused by the server while parsing the argument (22P05), before any RPC runs.
"""

from __future__ import annotations

from typing import Any

import psycopg
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from workers.job_kinds import KINDS

Conn = psycopg.Connection[Any]

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=24
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=6,
)
objects = st.dictionaries(text, json_values, max_size=3)


def count(conn: Conn, table: str) -> int:
    row = conn.execute(f"select count(*) from {table}").fetchone()
    assert row is not None
    return int(row[0])


def call(conn: Conn, query: str, payload: Any) -> tuple[Any, str | None]:
    """Run an RPC in a savepoint; return (result, None) or (None, sqlstate)."""
    try:
        with conn.transaction():
            row = conn.execute(query, (Jsonb(payload),)).fetchone()
    except psycopg.Error as exc:
        event(f"sqlstate {exc.sqlstate}")
        return None, exc.sqlstate
    assert row is not None
    event("ok")
    return row[0], None


# --- queue_job -----------------------------------------------------------------------------

valid_queue_payloads = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(KINDS),
        "idempotency_key": st.text(min_size=1, max_size=40).filter(lambda k: "\x00" not in k),
    },
    optional={
        "payload": objects,
        "delay_seconds": st.integers(min_value=0, max_value=86_400),
        "requested_by": text,
    },
)
queue_overrides = st.fixed_dictionaries(
    {},
    optional={
        "kind": json_values,
        "idempotency_key": json_values,
        "payload": json_values,
        "delay_seconds": json_values,
        "requested_by": json_values,
        "extra": json_values,
    },
)
queue_payloads = (
    valid_queue_payloads
    | st.builds(lambda p, o: {**p, **o}, valid_queue_payloads, queue_overrides)
    | json_values
)


@SETTINGS
@given(payload=queue_payloads)
def test_queue_job_succeeds_or_fails_with_22023_writing_nothing(db: Conn, payload: Any) -> None:
    queues = KINDS
    with db.transaction(force_rollback=True):
        jobs = count(db, "dragonfly.enqueued_jobs")
        messages = sum(count(db, f"pgmq.q_{q}") for q in queues)
        result, sqlstate = call(db, "select public.queue_job(%s)", payload)
        if sqlstate is not None:
            assert sqlstate == "22023", (sqlstate, payload)
            assert count(db, "dragonfly.enqueued_jobs") == jobs
            assert sum(count(db, f"pgmq.q_{q}") for q in queues) == messages
            return
        assert isinstance(result, int)
        assert count(db, "dragonfly.enqueued_jobs") == jobs + 1
        assert sum(count(db, f"pgmq.q_{q}") for q in queues) == messages + 1
        again, again_state = call(db, "select public.queue_job(%s)", payload)
        assert (again, again_state) == (result, None)
        assert sum(count(db, f"pgmq.q_{q}") for q in queues) == messages + 1


# --- upsert_enrichment_bundle --------------------------------------------------------------

valid_contacts = st.fixed_dictionaries(
    {
        "contact_type": st.sampled_from(["phone", "email", "address"]),
        "value": st.sampled_from(
            ["(212) 555-0100", "+44 20 7946 0958", "a@b.example", "A@B.example", "1 Main St"]
        ),
    },
    optional={
        "confidence": st.floats(min_value=0, max_value=1),
        "is_verified": st.booleans(),
        "metadata": objects,
        "source": st.sampled_from(["v1", "v2"]),
    },
)
valid_assets = st.fixed_dictionaries(
    {
        "asset_type": st.sampled_from(["bank", "employer", "real_property", "vehicle", "other"]),
        "institution": st.sampled_from(["Chase", "Widget Corp", "chase"]),
    },
    optional={
        "asset_key": st.sampled_from(["k1", "K1 ", "k2"]),
        "description": text,
        "estimated_value": st.floats(min_value=0, max_value=1e11),
        "details": st.fixed_dictionaries({}, optional={"account_last4": st.just("1234")}),
        "confidence": st.floats(min_value=0, max_value=1),
    },
)
junk_items = st.fixed_dictionaries(
    {},
    optional={
        "contact_type": st.sampled_from(["phone", "email", "fax"]) | json_values,
        "asset_type": st.sampled_from(["bank", "boat"]) | json_values,
        "value": st.sampled_from(["x@", "12"]) | text | json_values,
        "asset_key": text | json_values,
        "confidence": st.floats(min_value=-0.5, max_value=1.5) | json_values,
        "estimated_value": st.floats(min_value=-10, max_value=2e12) | json_values,
        "details": json_values,
        "metadata": json_values,
        "is_verified": json_values,
        "source": text | json_values,
        "colour": json_values,
    },
)
bundle_parts = st.fixed_dictionaries(
    {"source": st.just("vendor")},
    optional={
        "contacts": st.lists(valid_contacts, max_size=5),
        "assets": st.lists(valid_assets, max_size=5),
    },
) | st.fixed_dictionaries(
    {},
    optional={
        "source": st.just("vendor") | text | json_values,
        "contacts": st.lists(valid_contacts | junk_items, max_size=4) | json_values,
        "assets": st.lists(valid_assets | junk_items, max_size=4) | json_values,
        "extra": json_values,
    },
)


@SETTINGS
@given(
    parts=bundle_parts,
    case_id=st.sampled_from(["real", "real", "real", "unknown", "garbage", "missing"]),
)
def test_upsert_enrichment_bundle_is_all_or_nothing_and_idempotent(
    db: Conn, parts: dict[str, Any], case_id: str
) -> None:
    with db.transaction(force_rollback=True):
        row = db.execute(
            "with p as (insert into public.plaintiffs (name) values ('P') returning id),"
            " j as (insert into public.judgments (plaintiff_id, debtor_name, judgment_amount,"
            " balance_due) select id, 'D', 1, 1 from p returning id)"
            " insert into judgments.cases (judgment_id, case_number)"
            " select id, 'CV-PROP' from j returning id"
        ).fetchone()
        assert row is not None
        bundle = dict(parts)
        if case_id == "real":
            bundle["case_id"] = str(row[0])
        elif case_id == "unknown":
            bundle["case_id"] = "00000000-0000-0000-0000-000000000001"
        elif case_id == "garbage":
            bundle["case_id"] = "not-a-uuid"
        result, sqlstate = call(db, "select public.upsert_enrichment_bundle(%s)", bundle)
        if sqlstate is not None:
            assert sqlstate in ("22023", "P0002"), (sqlstate, bundle)
            assert count(db, "enrichment.contacts") == 0
            assert count(db, "enrichment.assets") == 0
            return
        assert result["contacts"]["inserted"] == count(db, "enrichment.contacts")
        assert result["assets"]["inserted"] == count(db, "enrichment.assets")
        assert result["updated"] == 0
        assert result["unchanged"] == 0
        again, again_state = call(db, "select public.upsert_enrichment_bundle(%s)", bundle)
        assert again_state is None
        assert (again["inserted"], again["updated"]) == (0, 0)
        assert again["unchanged"] == result["inserted"]


# --- insert_or_get_entity ------------------------------------------------------------------

valid_entities = st.fixed_dictionaries(
    {
        "entity_type": st.sampled_from(["person", "organization"]),
        "name": st.sampled_from(
            ["John Smith", "Doe, Jane", "Acme, Inc.", "The Co", "O'Brien & Sons"]
        )
        | text.filter(lambda n: any(c.isalnum() for c in n)),
    },
    optional={
        "tax_id_last4": st.from_regex(r"\A[0-9]{4}\Z"),
        "state": st.sampled_from(["NY", "ny"]),
        "address_line1": text,
        "city": text,
        "postal_code": text,
    },
)
entity_overrides = st.fixed_dictionaries(
    {},
    optional={
        "entity_type": st.sampled_from([" Person ", "robot"]) | json_values,
        "name": st.sampled_from(["...", ""]) | json_values,
        "tax_id_last4": text | json_values,
        "birth_year": st.integers(min_value=1800, max_value=2200) | json_values,
        "state": st.just("New York") | json_values,
        "plaintiff_id": st.just("00000000-0000-0000-0000-000000000001") | text | json_values,
        "nickname": json_values,
    },
)
entity_payloads = (
    valid_entities
    | st.builds(lambda p, o: {**p, **o}, valid_entities, entity_overrides)
    | json_values
)


@SETTINGS
@given(payload=entity_payloads)
def test_insert_or_get_entity_gives_one_row_or_a_documented_error(db: Conn, payload: Any) -> None:
    with db.transaction(force_rollback=True):
        before = count(db, "public.entities")
        result, sqlstate = call(db, "select public.insert_or_get_entity(%s)", payload)
        if sqlstate is not None:
            assert sqlstate in ("22023", "P0002", "23505"), (sqlstate, payload)
            assert count(db, "public.entities") == before
            return
        assert count(db, "public.entities") == before + 1
        again, again_state = call(db, "select public.insert_or_get_entity(%s)", payload)
        assert (again, again_state) == (result, None)
        assert count(db, "public.entities") == before + 1
