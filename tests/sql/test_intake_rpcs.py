"""The intake and maintenance RPCs: request_case_copilot, log_call_outcome, set_case_enrichment,
set_case_scores, upsert_enrichment_bundle, insert_or_get_entity, process_simplicity_imports,
and the retired RPCs' absence.

Tests run in the ``db`` fixture's rolled-back transaction unless they need commits
(concurrency), which use ``fresh_db_url``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]

SERVICE_ONLY = (
    "public.set_case_enrichment(text, text, text, text)",
    "public.set_case_scores(text, text, text, text, text, text, text, text)",
    "public.upsert_enrichment_bundle(jsonb)",
    "public.insert_or_get_entity(jsonb)",
    "public.process_simplicity_imports(uuid)",
)
OPS_CALLABLE = (
    "public.request_case_copilot(text, text)",
    "public.log_call_outcome(text, text, text, text, text, text)",
)


@contextmanager
def as_role(conn: Conn, role: str) -> Iterator[None]:
    """Act as a PostgREST role; on an exception the savepoint rollback undoes SET LOCAL."""
    conn.execute(f"set local role {role}")
    conn.execute("select set_config('request.jwt.claims', %s, true)", (f'{{"role": "{role}"}}',))
    yield
    conn.execute("reset role")


def sign_in_as_member(conn: Conn, role: str, email: str) -> None:
    """Act as a signed-in user (authenticated, as PostgREST) who is a ``role`` of the default
    tenant, where the rows of these tests live: the tenant decides what the RPCs let them do."""
    user_id = str(uuid.uuid4())
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, email))
    conn.execute(
        "insert into public.tenant_members (tenant_id, user_id, role)"
        " values (tenancy.default_tenant_id(), %s, %s)",
        (user_id, role),
    )
    conn.execute("set local role authenticated")
    conn.execute(
        "select set_config('request.jwt.claims', %s, true)",
        (json.dumps({"role": "authenticated", "sub": user_id, "email": email}),),
    )


def one(conn: Conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def make_plaintiff(conn: Conn, name: str = "Acme Funding LLC") -> uuid.UUID:
    return one(conn, "insert into public.plaintiffs (name) values (%s) returning id", (name,))


def make_court_case(conn: Conn, plaintiff_id: uuid.UUID, case_number: str) -> tuple[Any, Any]:
    judgment_id = one(
        conn,
        "insert into public.judgments (plaintiff_id, debtor_name, judgment_amount, balance_due)"
        " values (%s, 'John Smith', 1000, 1000) returning id",
        (plaintiff_id,),
    )
    case_id = one(
        conn,
        "insert into judgments.cases (judgment_id, case_number) values (%s, %s) returning id",
        (judgment_id, case_number),
    )
    return judgment_id, case_id


def make_enforcement_case(conn: Conn, case_number: str = "CV-1") -> dict[str, Any]:
    plaintiff_id = make_plaintiff(conn)
    judgment_id, court_case_id = make_court_case(conn, plaintiff_id, case_number)
    case_id = one(
        conn,
        "insert into public.enforcement_cases"
        " (judgment_id, plaintiff_id, current_balance, created_by)"
        " values (%s, %s, 1000, 'test') returning id",
        (judgment_id, plaintiff_id),
    )
    return {
        "plaintiff_id": plaintiff_id,
        "judgment_id": judgment_id,
        "court_case_id": court_case_id,
        "case_id": case_id,
        "case_number": case_number,
    }


def make_task(conn: Conn, plaintiff_id: uuid.UUID, kind: str = "call") -> uuid.UUID:
    return one(
        conn,
        "insert into public.plaintiff_tasks (plaintiff_id, kind, assigned_to)"
        " values (%s, %s, 'agent-7') returning id",
        (plaintiff_id, kind),
    )


def table_counts(conn: Conn, *tables: str) -> dict[str, int]:
    return {t: one(conn, f"select count(*) from {t}") for t in tables}


# --- rights --------------------------------------------------------------------------------


@pytest.mark.parametrize("signature", SERVICE_ONLY)
def test_service_role_only_functions_in_the_catalog(db: Conn, signature: str) -> None:
    for role, allowed in {
        "anon": False,
        "authenticated": False,
        "enforcement_operator": False,
        "service_role": True,
        "dragonfly_worker": True,
    }.items():
        assert one(db, "select has_function_privilege(%s, %s, 'execute')", (role, signature)) is (
            allowed
        ), f"{role} on {signature}"
    secdef, config = db.execute(
        "select prosecdef, proconfig from pg_proc where oid = %s::regprocedure", (signature,)
    ).fetchone() or (None, None)
    assert secdef is True
    assert config == ['search_path=""']


@pytest.mark.parametrize("signature", OPS_CALLABLE)
def test_ops_rpcs_are_callable_by_the_postgrest_roles(db: Conn, signature: str) -> None:
    for role in (
        "anon",
        "authenticated",
        "service_role",
        "enforcement_operator",
        "dragonfly_worker",
    ):
        assert one(db, "select has_function_privilege(%s, %s, 'execute')", (role, signature))
    acl = one(db, "select proacl::text[] from pg_proc where oid = %s::regprocedure", (signature,))
    assert not any(entry.startswith("=") for entry in acl), "PUBLIC must not have EXECUTE"


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize(
    "call",
    [
        "select public.set_case_enrichment(gen_random_uuid()::text, '50', 'tier1')",
        "select public.set_case_scores("
        "gen_random_uuid()::text, '1', '1', '1', '1', '1', '1', 'tier3')",
        "select public.upsert_enrichment_bundle('{}')",
        "select public.insert_or_get_entity('{}')",
        "select public.process_simplicity_imports(gen_random_uuid())",
    ],
)
def test_service_role_only_functions_refuse_postgrest_roles(db: Conn, role: str, call: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege), db.transaction(), as_role(db, role):
        db.execute(call)


def test_internal_helpers_are_not_api_callable(db: Conn) -> None:
    for role in ("anon", "authenticated", "enforcement_operator"):
        assert not one(db, "select has_schema_privilege(%s, 'intake', 'usage')", (role,))
    assert not one(
        db,
        "select has_function_privilege('service_role', 'intake.materialize_simplicity_run(uuid)',"
        " 'execute')",
    )


@pytest.mark.parametrize("name", ["ack_job", "complete_plaintiff_call_task", "set_updated_at"])
def test_retired_rpcs_do_not_exist(db: Conn, name: str) -> None:
    assert one(db, "select count(*) from pg_proc where proname = %s", (name,)) == 0


# --- request_case_copilot ------------------------------------------------------------------


def test_request_case_copilot_enqueues_through_queue_job(db: Conn) -> None:
    case = make_enforcement_case(db, "CV-COPILOT-1")
    with db.transaction():
        # A viewer of the case's tenant may ask for a brief; the signed-in user's JWT names
        # them, and that, not the argument, is what is recorded.
        sign_in_as_member(db, "viewer", "ops@example.com")
        msg_id = one(
            db,
            "select public.request_case_copilot(%s::text, %s)",
            (case["case_id"], "ops@example.com"),
        )
        db.execute("reset role")
    message = one(db, "select message from pgmq.q_case_copilot where msg_id = %s", (msg_id,))
    assert message["kind"] == "case_copilot"
    assert message["requested_by"] == "ops@example.com"
    assert message["idempotency_key"].startswith(f"case_copilot:{case['case_id']}:")
    payload = message["payload"]
    assert set(payload) == {"case_id", "case_number", "requested_by", "requested_at"}
    assert payload["case_id"] == str(case["case_id"])
    assert payload["case_number"] == "CV-COPILOT-1"
    assert payload["requested_by"] == "ops@example.com"
    assert (
        one(
            db,
            "select count(*) from dragonfly.enqueued_jobs where kind = 'case_copilot'"
            " and idempotency_key = %s",
            (message["idempotency_key"],),
        )
        == 1
    )
    # The same request again in this transaction is the same job.
    assert (
        one(db, "select public.request_case_copilot(%s::text, %s)", (case["case_id"], "x"))
        == msg_id
    )


def test_request_case_copilot_refuses_unknown_and_null_cases(db: Conn) -> None:
    before = one(db, "select count(*) from pgmq.q_case_copilot")
    with pytest.raises(errors.NoDataFound) as info, db.transaction():
        db.execute("select public.request_case_copilot(gen_random_uuid()::text)")
    assert "does not exist" in str(info.value)
    with pytest.raises(errors.InvalidParameterValue), db.transaction():
        db.execute("select public.request_case_copilot(null)")
    assert one(db, "select count(*) from pgmq.q_case_copilot") == before


# --- log_call_outcome ----------------------------------------------------------------------

CALL_TABLES = (
    "public.plaintiff_call_attempts",
    "public.plaintiff_status_history",
    "public.plaintiff_tasks",
)


def log_call(
    conn: Conn,
    plaintiff_id: Any,
    task_id: Any,
    outcome: str | None,
    interest: str | None = None,
    notes: str | None = None,
    follow_up_at: datetime | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = one(
        conn,
        "select public.log_call_outcome(%s::text, %s::text, %s, %s, %s, %s::text)",
        (plaintiff_id, task_id, outcome, interest, notes, follow_up_at),
    )
    return result


def test_log_call_outcome_records_closes_moves_status_and_schedules(db: Conn) -> None:
    plaintiff_id = make_plaintiff(db)
    task_id = make_task(db, plaintiff_id)
    follow = datetime.now(UTC) + timedelta(days=2)
    with db.transaction():
        # An operator of the plaintiff's tenant, signed in.
        sign_in_as_member(db, "operator", "agent@example.com")
        result = log_call(db, plaintiff_id, task_id, "Left Voicemail", None, "rang 6 times", follow)
        db.execute("reset role")
    assert result["outcome_bucket"] == "left_voicemail"
    assert result["terminal"] is False
    assert result["previous_status"] == "new"
    assert result["status"] == "left_voicemail"
    assert result["status_changed"] is True
    attempt = db.execute(
        "select outcome, outcome_bucket, notes, task_id from public.plaintiff_call_attempts"
        " where id = %s",
        (result["call_attempt_id"],),
    ).fetchone()
    assert attempt == ("Left Voicemail", "left_voicemail", "rang 6 times", task_id)
    status, closed, task_result, metadata = db.execute(
        "select status, closed_at is not null, result, metadata from public.plaintiff_tasks"
        " where id = %s",
        (task_id,),
    ).fetchone() or (None, None, None, None)
    assert (status, closed) == ("done", True)
    assert task_result["call_attempt_id"] == result["call_attempt_id"]
    assert metadata["closed_by_rpc"] == "log_call_outcome"
    assert one(db, "select status from public.plaintiffs where id = %s", (plaintiff_id,)) == (
        "left_voicemail"
    )
    history = db.execute(
        "select previous_status, status from public.plaintiff_status_history"
        " where plaintiff_id = %s",
        (plaintiff_id,),
    ).fetchall()
    assert history == [("new", "left_voicemail")]
    follow_up = db.execute(
        "select kind, status, due_at, assigned_to, metadata->>'previous_task_id'"
        " from public.plaintiff_tasks where id = %s",
        (result["follow_up_task_id"],),
    ).fetchone()
    assert follow_up is not None
    assert follow_up[:2] == ("follow_up", "open")
    assert abs((follow_up[2] - follow).total_seconds()) < 1
    assert follow_up[3:] == ("agent-7", str(task_id))


@pytest.mark.parametrize(
    ("outcome", "interest", "bucket", "terminal"),
    [
        ("DNC", None, "do_not_call", True),
        ("wrong number", None, "bad_number", True),
        ("reached", "hot", "reached_hot", False),
        ("Connected", "warm", "reached_warm", False),
        ("answered", "cold", "not_interested", True),
        ("spoke", None, "contacted", False),
        ("busy", None, "no_answer", False),
        ("call-back", None, "callback_scheduled", False),
        ("Signed", None, "signed", True),
        ("reached_hot", None, "reached_hot", False),
    ],
)
def test_outcomes_are_normalized_into_buckets(
    db: Conn, outcome: str, interest: str | None, bucket: str, terminal: bool
) -> None:
    plaintiff_id = make_plaintiff(db)
    task_id = make_task(db, plaintiff_id)
    follow = datetime.now(UTC) + timedelta(hours=3)
    result = log_call(db, plaintiff_id, task_id, outcome, interest, None, follow)
    assert result["outcome_bucket"] == bucket
    assert result["terminal"] is terminal
    assert (result["follow_up_task_id"] is None) is terminal


def test_same_status_writes_no_history_row(db: Conn) -> None:
    plaintiff_id = make_plaintiff(db)
    log_call(db, plaintiff_id, make_task(db, plaintiff_id), "no answer")
    second = log_call(db, plaintiff_id, make_task(db, plaintiff_id), "busy")
    assert second["status_changed"] is False
    assert second["status_history_id"] is None
    assert (
        one(
            db,
            "select count(*) from public.plaintiff_status_history where plaintiff_id = %s",
            (plaintiff_id,),
        )
        == 1
    )


def test_log_call_outcome_refusals_write_nothing(db: Conn) -> None:
    plaintiff_id = make_plaintiff(db)
    other_id = make_plaintiff(db, "Other Plaintiff")
    task_id = make_task(db, plaintiff_id)
    review_id = make_task(db, plaintiff_id, "review")
    closed_id = make_task(db, plaintiff_id)
    log_call(db, plaintiff_id, closed_id, "busy")
    past = datetime.now(UTC) - timedelta(hours=1)
    cases: list[tuple[tuple[Any, ...], type[Exception], str]] = [
        ((plaintiff_id, task_id, "teleported"), errors.InvalidParameterValue, "unknown outcome"),
        ((plaintiff_id, task_id, ""), errors.InvalidParameterValue, "outcome is required"),
        ((plaintiff_id, task_id, "reached", "lukewarm"), errors.InvalidParameterValue, "interest"),
        ((plaintiff_id, task_id, "busy", None, None, past), errors.InvalidParameterValue, "future"),
        ((None, task_id, "busy"), errors.InvalidParameterValue, "plaintiff_id"),
        ((plaintiff_id, None, "busy"), errors.InvalidParameterValue, "task_id"),
        ((plaintiff_id, uuid.uuid4(), "busy"), errors.NoDataFound, "task"),
        ((uuid.uuid4(), task_id, "busy"), errors.NoDataFound, "plaintiff"),
        ((other_id, task_id, "busy"), errors.InvalidParameterValue, "another plaintiff"),
        ((plaintiff_id, closed_id, "busy"), errors.ObjectNotInPrerequisiteState, "already closed"),
        ((plaintiff_id, review_id, "busy"), errors.InvalidParameterValue, "review task"),
    ]
    before = table_counts(db, *CALL_TABLES)
    for args, error, text in cases:
        with pytest.raises(error) as info, db.transaction():
            log_call(db, *args)
        assert text in str(info.value), args
    assert table_counts(db, *CALL_TABLES) == before
    assert one(db, "select status from public.plaintiff_tasks where id = %s", (task_id,)) == "open"


def test_two_agents_logging_one_task_close_it_once(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as setup:
        plaintiff_id = make_plaintiff(setup)
        task_id = make_task(setup, plaintiff_id)
        setup.commit()
    barrier = threading.Barrier(2)

    def agent(outcome: str) -> str:
        with psycopg.connect(fresh_db_url) as conn:
            barrier.wait(timeout=30)
            try:
                log_call(conn, plaintiff_id, task_id, outcome)
            except errors.ObjectNotInPrerequisiteState:
                return "refused"
            conn.commit()
            return "logged"

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = sorted(pool.map(agent, ["busy", "voicemail"]))
    assert results == ["logged", "refused"]
    with psycopg.connect(fresh_db_url) as conn:
        assert one(conn, "select count(*) from public.plaintiff_call_attempts") == 1


# --- set_case_enrichment / set_case_scores ------------------------------------------------


def test_set_case_enrichment_stores_score_tier_and_summary(db: Conn) -> None:
    plaintiff_id = make_plaintiff(db)
    _j, case_id = make_court_case(db, plaintiff_id, "CV-E1")
    db.execute(
        "select public.set_case_enrichment(%s::text, '81.5', 'tier0', 'bank found')", (case_id,)
    )
    row = db.execute(
        "select collectability_score, collectability_tier, enrichment_summary,"
        " last_enriched_at is not null from judgments.cases where id = %s",
        (case_id,),
    ).fetchone()
    assert row is not None
    assert (float(row[0]), *row[1:]) == (81.5, "tier0", "bank found", True)
    # A null tier follows the score band; a null summary keeps the previous one.
    db.execute("select public.set_case_enrichment(%s::text, '30', null)", (case_id,))
    assert db.execute(
        "select collectability_tier, enrichment_summary from judgments.cases where id = %s",
        (case_id,),
    ).fetchone() == ("tier2", "bank found")


def test_set_case_scores_stores_the_breakdown(db: Conn) -> None:
    plaintiff_id = make_plaintiff(db)
    _j, case_id = make_court_case(db, plaintiff_id, "CV-S1")
    db.execute(
        "select public.set_case_scores(%s::text, '90', '80', '70', '60', '5', '77.25', 'tier0')",
        (case_id,),
    )
    row = db.execute(
        "select identity_score, contactability_score, asset_score, recency_amount_score,"
        " adverse_penalty, collectability_score, collectability_tier, last_scored_at is not null"
        " from judgments.cases where id = %s",
        (case_id,),
    ).fetchone()
    assert row is not None
    assert [float(v) for v in row[:6]] == [90, 80, 70, 60, 5, 77.25]
    assert row[6:] == ("tier0", True)


@pytest.mark.parametrize(
    ("call", "error", "text"),
    [
        (
            "select public.set_case_enrichment(%(id)s::text, '101', 'tier0')",
            "22023",
            "between 0 and 100",
        ),
        (
            "select public.set_case_enrichment(%(id)s::text, '-1', 'tier0')",
            "22023",
            "between 0 and 100",
        ),
        ("select public.set_case_enrichment(%(id)s::text, null, 'tier0')", "22023", "score"),
        ("select public.set_case_enrichment(%(id)s::text, '50', 'gold')", "22023", "not a tier"),
        ("select public.set_case_enrichment(null, '50', 'tier1')", "22023", "p_case_id"),
        (
            "select public.set_case_enrichment(gen_random_uuid()::text, '50', 'tier1')",
            "P0002",
            "case",
        ),
        (
            "select public.set_case_scores(%(id)s::text, '1', '2', '3', '4', '5', '6', 'tier9')",
            "22023",
            "not a tier",
        ),
        (
            "select public.set_case_scores(%(id)s::text, '1', '2', '300', '4', '5', '6', null)",
            "22023",
            "p_asset_score",
        ),
        (
            "select public.set_case_scores(%(id)s::text, '1', '2', '3', '4', '-5', '6', null)",
            "22023",
            "p_adverse",
        ),
        (
            "select public.set_case_scores(%(id)s::text, null, '2', '3', '4', '5', '6', null)",
            "22023",
            "p_identity",
        ),
        (
            "select public.set_case_scores("
            "gen_random_uuid()::text, '1', '2', '3', '4', '5', '6', null)",
            "P0002",
            "case",
        ),
    ],
)
def test_score_refusals_change_nothing(db: Conn, call: str, error: str, text: str) -> None:
    plaintiff_id = make_plaintiff(db)
    _j, case_id = make_court_case(db, plaintiff_id, "CV-R1")
    with pytest.raises(psycopg.Error) as info, db.transaction():
        db.execute(call, {"id": case_id})
    assert info.value.sqlstate == error
    assert text in str(info.value)
    assert db.execute(
        "select collectability_score, identity_score, last_scored_at, last_enriched_at"
        " from judgments.cases where id = %s",
        (case_id,),
    ).fetchone() == (None, None, None, None)


# --- upsert_enrichment_bundle --------------------------------------------------------------


def bundle_for(case_id: Any) -> dict[str, Any]:
    return {
        "case_id": str(case_id),
        "source": "skipgenie",
        "contacts": [
            {"contact_type": "phone", "value": "(212) 555-0100", "confidence": 0.9},
            {"contact_type": "email", "value": "John.Smith@Example.com", "is_verified": True},
            {"contact_type": "address", "value": "1  Main St, New York NY", "metadata": {"a": 1}},
        ],
        "assets": [
            {
                "asset_type": "bank",
                "institution": "Chase",
                "details": {"account_last4": "1234"},
                "confidence": 0.7,
            },
            {"asset_type": "employer", "institution": "Widget Corp", "estimated_value": 52000},
            {"asset_type": "vehicle", "details": {"vin": "1HGCM82633A004352"}, "source": "dmv"},
        ],
    }


def upsert(conn: Conn, bundle: Any) -> dict[str, Any]:
    result: dict[str, Any] = one(
        conn, "select public.upsert_enrichment_bundle(%s)", (Jsonb(bundle),)
    )
    return result


def test_bundle_inserts_then_the_same_bundle_changes_nothing(db: Conn) -> None:
    plaintiff_id = make_plaintiff(db)
    _j, case_id = make_court_case(db, plaintiff_id, "CV-B1")
    first = upsert(db, bundle_for(case_id))
    assert first["contacts"] == {"inserted": 3, "updated": 0, "unchanged": 0}
    assert first["assets"] == {"inserted": 3, "updated": 0, "unchanged": 0}
    assert (first["inserted"], first["updated"], first["unchanged"]) == (6, 0, 0)
    snapshot = (
        db.execute("select xmin::text, * from enrichment.contacts order by id").fetchall()
        + db.execute("select xmin::text, * from enrichment.assets order by id").fetchall()
    )
    second = upsert(db, bundle_for(case_id))
    assert second["contacts"] == {"inserted": 0, "updated": 0, "unchanged": 3}
    assert second["assets"] == {"inserted": 0, "updated": 0, "unchanged": 3}
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, 6)
    after = (
        db.execute("select xmin::text, * from enrichment.contacts order by id").fetchall()
        + db.execute("select xmin::text, * from enrichment.assets order by id").fetchall()
    )
    assert after == snapshot
    keys = db.execute(
        "select contact_type, normalized_value from enrichment.contacts order by 1"
    ).fetchall()
    assert keys == [
        ("address", "1 main st, new york ny"),
        ("email", "john.smith@example.com"),
        ("phone", "+12125550100"),
    ]
    assets = db.execute("select asset_type, asset_key from enrichment.assets order by 1").fetchall()
    assert assets == [
        ("bank", "chase:1234"),
        ("employer", "widget corp"),
        ("vehicle", "1hgcm82633a004352"),
    ]


def test_bundle_merges_changes_on_natural_keys(db: Conn) -> None:
    plaintiff_id = make_plaintiff(db)
    _j, case_id = make_court_case(db, plaintiff_id, "CV-B2")
    upsert(db, bundle_for(case_id))
    changed = {
        "case_id": str(case_id),
        "source": "skipgenie",
        "contacts": [
            {"contact_type": "phone", "value": "212.555.0100", "confidence": 0.95},
            {"contact_type": "phone", "value": "+1 718 555 0000"},
            {"contact_type": "email", "value": "John.Smith@Example.com", "is_verified": False},
        ],
        "assets": [
            {"asset_type": "employer", "institution": "WIDGET  CORP", "estimated_value": 60000}
        ],
    }
    result = upsert(db, changed)
    assert result["contacts"] == {"inserted": 1, "updated": 1, "unchanged": 1}
    assert result["assets"] == {"inserted": 0, "updated": 1, "unchanged": 0}
    # is_verified is sticky; the email row was not rewritten.
    assert (
        one(db, "select is_verified from enrichment.contacts where contact_type = 'email'") is True
    )
    assert (
        float(
            one(db, "select estimated_value from enrichment.assets where asset_type = 'employer'")
        )
        == 60000
    )


def test_duplicate_items_in_one_bundle_merge_last_wins(db: Conn) -> None:
    plaintiff_id = make_plaintiff(db)
    _j, case_id = make_court_case(db, plaintiff_id, "CV-B3")
    result = upsert(
        db,
        {
            "case_id": str(case_id),
            "source": "v",
            "contacts": [
                {"contact_type": "phone", "value": "2125550100", "confidence": 0.1},
                {"contact_type": "phone", "value": "(212) 555-0100", "confidence": 0.8},
            ],
        },
    )
    assert result["contacts"] == {"inserted": 1, "updated": 0, "unchanged": 0}
    assert float(one(db, "select confidence from enrichment.contacts")) == 0.8


@pytest.mark.parametrize(
    ("mutate", "text"),
    [
        (lambda b: b.update(case_id="not-a-uuid"), "case_id"),
        (lambda b: b.pop("case_id"), "case_id"),
        (lambda b: b.update(extra=1), "unknown field"),
        (lambda b: b.update(contacts={"a": 1}), "contacts must be an array"),
        (lambda b: b["contacts"].append({"contact_type": "fax", "value": "1"}), "contacts[3]"),
        (
            lambda b: b["contacts"].append({"contact_type": "phone", "value": "12"}),
            "not a valid phone",
        ),
        (
            lambda b: b["contacts"].append({"contact_type": "email", "value": "x@"}),
            "not a valid email",
        ),
        (lambda b: b["contacts"][0].update(confidence=2), "confidence"),
        (lambda b: b["contacts"][0].update(is_verified="yes"), "is_verified"),
        (lambda b: b["contacts"][0].update(colour="red"), "unknown field"),
        (lambda b: b["assets"].append({"asset_type": "boat", "asset_key": "x"}), "assets[3]"),
        (lambda b: b["assets"].append({"asset_type": "other"}), "needs an asset_key"),
        (lambda b: b["assets"][1].update(estimated_value=-1), "estimated_value"),
        (lambda b: b["assets"][1].update(details=[1]), "details"),
        (lambda b: (b.pop("source"), b["assets"][0].pop("confidence")), "source"),
        (
            lambda b: b.update(contacts=[{"contact_type": "phone", "value": "2125550100"}] * 1001),
            "1000",
        ),
    ],
)
def test_invalid_bundles_are_refused_before_anything_is_written(
    db: Conn, mutate: Any, text: str
) -> None:
    plaintiff_id = make_plaintiff(db)
    _j, case_id = make_court_case(db, plaintiff_id, "CV-B4")
    bundle = bundle_for(case_id)
    mutate(bundle)
    with pytest.raises(errors.InvalidParameterValue) as info, db.transaction():
        upsert(db, bundle)
    assert text in str(info.value)
    assert table_counts(db, "enrichment.contacts", "enrichment.assets") == {
        "enrichment.contacts": 0,
        "enrichment.assets": 0,
    }


def test_bundle_for_an_unknown_case_is_not_found(db: Conn) -> None:
    bundle = bundle_for(uuid.uuid4())
    with pytest.raises(errors.NoDataFound), db.transaction():
        upsert(db, bundle)


# --- insert_or_get_entity ------------------------------------------------------------------


def entity(conn: Conn, payload: Any) -> uuid.UUID:
    return one(conn, "select public.insert_or_get_entity(%s)", (Jsonb(payload),))


def test_one_row_per_normalized_identity(db: Conn) -> None:
    a = entity(db, {"entity_type": "person", "name": "John  Q. Smith"})
    b = entity(db, {"entity_type": "person", "name": "smith, john q", "tax_id_last4": "1234"})
    c = entity(db, {"entity_type": "organization", "name": "John Q Smith"})
    assert a == b
    assert c != a
    row = db.execute(
        "select display_name, normalized_key, tax_id_last4 from public.entities where id = %s", (a,)
    ).fetchone()
    assert row == ("John  Q. Smith", "person:john q smith", "1234")
    org_a = entity(db, {"entity_type": "organization", "name": "The Widget Company, Inc."})
    org_b = entity(db, {"entity_type": "organization", "name": "widget co"})
    assert org_a == org_b


def test_entity_links_plaintiffs_and_judgments(db: Conn) -> None:
    plaintiff_id = make_plaintiff(db, "Acme Funding")
    judgment_id, _case = make_court_case(db, plaintiff_id, "CV-L1")
    acme = entity(
        db,
        {"entity_type": "organization", "name": "Acme Funding", "plaintiff_id": str(plaintiff_id)},
    )
    debtor = entity(
        db, {"entity_type": "person", "name": "John Smith", "judgment_id": str(judgment_id)}
    )
    assert one(db, "select entity_id from public.plaintiffs where id = %s", (plaintiff_id,)) == acme
    assert one(
        db, "select debtor_entity_id from public.judgments where id = %s", (judgment_id,)
    ) == (debtor)
    # Linking again to the same entity is fine; to another one is refused.
    entity(
        db,
        {"entity_type": "organization", "name": "ACME funding", "plaintiff_id": str(plaintiff_id)},
    )
    with pytest.raises(errors.UniqueViolation), db.transaction():
        entity(
            db, {"entity_type": "organization", "name": "Other", "plaintiff_id": str(plaintiff_id)}
        )


@pytest.mark.parametrize(
    ("payload", "error", "text"),
    [
        (None, errors.InvalidParameterValue, "JSON object"),
        ({"name": "x"}, errors.InvalidParameterValue, "entity_type"),
        ({"entity_type": "robot", "name": "x"}, errors.InvalidParameterValue, "entity_type"),
        ({"entity_type": "person"}, errors.InvalidParameterValue, "name is required"),
        ({"entity_type": "person", "name": "  "}, errors.InvalidParameterValue, "name is required"),
        ({"entity_type": "person", "name": "..."}, errors.InvalidParameterValue, "no letters"),
        (
            {"entity_type": "person", "name": 5},
            errors.InvalidParameterValue,
            "name must be a string",
        ),
        ({"entity_type": "person", "name": "a", "x": 1}, errors.InvalidParameterValue, "unknown"),
        (
            {"entity_type": "person", "name": "a", "tax_id_last4": "12a4"},
            errors.InvalidParameterValue,
            "tax_id_last4",
        ),
        (
            {"entity_type": "person", "name": "a", "birth_year": 1700},
            errors.InvalidParameterValue,
            "birth_year",
        ),
        (
            {"entity_type": "organization", "name": "a", "birth_year": 1970},
            errors.InvalidParameterValue,
            "only for people",
        ),
        (
            {"entity_type": "person", "name": "a", "state": "New York"},
            errors.InvalidParameterValue,
            "state",
        ),
        (
            {"entity_type": "person", "name": "a", "plaintiff_id": "nope"},
            errors.InvalidParameterValue,
            "plaintiff_id must be a uuid",
        ),
        (
            {"entity_type": "person", "name": "a", "plaintiff_id": str(uuid.UUID(int=1))},
            errors.NoDataFound,
            "plaintiff",
        ),
        (
            {"entity_type": "person", "name": "a", "judgment_id": str(uuid.UUID(int=1))},
            errors.NoDataFound,
            "judgment",
        ),
    ],
)
def test_entity_refusals_write_nothing(
    db: Conn, payload: Any, error: type[Exception], text: str
) -> None:
    before = table_counts(db, "public.entities")
    with pytest.raises(error) as info, db.transaction():
        db.execute(
            "select public.insert_or_get_entity(%s)", (None if payload is None else Jsonb(payload),)
        )
    assert text in str(info.value)
    assert table_counts(db, "public.entities") == before


def test_twenty_concurrent_connections_get_one_entity(fresh_db_url: str) -> None:
    connections = 20
    barrier = threading.Barrier(connections)
    spellings = ["Northwind Traders, Inc.", "NORTHWIND TRADERS INC", "northwind  traders llc"]

    def call(i: int) -> uuid.UUID:
        with psycopg.connect(fresh_db_url, autocommit=True) as conn:
            barrier.wait(timeout=30)
            return entity(
                conn, {"entity_type": "organization", "name": spellings[i % len(spellings)]}
            )

    with ThreadPoolExecutor(max_workers=connections) as pool:
        ids = list(pool.map(call, range(connections)))
    assert len(set(ids)) == 1
    with psycopg.connect(fresh_db_url) as conn:
        assert one(conn, "select count(*) from public.entities") == 1


# --- process_simplicity_imports ------------------------------------------------------------

IMPORT_COLUMNS = (
    "plaintiff_name, plaintiff_email, plaintiff_phone, plaintiff_state, debtor_name, debtor_type,"
    " case_number, judgment_amount, judgment_date, priority"
)


def stage(conn: Conn, rows: list[tuple[Any, ...]], tenant: Any = None) -> uuid.UUID:
    """A run of ``rows`` (lines 2, 3, ...) into ``tenant`` (default: the default tenant)."""
    run_id = one(
        conn,
        "insert into intake.simplicity_import_runs (source_file, tenant_id)"
        " values ('t.csv', coalesce(%s, tenancy.default_tenant_id())) returning id",
        (tenant,),
    )
    for line, row in enumerate(rows, start=2):
        conn.execute(
            f"insert into intake.simplicity_import_rows (run_id, line_number, {IMPORT_COLUMNS})"
            " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (run_id, line, *row),
        )
    return run_id


def process(conn: Conn, run_id: Any) -> dict[str, Any]:
    result: dict[str, Any] = one(conn, "select public.process_simplicity_imports(%s)", (run_id,))
    return result


GOOD = (
    "Acme Funding LLC",
    "a@acme.example",
    "2125550100",
    "NY",
    "John Smith",
    "person",
    "CV-100",
    "$1,200.50",
    "2024-01-02",
    "high",
)


def test_import_materializes_good_rows_and_marks_bad_ones(db: Conn) -> None:
    run_id = stage(
        db,
        [
            GOOD,
            (
                "Acme Funding, L.L.C.",
                None,
                None,
                None,
                "Widget Corp",
                None,
                "CV-101",
                "99",
                None,
                None,
            ),
            (
                "Acme Funding LLC",
                "bad-email",
                None,
                None,
                "Jane Doe",
                None,
                "CV-102",
                "x",
                None,
                None,
            ),
            (
                "Acme Funding LLC",
                None,
                None,
                None,
                "John Smith",
                "person",
                " cv-100 ",
                "1",
                None,
                None,
            ),
        ],
    )
    result = process(db, run_id)
    assert {
        k: result[k]
        for k in (
            "status",
            "total_rows",
            "imported_rows",
            "duplicate_rows",
            "failed_rows",
            "processed_now",
        )
    } == {
        "status": "completed",
        "total_rows": 4,
        "imported_rows": 2,
        "duplicate_rows": 1,
        "failed_rows": 1,
        "processed_now": 4,
    }
    rows = db.execute(
        "select line_number, status, error, plaintiff_id, judgment_id, case_id"
        " from intake.simplicity_import_rows where run_id = %s order by line_number",
        (run_id,),
    ).fetchall()
    assert [r[1] for r in rows] == ["imported", "imported", "failed", "duplicate"]
    assert "plaintiff_email 'bad-email'" in rows[2][2]
    assert "judgment_amount 'x'" in rows[2][2]
    assert rows[2][3:] == (None, None, None)
    assert rows[3][3:] == rows[0][3:], "the duplicate links to the first line's records"
    assert rows[0][3] == rows[1][3], "both spellings of Acme are one plaintiff"
    assert one(db, "select count(*) from public.plaintiffs") == 1
    plaintiff = db.execute(
        "select name, email, phone, source, entity_id is not null from public.plaintiffs"
    ).fetchone()
    assert plaintiff == ("Acme Funding LLC", "a@acme.example", "+12125550100", "simplicity", True)
    judgment = db.execute(
        "select j.judgment_amount, j.balance_due, j.priority_level, j.judgment_date::text,"
        " c.case_number, e.normalized_key"
        " from public.judgments j join judgments.cases c on c.judgment_id = j.id"
        " join public.entities e on e.id = j.debtor_entity_id where j.id = %s",
        (rows[0][4],),
    ).fetchone()
    assert judgment is not None
    assert (float(judgment[0]), float(judgment[1]), *judgment[2:]) == (
        1200.5,
        1200.5,
        "high",
        "2024-01-02",
        "CV-100",
        "person:john smith",
    )


def test_processing_a_run_again_changes_nothing(db: Conn) -> None:
    run_id = stage(db, [GOOD])
    process(db, run_id)
    tables = ("public.entities", "public.plaintiffs", "public.judgments", "judgments.cases")
    before = table_counts(db, *tables)
    run_before = db.execute(
        "select xmin::text, * from intake.simplicity_import_runs where id = %s", (run_id,)
    ).fetchone()
    rows_before = db.execute(
        "select xmin::text, * from intake.simplicity_import_rows where run_id = %s", (run_id,)
    ).fetchall()
    again = process(db, run_id)
    assert again["processed_now"] == 0
    assert again["imported_rows"] == 1
    assert table_counts(db, *tables) == before
    assert (
        db.execute(
            "select xmin::text, * from intake.simplicity_import_runs where id = %s", (run_id,)
        ).fetchone()
        == run_before
    )
    assert (
        db.execute(
            "select xmin::text, * from intake.simplicity_import_rows where run_id = %s", (run_id,)
        ).fetchall()
        == rows_before
    )


def test_a_second_run_with_known_case_numbers_is_all_duplicates(db: Conn) -> None:
    process(db, stage(db, [GOOD]))
    second = process(db, stage(db, [GOOD]))
    assert (second["imported_rows"], second["duplicate_rows"]) == (0, 1)
    assert one(db, "select count(*) from public.judgments") == 1


def test_an_unexpected_error_fails_the_run_and_leaves_rows_pending(db: Conn) -> None:
    run_id = stage(db, [GOOD])
    # A check the import does not validate: make the judgment insert fail.
    db.execute(
        "alter table public.judgments add constraint t_no_high check (priority_level <> 'high')"
    )
    result = process(db, run_id)
    assert result["status"] == "failed"
    assert "t_no_high" in result["error"]
    assert one(db, "select count(*) from public.judgments") == 0
    assert one(db, "select count(*) from public.entities") == 0
    assert (
        one(db, "select count(*) from intake.simplicity_import_rows where status = 'pending'") == 1
    )
    db.execute("alter table public.judgments drop constraint t_no_high")
    assert process(db, run_id)["status"] == "completed"


def test_import_refusals(db: Conn) -> None:
    with pytest.raises(errors.NoDataFound), db.transaction():
        process(db, uuid.uuid4())
    with pytest.raises(errors.InvalidParameterValue), db.transaction():
        process(db, None)


@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        (0, None, "plaintiff_name is required"),
        (2, "555-01", "plaintiff_phone"),
        (3, "New York", "plaintiff_state"),
        (4, "  ", "debtor_name is required"),
        (5, "alien", "debtor_type"),
        (6, None, "case_number is required"),
        (7, "0", "not a positive amount"),
        (7, "12,34", "not a positive amount"),
        (7, None, "judgment_amount is required"),
        (8, "2023-13-01", "not a date"),
        (8, "02/30/2024", "not a date"),
        (8, "2099-01-01", "in the future"),
        (9, "asap", "priority"),
    ],
)
def test_each_validation_rule(db: Conn, column: int, value: Any, text: str) -> None:
    row = list(GOOD)
    row[column] = value
    run_id = stage(db, [tuple(row)])
    result = process(db, run_id)
    assert result["failed_rows"] == 1
    error = one(db, "select error from intake.simplicity_import_rows where run_id = %s", (run_id,))
    assert text in error
    assert one(db, "select count(*) from public.judgments") == 0


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("1200.5", "1200.50"),
        ("007", "7.00"),
        ("123456789012", "123456789012.00"),
        ("123456789012.34", "123456789012.34"),
        ("$1,200.50", "1200.50"),
        ("$ 99", "99.00"),
        ("1234567890123", None),
        ("12.", None),
        (".5", None),
        ("5.555", None),
        ("1.2.3", None),
        ("12,34", None),
        ("1\t2", None),
    ],
)
def test_amount_rule(db: Conn, value: str, stored: str | None) -> None:
    """Plain digits are parsed without the regular expression; the result is the rule's."""
    row = list(GOOD)
    row[7] = value
    run_id = stage(db, [tuple(row)])
    result = process(db, run_id)
    assert result["imported_rows"] == (0 if stored is None else 1)
    if stored is not None:
        assert one(db, "select judgment_amount::text from public.judgments") == stored


