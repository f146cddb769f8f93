"""Every RPC that takes a case, plaintiff, judgment, action, task or court case stays inside
the caller's tenants, called the way PostgREST calls it (``become()``, ``postgrest_rpc()``).

Tenant A holds the rows; the callers are its members (``viewer_a``, ``operator_a``,
``admin_a``), an operator of tenant B (``operator_b``), a signed-in non-member
(``authenticated``), anon, the PostgreSQL role ``enforcement_operator``, ``service_role``,
the fleet (``dragonfly_worker``) and fleet sessions acting for one tenant (``worker_a``,
``worker_b``: ``dragonfly.acting_tenant`` set). For each RPC:

- a caller outside A (operator of B, non-member, worker acting for B) naming A's row gets
  exactly the answer a missing id gets: the same SQLSTATE and the same message apart from
  the ids, and nothing is written (every table the RPCs write is counted and digested before
  and after);
- a viewer of A asking for a write gets 42501 with a message that says so;
- an operator and an admin of A, enforcement_operator and service_role (the fleet's RPCs:
  the fleet, also acting for A) succeed.

The rows live in the ``db`` fixture's transaction; each call runs in a savepoint rolled back
after it. A property test checks that no payload makes another tenant's id answer otherwise
than a missing one (validation order cannot leak either)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.support import (
    TENANT_A,
    TENANT_B,
    become,
    identity_of,
    make_tenants,
    postgrest_rpc,
    without_ids,
)
from tests.sql.enforcement_seed import ENFORCEMENT_RPCS, digest, one, rpc, seed, seed_plaintiff

Conn = psycopg.Connection[Any]

# Every table one of these RPCs writes.
WRITTEN = (
    "public.enforcement_cases",
    "public.enforcement_events",
    "public.enforcement_history",
    "public.enforcement_actions",
    "public.enforcement_documents",
    "public.plaintiff_tasks",
    "public.judgments",
    "public.plaintiffs",
    "public.plaintiff_call_attempts",
    "public.plaintiff_status_history",
    "public.outreach_attempts",
    "public.outreach_emails",
    "public.entities",
    "judgments.cases",
    "enrichment.contacts",
    "enrichment.assets",
    "enforcement_private.payment_idempotency_keys",
    "pgmq.q_case_copilot",
    "dragonfly.enqueued_jobs",
)
PAYMENT_KEY = "CHK-1001"


@dataclass(frozen=True)
class World:
    """Tenant A's rows, and a few of tenant B's for the mixed calls."""

    plaintiff: str
    judgment: str
    court_case: str
    case: str
    spare_judgment: str  # active, no case yet
    call_task: str
    subpoena_case: str
    subpoena: str  # the active subpoena action of subpoena_case
    email_key: str  # an outreach email intent still 'sending'
    plaintiff_b: str
    judgment_b_spare: str
    case_b: str


@pytest.fixture
def world(db: Conn) -> World:
    make_tenants(db)
    a = seed(db, tenant=TENANT_A)
    spare = seed(db, tenant=TENANT_A, open_case=False)
    subpoenaed = seed(db, tenant=TENANT_A)
    assert a.case_id is not None
    assert subpoenaed.case_id is not None
    assert a.court_case_id is not None
    subpoena = rpc(
        db,
        "issue_subpoena",
        {"case_id": subpoenaed.case_id, "recipient": "Chase", "document_path": "s/a.pdf"},
    )["action_id"]
    rpc(
        db,
        "record_enforcement_payment",
        {"case_id": a.case_id, "amount": "10.00", "idempotency_key": PAYMENT_KEY},
    )
    task = one(
        db,
        "insert into public.plaintiff_tasks (plaintiff_id, kind, status) values (%s, 'call',"
        " 'open') returning id",
        (a.plaintiff_id,),
    )
    email_key = f"outreach:{uuid.uuid4()}"
    db.execute(
        "insert into public.outreach_emails (idempotency_key, outreach_key, plaintiff_id,"
        " email_to, message_id) values (%s, %s, %s, 'acme@example.test', '<m-1@example.test>')",
        (email_key, email_key, a.plaintiff_id),
    )
    b = seed(db, tenant=TENANT_B)
    b_spare = seed(db, tenant=TENANT_B, open_case=False)
    assert b.case_id
    return World(
        plaintiff=a.plaintiff_id,
        judgment=a.judgment_id,
        court_case=a.court_case_id,
        case=a.case_id,
        spare_judgment=spare.judgment_id,
        call_task=str(task),
        subpoena_case=subpoenaed.case_id,
        subpoena=str(subpoena),
        email_key=email_key,
        plaintiff_b=b.plaintiff_id,
        judgment_b_spare=b_spare.judgment_id,
        case_b=b.case_id,
    )


Pick = Callable[[str], str]


@dataclass(frozen=True)
class Call:
    """An RPC and its PostgREST body; ``pick`` turns each id of tenant A into itself, or into
    an id that exists nowhere."""

    label: str
    rpc: str
    body: Callable[[World, Pick], dict[str, Any]]


def enforcement(
    label: str, fields: Callable[[World, Pick], dict[str, Any]], name: str | None = None
) -> Call:
    """An enforcement RPC (``name``, else ``label``) with one jsonb payload."""
    return Call(label, name or label, lambda w, pick: {"payload": fields(w, pick)})


# The calls a member of A may make on A's rows (granted to authenticated).
MEMBER_CALLS = (
    enforcement("open_enforcement_case", lambda w, p: {"judgment_id": p(w.spare_judgment)}),
    enforcement(
        "close_enforcement_case", lambda w, p: {"case_id": p(w.case), "status": "withdrawn"}
    ),
    enforcement(
        "set_enforcement_stage", lambda w, p: {"case_id": p(w.case), "stage": "asset_search"}
    ),
    enforcement(
        "log_enforcement_event", lambda w, p: {"case_id": p(w.case), "event_kind": "note_added"}
    ),
    enforcement(
        "queue_enforcement_action", lambda w, p: {"case_id": p(w.case), "action_type": "marshal"}
    ),
    enforcement(
        "record_enforcement_payment",
        lambda w, p: {"case_id": p(w.case), "amount": "10.00", "idempotency_key": PAYMENT_KEY},
    ),
    enforcement(
        "issue_subpoena",
        lambda w, p: {"case_id": p(w.case), "recipient": "Bank", "document_path": "s/b.pdf"},
    ),
    enforcement(
        "record_subpoena_response", lambda w, p: {"action_id": p(w.subpoena), "outcome": "partial"}
    ),
    Call(
        "record_subpoena_response by case",
        "record_subpoena_response",
        lambda w, p: {"payload": {"case_id": p(w.subpoena_case), "outcome": "no_response"}},
    ),
    Call(
        "log_call_outcome",
        "log_call_outcome",
        lambda w, p: {"plaintiff_id": p(w.plaintiff), "task_id": p(w.call_task), "outcome": "busy"},
    ),
    Call("request_case_copilot", "request_case_copilot", lambda w, p: {"case_id": p(w.case)}),
)
WRITES = tuple(c for c in MEMBER_CALLS if c.rpc != "request_case_copilot")
BY_LABEL = {c.label: c for c in MEMBER_CALLS}

# An operator of B on B's own row, naming one row of A beside it.
MIXED_CALLS = (
    enforcement(
        "open_enforcement_case: B's judgment, A's plaintiff",
        lambda w, p: {"judgment_id": w.judgment_b_spare, "plaintiff_id": p(w.plaintiff)},
        name="open_enforcement_case",
    ),
    enforcement(
        "log_enforcement_event: B's case, A's task",
        lambda w, p: {
            "case_id": w.case_b,
            "event_kind": "note_added",
            "related_task_id": p(w.call_task),
        },
        name="log_enforcement_event",
    ),
    enforcement(
        "record_enforcement_payment: B's case, A's judgment",
        lambda w, p: {"case_id": w.case_b, "amount": "1.00", "judgment_id": p(w.judgment)},
        name="record_enforcement_payment",
    ),
    enforcement(
        "record_subpoena_response: A's action, B's case",
        lambda w, p: {"action_id": p(w.subpoena), "case_id": w.case_b, "outcome": "partial"},
        name="record_subpoena_response",
    ),
    Call(
        "log_call_outcome: B's plaintiff, A's task",
        "log_call_outcome",
        lambda w, p: {"plaintiff_id": w.plaintiff_b, "task_id": p(w.call_task), "outcome": "busy"},
    ),
)

# The fleet's RPCs (service_role and dragonfly_worker only).
FLEET_CALLS = (
    Call(
        "set_case_enrichment",
        "set_case_enrichment",
        lambda w, p: {
            "p_case_id": p(w.court_case),
            "p_collectability_score": "55",
            "p_collectability_tier": None,
        },
    ),
    Call(
        "set_case_scores",
        "set_case_scores",
        lambda w, p: {
            "p_case_id": p(w.court_case),
            "p_identity_score": "50",
            "p_contactability_score": "50",
            "p_asset_score": "50",
            "p_recency_amount_score": "50",
            "p_adverse_penalty": "0",
            "p_collectability_score": "50",
            "p_collectability_tier": None,
        },
    ),
    Call(
        "upsert_enrichment_bundle",
        "upsert_enrichment_bundle",
        lambda w, p: {
            "bundle": {
                "case_id": p(w.court_case),
                "source": "skipgenie",
                "contacts": [{"contact_type": "phone", "value": "(212) 555-0100"}],
                "assets": [{"asset_type": "bank", "institution": "Chase"}],
            }
        },
    ),
    Call(
        "begin_outreach",
        "begin_outreach",
        lambda w, p: {
            "p_plaintiff_id": p(w.plaintiff),
            "p_idempotency_key": w.email_key,
            "p_outreach_key": w.email_key,
        },
    ),
    Call(
        "begin_outreach_email",
        "begin_outreach_email",
        lambda w, p: {
            "p_idempotency_key": "outreach:new",
            "p_outreach_key": "outreach:new",
            "p_plaintiff_id": p(w.plaintiff),
            "p_email_to": "acme@example.test",
            "p_message_id": "<m-2@example.test>",
            "p_max_emails": 2,
        },
    ),
    Call(
        "record_outreach_attempt",
        "record_outreach_attempt",
        lambda w, p: {
            "p_idempotency_key": "outreach:attempt",
            "p_outreach_key": "outreach:attempt",
            "p_plaintiff_id": p(w.plaintiff),
            "p_outcome": "no_channel",
            "p_reason": "test",
        },
    ),
    Call(
        "insert_or_get_entity",
        "insert_or_get_entity",
        lambda w, p: {
            "payload": {
                "entity_type": "person",
                "name": "Jane Q Debtor",
                "judgment_id": p(w.judgment),
            }
        },
    ),
    Call(
        "insert_or_get_entity: plaintiff",
        "insert_or_get_entity",
        lambda w, p: {
            "payload": {
                "entity_type": "organization",
                "name": "Acme Funding LLC",
                "plaintiff_id": p(w.plaintiff),
            }
        },
    ),
)
# The enforcement and console RPCs the fleet may call too.
FLEET_ENFORCEMENT = tuple(
    c
    for c in MEMBER_CALLS
    if c.label
    in (
        "set_enforcement_stage",
        "log_enforcement_event",
        "queue_enforcement_action",
        "issue_subpoena",
        "log_call_outcome",
        "request_case_copilot",
    )
)


def a_row(value: str) -> str:
    return value


def nowhere(_: str) -> str:
    return str(uuid.uuid4())


def written(db: Conn) -> tuple[Any, ...]:
    """Rows per table and a digest of their contents: equal means nothing was written."""
    counts = db.execute(
        "select " + ", ".join(f"(select count(*) from {t})" for t in WRITTEN)
    ).fetchone()
    assert counts is not None
    return tuple(counts) + digest(db, WRITTEN)


def attempt(db: Conn, role: str, call: Call, body: dict[str, Any]) -> tuple[str, Any]:
    """Call as ``role`` in a rolled-back savepoint: ("ok", result) or (sqlstate, message)."""
    try:
        with db.transaction(force_rollback=True):
            become(db, role)
            return "ok", postgrest_rpc(db, call.rpc, body)
    except psycopg.Error as error:
        return str(error.sqlstate), str(error.diag.message_primary)


def assert_like_missing(db: Conn, world: World, role: str, call: Call) -> tuple[str, Any]:
    """``role`` naming A's row(s) gets what it gets for ids that exist nowhere, and nothing
    is written; returns the answer."""
    before = written(db)
    missing = attempt(db, role, call, call.body(world, nowhere))
    foreign = attempt(db, role, call, call.body(world, a_row))
    assert written(db) == before, (role, call.label)
    assert missing[0] != "ok", (role, call.label, missing)
    assert (foreign[0], without_ids(foreign[1])) == (missing[0], without_ids(missing[1])), (
        role,
        call.label,
    )
    return foreign


@pytest.mark.parametrize("call", MEMBER_CALLS, ids=lambda c: c.label)
@pytest.mark.parametrize("role", ["operator_b", "authenticated"])
def test_outside_the_tenant_a_row_answers_as_a_missing_one(
    db: Conn, world: World, role: str, call: Call
) -> None:
    sqlstate, message = assert_like_missing(db, world, role, call)
    assert sqlstate == "P0002", message


@pytest.mark.parametrize(
    "call", [c for c in MEMBER_CALLS if c.rpc in ("log_call_outcome", "request_case_copilot")]
)
def test_anon_gets_the_missing_row_answer_from_the_console_rpcs(
    db: Conn, world: World, call: Call
) -> None:
    assert_like_missing(db, world, "anon", call)


def test_the_answers_outside_the_tenant_are_those_of_missing_rows(db: Conn, world: World) -> None:
    answers = {
        c.label: without_ids(assert_like_missing(db, world, "operator_b", c)[1])
        for c in MEMBER_CALLS
    }
    assert answers == {
        "open_enforcement_case": "open_enforcement_case: judgment <id> not found",
        "close_enforcement_case": "close_enforcement_case: enforcement case <id> not found",
        "set_enforcement_stage": "set_enforcement_stage: enforcement case <id> not found",
        "log_enforcement_event": "log_enforcement_event: enforcement case <id> not found",
        "queue_enforcement_action": "queue_enforcement_action: enforcement case <id> not found",
        "record_enforcement_payment": "record_enforcement_payment: enforcement case <id> not found",
        "issue_subpoena": "issue_subpoena: enforcement case <id> not found",
        "record_subpoena_response": "record_subpoena_response: action <id> not found",
        "record_subpoena_response by case": (
            "record_subpoena_response: enforcement case <id> not found"
        ),
        "log_call_outcome": "log_call_outcome: plaintiff <id> does not exist",
        "request_case_copilot": "request_case_copilot: enforcement case <id> does not exist",
    }
    # Public callers keep their one answer.
    public = assert_like_missing(db, world, "authenticated", BY_LABEL["log_call_outcome"])
    assert without_ids(public[1]) == "log_call_outcome: no open call task <id> for plaintiff <id>"


@pytest.mark.parametrize("call", MIXED_CALLS, ids=lambda c: c.label)
def test_a_row_of_another_tenant_named_beside_ones_own_answers_as_a_missing_one(
    db: Conn, world: World, call: Call
) -> None:
    sqlstate, _ = assert_like_missing(db, world, "operator_b", call)
    assert sqlstate == "P0002"


@pytest.mark.parametrize("call", WRITES, ids=lambda c: c.label)
def test_a_viewer_asking_for_a_write_gets_42501(db: Conn, world: World, call: Call) -> None:
    before = written(db)
    sqlstate, message = attempt(db, "viewer_a", call, call.body(world, a_row))
    assert written(db) == before
    assert sqlstate == "42501", message
    assert "is read-only for you" in message


def test_a_viewer_may_ask_for_a_brief(db: Conn, world: World) -> None:
    call = BY_LABEL["request_case_copilot"]
    outcome, msg_id = attempt(db, "viewer_a", call, call.body(world, a_row))
    assert (outcome, isinstance(msg_id, int)) == ("ok", True)


@pytest.mark.parametrize("call", MEMBER_CALLS, ids=lambda c: c.label)
@pytest.mark.parametrize("role", ["operator_a", "admin_a", "enforcement_operator", "service_role"])
def test_members_with_write_and_the_service_succeed(
    db: Conn, world: World, role: str, call: Call
) -> None:
    outcome, result = attempt(db, role, call, call.body(world, a_row))
    assert outcome == "ok", result


def test_a_signed_in_operator_is_recorded_as_itself(db: Conn, world: World) -> None:
    with db.transaction(force_rollback=True):
        become(db, "operator_a")
        result = postgrest_rpc(
            db,
            "set_enforcement_stage",
            {"payload": {"case_id": world.case, "stage": "asset_search", "actor": "Jane"}},
        )
        db.execute("reset role")
        actor = one(
            db, "select actor from public.enforcement_events where id = %s", (result["event_id"],)
        )
    assert actor == f"{identity_of('operator_a')} (on behalf of Jane)"


@pytest.mark.parametrize("call", [*FLEET_CALLS, *FLEET_ENFORCEMENT], ids=lambda c: c.label)
def test_a_worker_acting_for_another_tenant_cannot_touch_the_row(
    db: Conn, world: World, call: Call
) -> None:
    sqlstate, message = assert_like_missing(db, world, "worker_b", call)
    assert sqlstate == "P0002", message


@pytest.mark.parametrize("call", [*FLEET_CALLS, *FLEET_ENFORCEMENT], ids=lambda c: c.label)
@pytest.mark.parametrize("role", ["worker_a", "dragonfly_worker", "service_role"])
def test_the_fleet_acting_for_the_tenant_or_for_all_succeeds(
    db: Conn, world: World, role: str, call: Call
) -> None:
    outcome, result = attempt(db, role, call, call.body(world, a_row))
    assert outcome == "ok", result


SETTLE = Call(
    "settle_outreach_email",
    "settle_outreach_email",
    lambda w, p: {"p_idempotency_key": p(w.email_key), "p_sent": True},
)


def test_a_worker_acting_for_another_tenant_settles_no_email_of_it(db: Conn, world: World) -> None:
    # settle_outreach_email answers false for an unknown key, and for another tenant's.
    before = written(db)
    assert attempt(db, "worker_b", SETTLE, SETTLE.body(world, nowhere)) == ("ok", False)
    assert attempt(db, "worker_b", SETTLE, SETTLE.body(world, a_row)) == ("ok", False)
    assert written(db) == before
    for role in ("worker_a", "dragonfly_worker", "service_role"):
        assert attempt(db, role, SETTLE, SETTLE.body(world, a_row)) == ("ok", True)


def test_another_tenants_payment_key_is_neither_replayed_nor_reported(
    db: Conn, world: World
) -> None:
    call = BY_LABEL["record_enforcement_payment"]
    sqlstate, message = attempt(db, "operator_b", call, call.body(world, a_row))
    assert sqlstate == "P0002"
    assert PAYMENT_KEY not in message


def test_the_fleet_reads_no_outreach_record_of_another_tenant(db: Conn, world: World) -> None:
    # A worker acting for B, for B's plaintiff, under A's email key: nothing of A comes back.
    body = {
        "p_plaintiff_id": world.plaintiff_b,
        "p_idempotency_key": world.email_key,
        "p_outreach_key": world.email_key,
    }
    with db.transaction(force_rollback=True):
        become(db, "worker_b")
        seen_by_b = postgrest_rpc(db, "begin_outreach", body)
    with db.transaction(force_rollback=True):
        become(db, "dragonfly_worker")
        seen_by_all = postgrest_rpc(db, "begin_outreach", body)
    assert seen_by_b["this_email"] is None
    assert seen_by_all["this_email"] == "sending"


def test_payment_keys_are_per_tenant(db: Conn, world: World) -> None:
    # The reference A used for its payment is a new payment in B, not a collision.
    with db.transaction(force_rollback=True):
        become(db, "operator_b")
        paid = postgrest_rpc(
            db,
            "record_enforcement_payment",
            {
                "payload": {
                    "case_id": world.case_b,
                    "amount": "25.00",
                    "idempotency_key": PAYMENT_KEY,
                }
            },
        )
        again = postgrest_rpc(
            db,
            "record_enforcement_payment",
            {
                "payload": {
                    "case_id": world.case_b,
                    "amount": "25.00",
                    "idempotency_key": PAYMENT_KEY,
                }
            },
        )
        db.execute("reset role")
        tenants = db.execute(
            "select tenant_id::text from enforcement_private.payment_idempotency_keys"
            " where idempotency_key = %s order by 1",
            (PAYMENT_KEY,),
        ).fetchall()
    assert (paid["case_id"], paid["amount"]) == (world.case_b, 25)
    assert again == paid
    assert [t[0] for t in tenants] == sorted([TENANT_A, TENANT_B])
    # In A, the key still replays A's payment.
    with db.transaction(force_rollback=True):
        become(db, "operator_a")
        replay = postgrest_rpc(
            db,
            "record_enforcement_payment",
            {"payload": {"case_id": world.case, "amount": "10.00", "idempotency_key": PAYMENT_KEY}},
        )
    assert replay["case_id"] == world.case


def test_an_entity_held_by_a_plaintiff_of_another_tenant_links_in_each_tenant(
    db: Conn, world: World
) -> None:
    """Entities are shared identities and a plaintiff is unique per entity only within its
    tenant: B's plaintiff of the same name links to the same entity, and the answer names
    nothing of A's."""
    entity = postgrest_rpc(
        db,
        "insert_or_get_entity",
        {
            "payload": {
                "entity_type": "organization",
                "name": "Shared Name LLC",
                "plaintiff_id": world.plaintiff,
            }
        },
    )
    other_b = seed_plaintiff(db, "Shared Name LLC", tenant=TENANT_B)
    body = {
        "payload": {
            "entity_type": "organization",
            "name": "Shared Name LLC",
            "plaintiff_id": other_b,
        }
    }
    call = Call("insert_or_get_entity", "insert_or_get_entity", lambda w, p: body)
    outcome, result = attempt(db, "worker_b", call, body)
    assert outcome == "ok", result
    assert world.plaintiff not in str(result)
    assert str(result) == str(entity)


