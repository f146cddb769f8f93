"""The console schema's functions, called as the console calls them: as a signed-in member
(role authenticated and the claims Supabase issues), as the static admin (service_role),
on a real database with real PGMQ. Rows live in the ``db`` fixture's rolled-back
transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.console.support import acting_as, add_dead_letter, claims_of
from tests.security.tenants import make_tenant, member
from tests.sql.enforcement_seed import seed

Conn = psycopg.Connection[Any]


def dict_rows(conn: Conn, query: str, params: Any = None) -> list[dict[str, Any]]:
    cur = conn.execute(query, params)
    names = [c.name for c in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def world(db: Conn) -> dict[str, Any]:
    """Tenants A and B; an operator and a viewer of A, an operator of B; a dead letter of
    each tenant and one naming no tenant."""
    a = make_tenant(db, "acme")
    b = make_tenant(db, "bolt")
    op_a, viewer_a, op_b = (
        member(db, a, "operator", "op-a@example.test"),
        member(db, a, "viewer", "viewer-a@example.test"),
        member(db, b, "operator", "op-b@example.test"),
    )
    return {
        "a": a,
        "b": b,
        "op_a": claims_of(db, op_a),
        "viewer_a": claims_of(db, viewer_a),
        "op_b": claims_of(db, op_b),
        "dl_a": add_dead_letter(db, tenant=a, error="VendorError: 503 for acme"),
        "dl_b": add_dead_letter(db, tenant=b, error="VendorError: 503 for bolt"),
        "dl_none": add_dead_letter(db, tenant=None, error="VendorError: 503 unowned"),
    }


def visible_ids(conn: Conn, **filters: Any) -> set[int]:
    args = ", ".join(f"p_{k} => %({k})s" for k in filters)
    rows = dict_rows(conn, f"select id from console.find_dead_letters({args})", filters)
    return {int(r["id"]) for r in rows}


def test_a_member_sees_their_tenants_dead_letters_only_and_the_admin_sees_all(
    db: Conn, world: dict[str, Any]
) -> None:
    with acting_as(db, "authenticated", world["op_a"]):
        assert visible_ids(db) == {world["dl_a"]}
        assert visible_ids(db, error="503") == {world["dl_a"]}
        assert dict_rows(db, "select id from console.dead_letter(%s)", (world["dl_b"],)) == []
        assert dict_rows(db, "select id from console.dead_letter(%s)", (world["dl_none"],)) == []
        [row] = dict_rows(db, "select * from console.dead_letter(%s)", (world["dl_a"],))
        assert row["writable"] is True
        assert row["message"]["tenant"] == world["a"]
    with acting_as(db, "authenticated", world["viewer_a"]):
        [row] = dict_rows(db, "select writable from console.find_dead_letters()")
        assert row["writable"] is False
    with acting_as(db, "authenticated", world["op_b"]):
        assert visible_ids(db) == {world["dl_b"]}
    with acting_as(db, "service_role"):
        assert visible_ids(db) >= {world["dl_a"], world["dl_b"], world["dl_none"]}
    with acting_as(db, "enforcement_operator"):
        assert world["dl_none"] in visible_ids(db)


def test_a_signed_in_stranger_sees_nothing(db: Conn, world: dict[str, Any]) -> None:
    stranger = claims_of(db, member(db, make_tenant(db, "carrot"), "admin"))
    with acting_as(db, "authenticated", stranger):
        assert visible_ids(db) == set()
        assert dict_rows(db, "select * from console.audit_log()") == []
        [me] = dict_rows(db, "select * from console.whoami()")
        assert me["global"] is False
        assert me["actor"] == stranger["email"]


def test_the_filters_narrow_by_queue_kind_error_case_time_and_status(
    db: Conn, world: dict[str, Any]
) -> None:
    case = seed(db, tenant=world["a"]).case_id
    on_case = add_dead_letter(
        db,
        tenant=world["a"],
        queue="enforce",
        error="DF001: 100% off_by_one",
        payload={"case_id": case},
    )
    with acting_as(db, "authenticated", world["op_a"]):
        assert visible_ids(db, queue="enforce") == {on_case}
        assert visible_ids(db, kind="enrich") == {world["dl_a"]}
        assert visible_ids(db, case=case) == {on_case}
        assert visible_ids(db, error="100%") == {on_case}  # % taken literally
        assert visible_ids(db, error="OFF_BY") == {on_case}  # case-insensitive, _ literal
        assert visible_ids(db, error="off-by") == set()
        assert visible_ids(db, until=datetime.now(UTC) - timedelta(days=1)) == set()
        assert visible_ids(db, since=datetime.now(UTC) - timedelta(days=1)) == {
            world["dl_a"],
            on_case,
        }
        assert visible_ids(db, status="replayed") == set()
        [first] = dict_rows(db, "select total from console.find_dead_letters(p_limit => 1)")
        assert first["total"] == 2


def test_bad_search_arguments_are_refused_with_22023(db: Conn, world: dict[str, Any]) -> None:
    for call, message in (
        ("select * from console.find_dead_letters(p_status => 'gone')", "status must be"),
        ("select * from console.find_dead_letters(p_limit => 0)", "limit must be"),
        ("select * from console.find_dead_letters(p_offset => -1)", "offset must be"),
        ("select * from console.audit_log(0)", "limit must be"),
    ):
        with (
            acting_as(db, "authenticated", world["op_a"]),
            pytest.raises(psycopg.errors.InvalidParameterValue, match=message),
            db.transaction(),
        ):
            db.execute(call)


def test_replay_needs_a_write_tenant_goes_through_replay_dead_letter_and_is_audited(
    db: Conn, world: dict[str, Any]
) -> None:
    dl_a, dl_b = world["dl_a"], world["dl_b"]
    with acting_as(db, "authenticated", world["viewer_a"]):
        [viewer] = dict_rows(db, "select * from console.replay_dead_letters(%s, false)", ([dl_a],))
    assert viewer["outcome"] == "read_only"
    with acting_as(db, "authenticated", world["op_b"]):
        [other] = dict_rows(db, "select * from console.replay_dead_letters(%s, false)", ([dl_a],))
        [missing] = dict_rows(
            db, "select * from console.replay_dead_letters(%s, false)", ([10**12],)
        )
    # Another tenant's dead letter answers exactly like one that does not exist.
    assert other["outcome"] == missing["outcome"] == "not_found"
    assert other["detail"].replace(str(dl_a), "N") == missing["detail"].replace(str(10**12), "N")

    with acting_as(db, "authenticated", world["op_a"]):
        dry = dict_rows(
            db,
            "select * from console.replay_dead_letters(%s, true, null, %s)",
            ([dl_a], Jsonb({"ids": [dl_a]})),
        )
        assert [(d["dead_letter_id"], d["outcome"]) for d in dry] == [(dl_a, "would_replay")]
    status = db.execute(
        "select status from dragonfly.dead_letters where id = %s", (dl_a,)
    ).fetchone()
    assert status == ("dead",)  # a dry run changes nothing

    with acting_as(db, "authenticated", world["op_a"]):
        done = dict_rows(
            db, "select * from console.replay_dead_letters(%s, false, 'ignored')", ([dl_a, dl_b],)
        )
    row = db.execute(
        "select status, resolved_by, replay_msg_id from dragonfly.dead_letters where id = %s",
        (dl_a,),
    ).fetchone()
    assert row is not None
    assert row[0] == "replayed"
    assert row[1] == "op-a@example.test"  # the token's identity, not what the caller passed
    sent = db.execute("select message from pgmq.q_enrich where msg_id = %s", (row[2],)).fetchone()
    assert sent is not None
    assert sent[0]["tenant"] == world["a"]
    assert db.execute(
        "select status from dragonfly.dead_letters where id = %s", (dl_b,)
    ).fetchone() == ("dead",)

    audit = dict_rows(
        db,
        "select actor, actor_sub, action, dry_run, target_id, tenant, outcome from"
        " dragonfly.console_audit order by id",
    )
    assert [(a["actor"], a["target_id"], a["dry_run"], a["outcome"]) for a in audit] == [
        ("viewer-a@example.test", dl_a, False, "read_only"),
        ("op-b@example.test", dl_a, False, "not_found"),
        ("op-b@example.test", 10**12, False, "not_found"),
        ("op-a@example.test", dl_a, True, "would_replay"),
        ("op-a@example.test", dl_a, False, "replayed"),
        ("op-a@example.test", dl_b, False, "not_found"),
    ]
    # The not-found rows keep no tenant: they tell nobody whose row it was.
    assert {a["tenant"] for a in audit if a["outcome"] == "not_found"} == {None}
    assert [(d["dead_letter_id"], d["outcome"]) for d in done] == [
        (dl_a, "replayed"),
        (dl_b, "not_found"),
    ]
    assert done[0]["replay_msg_id"] == row[2]

    with acting_as(db, "authenticated", world["op_b"]):
        seen = dict_rows(db, "select target_id, outcome from console.audit_log()")
    assert seen == []  # B's own refused attempts have no tenant: only global callers see them
    with acting_as(db, "authenticated", world["viewer_a"]):
        seen = dict_rows(db, "select target_id, outcome from console.audit_log()")
    assert [s["outcome"] for s in seen] == ["replayed", "would_replay", "read_only"]


def test_a_second_replay_and_a_truncated_one_are_refused_and_nothing_is_sent(
    db: Conn, world: dict[str, Any]
) -> None:
    truncated = add_dead_letter(db, tenant=world["a"], truncated=True)
    before = db.execute("select count(*) from pgmq.q_enrich").fetchone()
    with acting_as(db, "service_role"):
        dry = dict_rows(
            db, "select * from console.replay_dead_letters(%s, true, 'admin')", ([truncated],)
        )
        real = dict_rows(
            db, "select * from console.replay_dead_letters(%s, false, 'admin')", ([truncated],)
        )
        first = dict_rows(
            db, "select * from console.replay_dead_letters(%s, false, 'admin')", ([world["dl_a"]],)
        )
        again = dict_rows(
            db, "select * from console.replay_dead_letters(%s, false, 'admin')", ([world["dl_a"]],)
        )
    assert dry[0]["outcome"] == "refused"
    assert "truncated" in dry[0]["detail"]
    assert real[0]["outcome"] == "refused"
    assert "truncated stand-in" in real[0]["detail"]
    assert first[0]["outcome"] == "replayed"
    assert again[0] == {
        "dead_letter_id": world["dl_a"],
        "outcome": "refused",
        "replay_msg_id": None,
        "detail": f"dead letter {world['dl_a']} is already replayed",
    }
    after = db.execute("select count(*) from pgmq.q_enrich").fetchone()
    assert before is not None
    assert after is not None
    assert after[0] == before[0] + 1


def test_purge_needs_a_write_tenant_and_records_who(db: Conn, world: dict[str, Any]) -> None:
    with acting_as(db, "authenticated", world["viewer_a"]):
        [viewer] = dict_rows(
            db, "select * from console.purge_dead_letters(%s, false)", ([world["dl_a"]],)
        )
    with acting_as(db, "authenticated", world["op_a"]):
        [dry] = dict_rows(
            db, "select * from console.purge_dead_letters(%s, true)", ([world["dl_a"]],)
        )
        [real] = dict_rows(
            db, "select * from console.purge_dead_letters(%s, false)", ([world["dl_a"]],)
        )
    assert (viewer["outcome"], dry["outcome"], real["outcome"]) == (
        "read_only",
        "would_purge",
        "purged",
    )
    assert db.execute(
        "select status, resolved_by from dragonfly.dead_letters where id = %s", (world["dl_a"],)
    ).fetchone() == ("purged", "op-a@example.test")


@pytest.mark.parametrize(
    ("call", "sqlstate"),
    [
        ("select * from console.replay_dead_letters(null, true, 'x')", "22023"),
        ("select * from console.replay_dead_letters('{}', true, 'x')", "22023"),
        ("select * from console.replay_dead_letters('{1}', null, 'x')", "22023"),
        ("select * from console.replay_dead_letters('{1}', true, ' ')", "22023"),
        ("select * from console.replay_dead_letters('{1}', true, null, '[1]')", "22023"),
        (
            "select * from console.purge_dead_letters("
            "(select array_agg(g) from generate_series(1, 10001) g)::bigint[], true, 'x')",
            "54000",
        ),
        ("select * from console.retry_alert_deliveries('{}', 'x')", "22023"),
    ],
)
def test_bad_actions_are_refused_with_a_sqlstate_and_write_nothing(
    db: Conn, call: str, sqlstate: str
) -> None:
    with acting_as(db, "service_role"), pytest.raises(psycopg.Error) as info, db.transaction():
        db.execute(call)
    assert info.value.sqlstate == sqlstate
    assert db.execute("select count(*) from dragonfly.console_audit").fetchone() == (0,)


def test_the_case_functions_answer_only_for_a_case_the_caller_reaches(
    db: Conn, world: dict[str, Any]
) -> None:
    case = seed(db, tenant=world["a"]).case_id
    assert case is not None
    db.execute(
        "insert into dragonfly.completed_jobs (kind, idempotency_key, queue, msg_id, attempts,"
        " case_id, tenant) values ('enforce', 'plan-1', 'enforce', 7, 1, %s, %s)",
        (case, world["a"]),
    )
    add_dead_letter(db, tenant=world["a"], queue="enforce", payload={"case_id": case})
    db.execute(
        "select pgmq.send('outreach', %s)",
        (Jsonb({"kind": "outreach", "idempotency_key": "o-1", "payload": {"case_id": case}}),),
    )
    db.execute(
        "insert into public.case_copilot_outputs (enforcement_case_id, backend, version,"
        " latency_ms, brief) values (%s, 'rules', 'v1', 3, %s)",
        (
            case,
            Jsonb({"summary": "s", "risk_flags": [], "recommended_actions": [], "inputs_used": []}),
        ),
    )
    with acting_as(db, "authenticated", world["op_a"]):
        jobs = dict_rows(db, "select source, queue, state from console.case_jobs(%s)", (case,))
        briefs = dict_rows(db, "select backend from console.case_briefs(%s)", (case,))
    assert sorted((j["source"], j["queue"], j["state"]) for j in jobs) == [
        ("completed", "enforce", "done"),
        ("dead_letter", "enforce", "dead"),
        ("queued", "outreach", "queued"),
    ]
    assert briefs == [{"backend": "rules"}]
    with acting_as(db, "authenticated", world["viewer_a"]):
        assert len(dict_rows(db, "select * from console.case_jobs(%s)", (case,))) == 3
        assert dict_rows(db, "select * from console.case_briefs(%s)", (case,)) == []
    with acting_as(db, "authenticated", world["op_b"]):
        assert dict_rows(db, "select * from console.case_jobs(%s)", (case,)) == []
        assert dict_rows(db, "select * from console.case_briefs(%s)", (case,)) == []
        assert (
            dict_rows(db, "select * from public.v_enforcement_timeline where case_id = %s", (case,))
            == []
        )
    with acting_as(db, "authenticated", world["op_a"]):
        assert dict_rows(
            db, "select * from public.v_enforcement_timeline where case_id = %s", (case,)
        )


def test_alert_deliveries_are_seen_and_retried_by_their_cases_tenant(
    db: Conn, world: dict[str, Any]
) -> None:
    case = seed(db, tenant=world["a"]).case_id
    [delivery] = db.execute(
        "insert into dragonfly.alert_deliveries (event_id, case_id, event_kind, event_created_at,"
        " rule, sink, context, status, attempts, dead_at, last_error)"
        " values (gen_random_uuid(), %s, 'payment_received', now(), 'payment_received', 'slack',"
        " '{}', 'dead', 8, now(), 'HTTP 404') returning id",
        (case,),
    ).fetchone() or (None,)
    with acting_as(db, "authenticated", world["op_b"]):
        assert dict_rows(db, "select * from console.find_alert_deliveries()") == []
        [b] = dict_rows(db, "select * from console.retry_alert_deliveries(%s)", ([delivery],))
        counts = {
            r["status"]: r["deliveries"]
            for r in dict_rows(db, "select * from console.alert_delivery_counts()")
        }
    assert b["outcome"] == "not_found"
    assert counts["dead"] == 0
    with acting_as(db, "authenticated", world["viewer_a"]):
        [v] = dict_rows(db, "select * from console.retry_alert_deliveries(%s)", ([delivery],))
        [seen] = dict_rows(db, "select id, writable from console.find_alert_deliveries('dead')")
    assert v["outcome"] == "read_only"
    assert seen == {"id": delivery, "writable": False}
    with acting_as(db, "authenticated", world["op_a"]):
        [ok] = dict_rows(db, "select * from console.retry_alert_deliveries(%s)", ([delivery],))
        [again] = dict_rows(db, "select * from console.retry_alert_deliveries(%s)", ([delivery],))
        assert len(dict_rows(db, "select * from console.alert_rules()")) >= 5
    assert ok["outcome"] == "retried"
    assert again["outcome"] == "refused"
    assert db.execute(
        "select status, attempts from dragonfly.alert_deliveries where id = %s", (delivery,)
    ).fetchone() == ("pending", 0)


def test_queue_history_and_the_heartbeats(db: Conn, world: dict[str, Any]) -> None:
    db.execute(
        "insert into dragonfly.completed_jobs (kind, idempotency_key, queue, msg_id, attempts,"
        " completed_at) values ('enrich', 'h-1', 'enrich', 1, 1,"
        " date_trunc('minute', clock_timestamp()) - interval '30 seconds')"
    )
    written = db.execute("select dragonfly.record_queue_samples()").fetchone()
    again = db.execute("select dragonfly.record_queue_samples()").fetchone()
    assert written is not None
    assert written[0] >= 4
    assert again == (0,)
    db.execute("select dragonfly.fleet_heartbeat('host-1', 42, 'worker:enrich', now(), true)")
    db.execute(
        "select dragonfly.fleet_heartbeat('host-1', 43, 'worker:enrich', now(), false, 'starting')"
    )
    with acting_as(db, "authenticated", world["op_a"]):
        samples = dict_rows(
            db,
            "select queue, done from console.queue_history(now() - interval '1 hour')",
        )
        fleet = dict_rows(db, "select host, pid, ready, up from console.fleet_processes()")
    assert [s["done"] for s in samples if s["queue"] == "enrich"] == [1]
    assert {(f["pid"], f["ready"], f["up"]) for f in fleet} >= {(42, True, True), (43, False, True)}
    counts = {
        r[0]: (r[1], r[2]) for r in db.execute("select * from dragonfly.fleet_ready_counts()")
    }
    assert counts["worker:enrich"] == (2, 1)
    assert counts["worker:outreach"] == (0, 0)
    assert db.execute("select dragonfly.fleet_process_gone('host-1', 42)").fetchone() == (True,)
    with pytest.raises(psycopg.errors.InvalidParameterValue), db.transaction():
        db.execute("select dragonfly.fleet_heartbeat('host-1', 44, 'Worker Enrich', now(), true)")