def test_time_ordered_uuid_layout(db: Conn) -> None:
    """prefix, '7', the sequence's top 12 bits, '8', its low 20 bits, suffix."""
    assert (
        one(
            db,
            "select intake.time_ordered_uuid('0123456789ab', %s, 'abcdef0123')::text",
            (0x1_12345678,),
        )
        == "01234567-89ab-7123-8456-78abcdef0123"
    )
    assert one(
        db,
        "select bool_and(intake.time_ordered_uuid('0123456789ab', n, 'ffffffffff')"
        " < intake.time_ordered_uuid('0123456789ab', n + 1, '0000000000'))"
        " from generate_series(0, 70000) as n",
    )


# A run with every kind of outcome: new rows, a repeat of the run's own case number on a
# line naming another plaintiff, a case number an earlier run created, and bad rows.
MIXED = [
    GOOD,
    ("Beta Capital Group", None, None, None, "Jane Doe", None, "CV-200", "10", None, None),
    ("Gamma Trust", None, None, None, "Bob Brown", "person", " cv-200 ", "20", None, None),
    ("Gamma Trust", None, None, None, "Bob Brown", "person", "CV-300", "30", None, None),
    ("Gamma Trust", "bad", None, None, "Bob Brown", "person", "CV-301", "x", None, None),
    ("Delta LLC", None, None, None, "Carl Cole", "person", "CV-100", "40", None, None),
]