# --- Property: no payload tells another tenant's id from a missing one --------------------

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STAGES = ("pre_enforcement", "asset_search", "bank_levy", "satisfied", "no_such_stage", "")
TIMESTAMPS = (None, "2030-01-02T03:04:05Z", "1999-01-01", "tomorrow", "2030-13-01", 7)
texts = st.one_of(st.none(), st.text(max_size=30), st.integers(-5, 5))


def maybe(**fields: Any) -> Any:
    """A payload with each field present or absent (a JSON null counts as absent)."""
    return st.fixed_dictionaries({}, optional=fields)


stage_payloads = maybe(
    stage=st.sampled_from(STAGES),
    override=st.one_of(st.booleans(), st.just("yes")),
    next_action_at=st.sampled_from(TIMESTAMPS),
    note=texts,
    metadata=st.one_of(st.just({}), st.just({"k": 1}), st.just([1])),
    bogus=st.just(1),
)
payment_payloads = maybe(
    amount=st.sampled_from(("10.00", "0", "-1", "1.001", "abc", 5, "999999999999.99", "1e3")),
    idempotency_key=st.sampled_from((PAYMENT_KEY, "fresh-key", "", "  ")),
    received_at=st.sampled_from(TIMESTAMPS),
    source=texts,
    judgment_id=st.sampled_from(("a", "missing", "x")),
)
call_arguments = maybe(
    outcome=st.sampled_from(("busy", "DNC", "reached", "who knows", "", None)),
    interest=st.sampled_from(("hot", "lukewarm", None)),
    follow_up_at=st.sampled_from((None, "2030-01-02T03:04:05Z", "2000-01-01", "soon")),
    notes=texts,
)


