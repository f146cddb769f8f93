"""queue_job() as the internet calls it: every way found to drive the fleet with the anon key
is refused at the door with its documented SQLSTATE and writes nothing, while the console's
and the fleet's own jobs still go through.

Each refusal is checked as anon and as a signed-in user without a role (``authenticated``),
with the role and claims PostgREST sets (:func:`tests.security.support.become`). Neither
reaches any tenant, so a job of theirs that references a row is refused as if the row did not
exist (tests/security/test_queue_job_tenants.py); what the public policy lets through is
checked as a signed-in viewer of the rows' tenant (``viewer``), a public caller too.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.security.support import (
    DEFAULT_TENANT,
    OPERATOR_EMAIL,
    PUBLIC_ROLES,
    VIEWER,
    VIEWER_EMAIL,
    accepted,
    add_member,
    become,
    become_member,
    new_uuid,
    refusal,
)
from tests.sql.enforcement_seed import Seeded

Conn = psycopg.Connection[Any]


def queue_job(conn: Conn, job: dict[str, Any]) -> int:
    row = conn.execute("select public.queue_job(%s)", (Jsonb(job),)).fetchone()
    assert row is not None
    return int(row[0])


def as_caller(conn: Conn, role: str, job: dict[str, Any]) -> Any:
    """queue_job(job) as ``role`` in a savepoint that must fail; the error."""

    def call() -> None:
        become(conn, role)
        queue_job(conn, job)

    return refusal(conn, call)


def writes(conn: Conn) -> tuple[Any, ...]:
    """What an enqueue may write: the dedupe records, every queue, the rate counters."""
    row = conn.execute(
        "select (select count(*) from dragonfly.enqueued_jobs),"
        " (select count(*) from pgmq.q_enrich), (select count(*) from pgmq.q_enforce),"
        " (select count(*) from pgmq.q_outreach), (select count(*) from pgmq.q_case_copilot),"
        " (select count(*) from dragonfly.enqueue_rate_windows)"
    ).fetchone()
    assert row is not None
    return tuple(row)


def refused(conn: Conn, role: str, job: dict[str, Any], sqlstate: str, text: str) -> str:
    """Assert queue_job(job) as ``role`` fails with ``sqlstate`` mentioning ``text``, and
    writes nothing; return the message."""
    before = writes(conn)
    error = as_caller(conn, role, job)
    assert error.sqlstate == sqlstate, (error.sqlstate, str(error))
    message = error.diag.message_primary or ""
    assert text in message, message
    assert writes(conn) == before
    return message


def message_of(conn: Conn, kind: str, msg_id: int) -> dict[str, Any]:
    row = conn.execute(f"select message from pgmq.q_{kind} where msg_id = %s", (msg_id,))
    found = row.fetchone()
    assert found is not None
    return dict(found[0])


@pytest.fixture
def campaign(db: Conn) -> str:
    db.execute(
        "insert into public.outreach_campaigns (name, description)"
        " values ('2026-q1-reactivation', 'Winter reactivation of dormant plaintiffs')"
    )
    return "2026-q1-reactivation"


# --- finding 1: privileged fields ---------------------------------------------------------


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_a_pushed_bundle_is_not_the_internets_to_send(
    db: Conn, enf_case: Seeded, role: str
) -> None:
    bundle = {"source": "vendor", "assets": [{"asset_type": "bank", "institution": "Planted Bank"}]}
    job = {
        "kind": "enrich",
        "idempotency_key": "plant",
        "payload": {"case_id": enf_case.court_case_id, "bundle": bundle},
    }
    message = refused(db, role, job, "42501", "may not set payload.bundle of enrich jobs")
    assert message == "queue_job: public callers may not set payload.bundle of enrich jobs"


@pytest.mark.parametrize("role", [*PUBLIC_ROLES, VIEWER])
@pytest.mark.parametrize(
    ("field", "value"),
    [("requested_action", "marshal"), ("trigger", "sla_sweep"), ("note", "levy them")],
)
def test_an_enforce_job_from_the_internet_is_a_plan_by_id_only(
    db: Conn, enf_case: Seeded, role: str, field: str, value: str
) -> None:
    job = {
        "kind": "enforce",
        "idempotency_key": "act",
        "payload": {"case_id": enf_case.case_id, field: value},
    }
    if role in PUBLIC_ROLES and field != "note":
        # The case is checked before the field (payload order): for a caller who reaches no
        # tenant it is a case that does not exist.
        refused(db, role, job, "23503", "no enforcement case")
    else:
        refused(db, role, job, "42501", f"may not set payload.{field} of enforce jobs")


def test_public_callers_may_ask_for_a_rescore_a_plan_a_brief_or_an_outreach_by_id(
    db: Conn, enf_case: Seeded, campaign: str
) -> None:
    payloads = {
        "enrich": {"case_id": enf_case.court_case_id},
        "enforce": {"case_id": enf_case.case_id},
        "case_copilot": {"case_id": enf_case.case_id},
        "outreach": {"plaintiff_id": enf_case.plaintiff_id, "campaign": campaign},
    }
    for kind, payload in payloads.items():
        job = {"kind": kind, "idempotency_key": f"ok-{kind}", "payload": payload}
        msg_id = accepted(db, VIEWER, lambda job=job: queue_job(db, job))
        envelope = message_of(db, kind, msg_id)
        assert envelope["payload"] == payload
        assert envelope["provenance"]["level"] == "public"
        assert envelope["provenance"]["role"] == "authenticated"
        assert envelope["tenant"] == DEFAULT_TENANT


# --- finding 2: outreach ----------------------------------------------------------------


@pytest.mark.parametrize("role", PUBLIC_ROLES)
@pytest.mark.parametrize(
    ("extra", "sqlstate", "text"),
    [
        ({"channel": "call"}, "42501", "may not set payload.channel"),
        ({"reason": "new_judgment"}, "42501", "may not set payload.reason"),
        ({"outreach_key": "k"}, "42501", "may not set payload.outreach_key"),
        ({"campaign": "Free money\r\nBcc: everyone@example.test"}, "22023", "payload.campaign"),
        ({"campaign": "not-a-known-campaign"}, "23503", "no outreach campaign"),
    ],
)
def test_outreach_from_the_internet_names_a_plaintiff_and_a_known_campaign_only(
    db: Conn, enf_case: Seeded, role: str, extra: dict[str, str], sqlstate: str, text: str
) -> None:
    job = {
        "kind": "outreach",
        "idempotency_key": "spam",
        "payload": {"plaintiff_id": enf_case.plaintiff_id, **extra},
    }
    refused(db, role, job, sqlstate, text)


def test_twenty_keys_for_one_plaintiff_are_two_outreach_jobs_an_hour(
    db: Conn, enf_case: Seeded, campaign: str
) -> None:
    role = VIEWER
    payload = {"plaintiff_id": enf_case.plaintiff_id, "campaign": campaign}
    sent = []
    for n in range(2):
        job = {"kind": "outreach", "idempotency_key": f"k{n}", "payload": payload}
        sent.append(accepted(db, role, lambda job=job: queue_job(db, job)))
    assert len(set(sent)) == 2
    for n in range(2, 20):
        job = {"kind": "outreach", "idempotency_key": f"k{n}", "payload": payload}
        message = refused(db, role, job, "PT429", "rate limit reached")
        assert f"outreach jobs for {enf_case.plaintiff_id} from public callers" in message
    # A repeat of a key already enqueued is its first answer, not a new job or a refusal.
    again = {"kind": "outreach", "idempotency_key": "k0", "payload": payload}
    assert accepted(db, role, lambda: queue_job(db, again)) == sent[0]


def test_a_rate_limit_says_when_to_retry(db: Conn, enf_case: Seeded) -> None:
    db.execute(
        "update dragonfly.job_kind_policies set rate_per_minute = 3"
        " where kind = 'enforce' and level = 'public'"
    )
    for n in range(3):
        job = {"kind": "enforce", "idempotency_key": f"r{n}", "payload": {"case_id": seed_case(db)}}
        accepted(db, VIEWER, lambda job=job: queue_job(db, job))
    # The window is all public callers' of the tenant: another viewer is held to it too.
    other = new_uuid()
    add_member(db, DEFAULT_TENANT, other, "viewer")
    job = {"kind": "enforce", "idempotency_key": "r3", "payload": {"case_id": seed_case(db)}}

    def call() -> None:
        become_member(db, other)
        queue_job(db, job)

    error = refusal(db, call)
    assert error.sqlstate == "PT429"
    detail = error.diag.message_detail or ""
    assert detail.startswith("retry_after_seconds=")
    wait = int(detail.split("=")[1])
    assert 1 <= wait <= 60
    assert f"retry in {wait} s" in (error.diag.message_primary or "")
    # Operators have a limit of their own.
    accepted(db, "enforcement_operator", lambda: queue_job(db, job))


def seed_case(db: Conn) -> str:
    from tests.sql.enforcement_seed import seed

    case_id = seed(db).case_id
    assert case_id is not None
    return case_id


# --- finding 5: key squatting -------------------------------------------------------------


def test_a_public_key_can_neither_take_nor_reveal_the_fleets_key(
    db: Conn, enf_case: Seeded
) -> None:
    role = VIEWER
    sweep_key = f"enforce:sla:{enf_case.case_id}:2026-12-03T00:00:00Z"
    squat = {
        "kind": "enforce",
        "idempotency_key": sweep_key,
        "payload": {"case_id": enf_case.case_id},
    }
    squatted = accepted(db, role, lambda: queue_job(db, squat))
    # The sweep's own job is still sent: a message of its own, under the key as given.
    fleet = {**squat, "payload": {"case_id": enf_case.case_id, "trigger": "sla_sweep"}}
    real = queue_job(db, fleet)
    assert real != squatted
    assert message_of(db, "enforce", real)["payload"]["trigger"] == "sla_sweep"
    stored = db.execute(
        "select idempotency_key from dragonfly.enqueued_jobs where msg_id = %s", (squatted,)
    ).fetchone()
    assert stored is not None
    assert stored[0].startswith("public:")
    assert stored[0].endswith(":" + sweep_key)
    # And the caller cannot learn the fleet's message id by asking with the fleet's key.
    assert accepted(db, role, lambda: queue_job(db, squat)) == squatted


def test_signed_in_users_have_namespaces_of_their_own(db: Conn, enf_case: Seeded) -> None:
    job = {"kind": "enforce", "idempotency_key": "mine", "payload": {"case_id": enf_case.case_id}}
    viewer = accepted(db, VIEWER, lambda: queue_job(db, job))
    other = new_uuid()
    add_member(db, DEFAULT_TENANT, other, "viewer")

    def call() -> int:
        become_member(db, other)
        return queue_job(db, job)

    with db.transaction():
        another = call()
    assert viewer != another


def test_the_public_namespace_is_reserved(db: Conn, enf_case: Seeded) -> None:
    job = {
        "kind": "enforce",
        "idempotency_key": "public:0000000000000000:mine",
        "payload": {"case_id": enf_case.case_id},
    }
    for role in ("service_role", "enforcement_operator"):
        refused(db, role, job, "22023", 'keys starting with "public:" are reserved')


# --- finding 6: size, depth, delay --------------------------------------------------------


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_a_megabyte_payload_is_refused_with_a_short_message(
    db: Conn, enf_case: Seeded, role: str
) -> None:
    job = {
        "kind": "case_copilot",
        "idempotency_key": "big",
        "payload": {"case_id": enf_case.case_id, "padding": "x" * 1_000_000},
    }
    message = refused(db, role, job, "54000", "case_copilot jobs may be at most 65536 bytes")
    assert len(message) < 200


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_deep_nesting_is_refused(db: Conn, enf_case: Seeded, role: str) -> None:
    nested = "[" * 5000 + "1" + "]" * 5000  # too deep for json.dumps, not for PostgreSQL
    text = '{"kind": "enrich", "idempotency_key": "deep", "payload": {"x": ' + nested + "}}"
    before = writes(db)

    def call() -> None:
        become(db, role)
        db.execute("select public.queue_job(%s::jsonb)", (text,))

    error = refusal(db, call)
    assert error.sqlstate == "54000"
    assert "enrich jobs may nest objects and arrays at most 8 deep" in str(error)
    assert writes(db) == before


@pytest.mark.parametrize("role", [*PUBLIC_ROLES, VIEWER])
def test_public_delays_are_minutes_not_days(db: Conn, enf_case: Seeded, role: str) -> None:
    job = {
        "kind": "enforce",
        "idempotency_key": "later",
        "delay_seconds": 86400,
        "payload": {"case_id": enf_case.case_id},
    }
    refused(db, role, job, "22023", "between 0 and 300 for public callers")
    if role == VIEWER:
        accepted(db, role, lambda: queue_job(db, {**job, "delay_seconds": 300}))


# --- finding 8: provenance and audit ------------------------------------------------------


def test_the_envelope_records_the_session_not_the_payload(db: Conn, enf_case: Seeded) -> None:
    role = VIEWER
    job = {
        "kind": "enforce",
        "idempotency_key": "who",
        "requested_by": "dragonfly:scheduler",
        "payload": {"case_id": enf_case.case_id},
    }
    msg_id = accepted(db, role, lambda: queue_job(db, job))
    envelope = message_of(db, "enforce", msg_id)
    assert envelope["requested_by"] == f"{VIEWER_EMAIL} (on behalf of dragonfly:scheduler)"
    assert envelope["provenance"]["level"] == "public"
    assert envelope["provenance"]["role"] == "authenticated"
    recorded = db.execute(
        "select enqueued_by from dragonfly.enqueued_jobs where msg_id = %s", (msg_id,)
    ).fetchone()
    assert recorded == (envelope["requested_by"],)


def test_the_consoles_buttons_and_the_fleets_jobs_still_work(db: Conn, enf_case: Seeded) -> None:
    # An operator may request a step, with the identity of the token recorded.
    step = {
        "kind": "enforce",
        "idempotency_key": "console:levy",
        "payload": {"case_id": enf_case.case_id, "requested_action": "bank_levy"},
    }
    msg_id = accepted(db, "enforcement_operator", lambda: queue_job(db, step))
    provenance = message_of(db, "enforce", msg_id)["provenance"]
    assert provenance["level"] == "operator"
    assert provenance["email"] == OPERATOR_EMAIL
    # The fleet may push a bundle and name who it acts for.
    push = {
        "kind": "enrich",
        "idempotency_key": "webhook:1",
        "requested_by": "dragonfly:scheduler",
        "payload": {"case_id": enf_case.court_case_id, "bundle": {"source": "vendor"}},
    }
    msg_id = accepted(db, "service_role", lambda: queue_job(db, push))
    envelope = message_of(db, "enrich", msg_id)
    assert envelope["requested_by"] == "dragonfly:scheduler"
    assert envelope["provenance"]["level"] == "internal"


# --- finding 9 and the shape: validation at the door --------------------------------------


@pytest.mark.parametrize("role", [*PUBLIC_ROLES, "service_role"])
@pytest.mark.parametrize(
    ("payload", "sqlstate", "text"),
    [
        ({}, "22023", "enrich jobs need payload.case_id"),
        ({"case_id": "not-a-uuid"}, "22023", "payload.case_id must be a uuid"),
        ({"case_id": 7}, "22023", "payload.case_id must be a string"),
        ({"case_id": "00000000-0000-4000-8000-000000000000"}, "23503", "no court case"),
        ({"case_id": None}, "22023", "enrich jobs need payload.case_id"),
    ],
)
def test_a_malformed_job_never_enters_a_queue(
    db: Conn, role: str, payload: dict[str, Any], sqlstate: str, text: str
) -> None:
    job = {"kind": "enrich", "idempotency_key": "bad", "payload": payload}
    refused(db, role, job, sqlstate, text)


def test_unknown_fields_are_refused_from_everyone(db: Conn, enf_case: Seeded) -> None:
    job = {
        "kind": "enrich",
        "idempotency_key": "typo",
        "payload": {"case_id": enf_case.court_case_id, "bundel": {}},
    }
    for role in ("anon", "enforcement_operator", "service_role"):
        refused(db, role, job, "22023", "enrich jobs have no field payload.'bundel'")


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_a_ten_megabyte_kind_or_key_is_not_echoed(db: Conn, role: str) -> None:
    huge = "k" * 10_000_000
    for job in (
        {"kind": huge, "idempotency_key": "k"},
        {"kind": "enforce", "idempotency_key": "k", huge: 1},
    ):
        error = as_caller(db, role, job)
        assert error.sqlstate == "22023"
        assert len(str(error)) < 600


def test_refusals_tell_nothing_about_other_rows(db: Conn, enf_case: Seeded) -> None:
    """Whether a key exists, or who used it, is not in any answer: a public caller's keys
    are its own, so the same call gives the same answer whatever the fleet has enqueued."""
    job = {"kind": "enforce", "idempotency_key": "probe", "payload": {"case_id": enf_case.case_id}}
    queue_job(db, job)  # the fleet uses "probe"
    first = accepted(db, VIEWER, lambda: queue_job(db, job))
    assert json.dumps(message_of(db, "enforce", first)["payload"]) == json.dumps(job["payload"])
    assert message_of(db, "enforce", first)["idempotency_key"] != "probe"