def test_staging_rows_record_what_each_row_became(db: Conn) -> None:
    """plaintiff_id, judgment_id and case_id of every processed staging row point at the
    plaintiff, judgment and court case the row created or was linked to."""
    process(db, stage(db, [GOOD]))
    run_id = stage(db, MIXED)
    result = process(db, run_id)
    assert (result["imported_rows"], result["duplicate_rows"], result["failed_rows"]) == (2, 3, 1)
    rows = db.execute(
        """
        select s.line_number, s.status,
               s.plaintiff_id is not distinct from j.plaintiff_id
                   and s.judgment_id is not distinct from c.judgment_id
                   and s.case_id is not distinct from c.id as consistent,
               c.case_number, p.name
          from intake.simplicity_import_rows s
          left join judgments.cases c on c.id = s.case_id
          left join public.judgments j on j.id = s.judgment_id
          left join public.plaintiffs p on p.id = s.plaintiff_id
         where s.run_id = %s
         order by s.line_number
        """,
        (run_id,),
    ).fetchall()
    assert rows == [
        (2, "duplicate", True, "CV-100", "Acme Funding LLC"),
        (3, "imported", True, "CV-200", "Beta Capital Group"),
        (4, "duplicate", True, "CV-200", "Beta Capital Group"),
        (5, "imported", True, "CV-300", "Gamma Trust"),
        (6, "failed", True, None, None),
        (7, "duplicate", True, "CV-100", "Acme Funding LLC"),
    ]
    assert db.execute(
        "select plaintiff_id, judgment_id, case_id from intake.simplicity_import_rows"
        " where run_id = %s and status = 'failed'",
        (run_id,),
    ).fetchall() == [(None, None, None)]