def pick_answers(db: Conn, role: str, call: Call, world: World) -> None:
    missing = attempt(db, role, call, call.body(world, nowhere))
    foreign = attempt(db, role, call, call.body(world, a_row))
    assert missing[0] != "ok"
    assert (foreign[0], without_ids(str(foreign[1]))) == (
        missing[0],
        without_ids(str(missing[1])),
    )


@SETTINGS
@given(fields=stage_payloads, role=st.sampled_from(("operator_b", "worker_b")))
def test_any_stage_payload_answers_alike_for_another_tenants_case(
    db: Conn, world: World, fields: dict[str, Any], role: str
) -> None:
    pick_answers(
        db,
        role,
        enforcement(
            "stage", lambda w, p: {"case_id": p(w.case)} | fields, name="set_enforcement_stage"
        ),
        world,
    )


@SETTINGS
@given(fields=payment_payloads)
def test_any_payment_payload_answers_alike_for_another_tenants_case(
    db: Conn, world: World, fields: dict[str, Any]
) -> None:
    def payload(w: World, p: Pick) -> dict[str, Any]:
        out = {"case_id": p(w.case)} | fields
        if "judgment_id" in fields:
            out["judgment_id"] = {"a": p(w.judgment), "missing": str(uuid.uuid4())}.get(
                fields["judgment_id"], fields["judgment_id"]
            )
        return out

    pick_answers(
        db, "operator_b", enforcement("payment", payload, name="record_enforcement_payment"), world
    )