def test_staging_rows_are_a_record_not_a_reference(db: Conn) -> None:
    """The provenance columns are what the row became at import time, without foreign keys:
    deleting what a row became is not blocked and leaves the row as it was, and processing
    the run again changes nothing."""
    run_id = stage(db, [GOOD])
    process(db, run_id)
    before = db.execute(
        "select status, plaintiff_id, judgment_id, case_id from intake.simplicity_import_rows"
        " where run_id = %s",
        (run_id,),
    ).fetchone()
    assert before is not None
    assert before[2] is not None
    db.execute("delete from public.judgments where id = %s", (before[2],))
    again = process(db, run_id)
    assert again["processed_now"] == 0
    after = db.execute(
        "select status, plaintiff_id, judgment_id, case_id from intake.simplicity_import_rows"
        " where run_id = %s",
        (run_id,),
    ).fetchone()
    assert after == before


def test_marking_the_staging_rows_is_a_hot_update(db: Conn) -> None:
    """No index covers the columns the import writes on a staging row and the table keeps
    free space on each page, so the rows are updated in place (HOT: no index insertions).
    A row whose new version does not fit on its page (a long error message) is still
    updated, just not in place; these short rows nearly all fit."""
    run_id = stage(db, [(*GOOD[:6], f"CV-{i}", *GOOD[7:]) for i in range(300)])
    process(db, run_id)
    updated, hot = db.execute(
        "select n_tup_upd, n_tup_hot_upd from pg_stat_xact_user_tables"
        " where relid = 'intake.simplicity_import_rows'::regclass"
    ).fetchone() or (None, None)
    assert updated == 300
    assert hot >= 0.9 * updated


def test_an_entity_created_meanwhile_by_another_writer_is_used(fresh_db_url: str) -> None:
    """The entity insert leaves out known identities instead of using ON CONFLICT; an entity
    another transaction creates while the import runs makes it redo the insert with
    ON CONFLICT DO NOTHING, and the judgment gets that writer's entity."""
    with psycopg.connect(fresh_db_url) as setup:
        run_id = stage(setup, [GOOD])
        setup.commit()
    with psycopg.connect(fresh_db_url) as writer, psycopg.connect(fresh_db_url) as importer:
        writer_entity = entity(writer, {"entity_type": "person", "name": "SMITH, John"})
        importer_pid = one(importer, "select pg_backend_pid()")
        with ThreadPoolExecutor(max_workers=1) as pool:
            future = pool.submit(process, importer, run_id)
            deadline = datetime.now(UTC) + timedelta(seconds=30)
            while not one(
                writer,
                "select exists (select 1 from pg_locks where pid = %s and not granted)",
                (importer_pid,),
            ):
                assert datetime.now(UTC) < deadline, "the import never waited for the writer"
                assert not future.done(), future.result()
                threading.Event().wait(0.05)
            writer.commit()
            result = future.result(timeout=30)
        importer.commit()
    assert (result["status"], result["imported_rows"]) == ("completed", 1)
    with psycopg.connect(fresh_db_url) as conn:
        assert (
            one(
                conn,
                "select count(*) from public.entities where normalized_key = 'person:john smith'",
            )
            == 1
        )
        assert one(conn, "select debtor_entity_id from public.judgments") == writer_entity