@SETTINGS
@given(arguments=call_arguments, role=st.sampled_from(("operator_b", "authenticated", "anon")))
def test_any_call_outcome_answers_alike_for_another_tenants_plaintiff(
    db: Conn, world: World, arguments: dict[str, Any], role: str
) -> None:
    call = Call(
        "log_call_outcome",
        "log_call_outcome",
        lambda w, p: (
            {"plaintiff_id": p(w.plaintiff), "task_id": p(w.call_task)}
            | {"outcome": "busy"}
            | arguments
        ),
    )
    pick_answers(db, role, call, world)


def test_every_rpc_with_a_row_is_covered(db: Conn) -> None:
    covered = {c.rpc for c in (*MEMBER_CALLS, *FLEET_CALLS)} | {"settle_outreach_email"}
    assert covered >= set(ENFORCEMENT_RPCS)
    # Every function of public, less those without a row of a tenant to name (queue_job and
    # the queue wrappers take kinds and keys; the refresh crosses tenants on purpose; the
    # hook, triggers and helpers are no RPCs) and the imports, tested with them.
    rows = db.execute(
        "select proname from pg_proc where pronamespace = 'public'::regnamespace"
    ).fetchall()
    not_here = {
        "queue_job",
        "queue_jobs",
        "pgmq_read",
        "pgmq_delete",
        "pgmq_archive",
        "pgmq_set_vt",
        "pgmq_metrics",
        "refresh_enforcement_metrics",
        "refresh_enforcement_metrics_progress",
        "custom_access_token_hook",
        "tg_touch_updated_at",
        "judgment_priority_of",
        "process_simplicity_imports",
    }
    assert {r[0] for r in rows} - not_here == covered