# --- tenants ---------------------------------------------------------------------------------

DEFAULT_TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")


def make_tenant(conn: Conn, slug: str) -> uuid.UUID:
    return one(
        conn, "insert into public.tenants (slug, name) values (%s, %s) returning id", (slug, slug)
    )


def outcomes(conn: Conn, run_id: Any) -> list[tuple[Any, ...]]:
    """(line, status, plaintiff_id, judgment_id, case_id) of each staged row of the run."""
    return conn.execute(
        "select line_number, status, plaintiff_id, judgment_id, case_id"
        " from intake.simplicity_import_rows where run_id = %s order by line_number",
        (run_id,),
    ).fetchall()


OTHER = (
    "Acme Funding LLC",
    None,
    None,
    None,
    "Widget Corp",
    None,
    "CV-200",
    "75",
    None,
    None,
)


def test_the_same_export_in_two_tenants_is_two_independent_books(db: Conn) -> None:
    north = make_tenant(db, "north")
    first = process(db, stage(db, [GOOD, OTHER]))
    second = process(db, stage(db, [GOOD, OTHER], tenant=north))
    assert (first["imported_rows"], first["duplicate_rows"]) == (2, 0)
    assert (second["imported_rows"], second["duplicate_rows"]) == (2, 0)
    assert (first["tenant_id"], second["tenant_id"]) == (str(DEFAULT_TENANT), str(north))
    # One plaintiff per tenant, on one shared entity; the case numbers once in each tenant.
    plaintiffs = db.execute(
        "select tenant_id, entity_id from public.plaintiffs order by tenant_id"
    ).fetchall()
    assert sorted(t for t, _e in plaintiffs) == sorted([DEFAULT_TENANT, north])
    assert len({e for _t, e in plaintiffs}) == 1
    assert one(db, "select count(*) from public.entities") == 3
    cases = db.execute(
        "select c.tenant_id, c.case_number, j.tenant_id, p.tenant_id"
        " from judgments.cases c join public.judgments j on j.id = c.judgment_id"
        " join public.plaintiffs p on p.id = j.plaintiff_id order by 1, 2"
    ).fetchall()
    assert sorted(cases) == sorted(
        [(t, n, t, t) for t in (DEFAULT_TENANT, north) for n in ("CV-100", "CV-200")]
    )
    # Opening a case on north's judgment puts it in north.
    judgment = one(db, "select id from public.judgments where tenant_id = %s limit 1", (north,))
    plaintiff = one(db, "select plaintiff_id from public.judgments where id = %s", (judgment,))
    tenant = one(
        db,
        "insert into public.enforcement_cases (judgment_id, plaintiff_id, current_balance,"
        " created_by) values (%s, %s, 1, 'test') returning tenant_id",
        (judgment, plaintiff),
    )
    assert tenant == north


def test_a_re_import_matches_the_rows_of_its_own_tenant_only(db: Conn) -> None:
    north = make_tenant(db, "north")
    default_run = stage(db, [GOOD])
    north_run = stage(db, [GOOD], tenant=north)
    process(db, default_run)
    process(db, north_run)
    before = table_counts(db, "public.plaintiffs", "public.judgments", "judgments.cases")

    again = stage(db, [GOOD, OTHER])
    result = process(db, again)
    assert (result["imported_rows"], result["duplicate_rows"]) == (1, 1)
    (_line, status, plaintiff_id, judgment_id, case_id), new = outcomes(db, again)
    assert status == "duplicate"
    assert (plaintiff_id, judgment_id, case_id) == tuple(outcomes(db, default_run)[0][2:])
    assert (plaintiff_id, judgment_id, case_id) != tuple(outcomes(db, north_run)[0][2:])
    # The new row joins the default tenant's plaintiff, not north's.
    assert new[1:3] == ("imported", plaintiff_id)
    after = table_counts(db, "public.plaintiffs", "public.judgments", "judgments.cases")
    assert after == {
        "public.plaintiffs": before["public.plaintiffs"],
        "public.judgments": before["public.judgments"] + 1,
        "judgments.cases": before["judgments.cases"] + 1,
    }
    assert one(db, "select tenant_id from public.judgments where id = %s", (new[3],)) == (
        DEFAULT_TENANT
    )


def test_a_run_of_a_tenant_out_of_reach_is_a_run_that_does_not_exist(db: Conn) -> None:
    north = make_tenant(db, "north")
    run_id = stage(db, [GOOD], tenant=north)
    missing = uuid.uuid4()
    # dragonfly.acting_tenant narrows even the owner to one tenant.
    db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (str(DEFAULT_TENANT),))
    messages = []
    for target in (run_id, missing):
        with pytest.raises(errors.NoDataFound) as refused, db.transaction():
            process(db, target)
        messages.append(str(refused.value).replace(str(target), "<id>"))
    assert messages[0] == messages[1]
    assert one(db, "select status from intake.simplicity_import_runs where id = %s", (run_id,)) == (
        "pending"
    )
    assert table_counts(db, "public.judgments") == {"public.judgments": 0}
    db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (str(north),))
    assert process(db, run_id)["imported_rows"] == 1


def test_existing_runs_and_unnamed_runs_import_into_the_default_tenant(db: Conn) -> None:
    run_id = one(
        db,
        "insert into intake.simplicity_import_runs (source_file) values ('t.csv') returning id",
    )
    assert one(
        db, "select tenant_id from intake.simplicity_import_runs where id = %s", (run_id,)
    ) == (DEFAULT_TENANT)


@pytest.mark.parametrize(
    ("column", "constraint"),
    [
        ("external_id", "plaintiffs_tenant_id_external_id_key"),
        ("entity_id", "plaintiffs_tenant_id_entity_id_key"),
    ],
)
def test_plaintiff_identities_are_unique_per_tenant(db: Conn, column: str, constraint: str) -> None:
    north = make_tenant(db, "north")
    value: Any = "SIMPL-1"
    if column == "entity_id":
        value = entity(db, {"entity_type": "organization", "name": "Acme Funding"})
    insert = f"insert into public.plaintiffs (tenant_id, name, {column}) values (%s, 'Acme', %s)"
    db.execute(insert, (DEFAULT_TENANT, value))
    db.execute(insert, (north, value))
    with pytest.raises(errors.UniqueViolation) as refused, db.transaction():
        db.execute(insert, (north, value))
    assert refused.value.diag.constraint_name == constraint


def test_case_numbers_are_unique_per_tenant(db: Conn) -> None:
    north = make_tenant(db, "north")
    make_court_case(db, make_plaintiff(db), "CV-9")
    north_plaintiff = one(
        db,
        "insert into public.plaintiffs (tenant_id, name) values (%s, 'N') returning id",
        (north,),
    )
    make_court_case(db, north_plaintiff, "CV-9")
    with pytest.raises(errors.UniqueViolation) as refused, db.transaction():
        make_court_case(db, north_plaintiff, "CV-9")
    assert refused.value.diag.constraint_name == "cases_tenant_id_case_number_key"


def test_an_entity_links_one_plaintiff_per_tenant(db: Conn) -> None:
    north = make_tenant(db, "north")
    ours = make_plaintiff(db, "Acme Funding")
    theirs = one(
        db,
        "insert into public.plaintiffs (tenant_id, name) values (%s, 'Acme Funding') returning id",
        (north,),
    )
    second = make_plaintiff(db, "Acme Funding (again)")
    payload = {"entity_type": "organization", "name": "Acme Funding"}
    acme = entity(db, {**payload, "plaintiff_id": str(ours)})
    assert entity(db, {**payload, "plaintiff_id": str(theirs)}) == acme
    # Within one tenant the identity is taken; the refusal names that tenant's plaintiff.
    with pytest.raises(errors.UniqueViolation) as refused, db.transaction():
        entity(db, {**payload, "plaintiff_id": str(second)})
    assert str(ours) in str(refused.value)
    assert str(theirs) not in str(refused.value)


def test_entity_links_out_of_reach_answer_like_missing_rows(db: Conn) -> None:
    north = make_tenant(db, "north")
    plaintiff = one(
        db,
        "insert into public.plaintiffs (tenant_id, name) values (%s, 'N') returning id",
        (north,),
    )
    judgment, _case = make_court_case(db, plaintiff, "CV-N1")
    db.execute("select set_config('dragonfly.acting_tenant', %s, true)", (str(DEFAULT_TENANT),))
    for field, target in (("plaintiff_id", plaintiff), ("judgment_id", judgment)):
        messages = []
        for value in (target, uuid.uuid4()):
            with pytest.raises(errors.NoDataFound) as refused, db.transaction():
                entity(db, {"entity_type": "person", "name": "Jo", field: str(value)})
            messages.append(str(refused.value).replace(str(value), "<id>"))
        assert messages[0] == messages[1], field
    assert one(db, "select entity_id from public.plaintiffs where id = %s", (plaintiff,)) is None
