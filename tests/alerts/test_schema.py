"""The alert tables' rights, RLS and defaults, and a listener running as dragonfly_worker."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import errors

from tests.alerts.conftest import Listeners
from tests.alerts.fakes import FakeSlack, deliveries, log_event, set_rules
from tests.harness import WORKER_LOGIN, worker_url

Conn = psycopg.Connection[Any]

TABLES = (
    "dragonfly.alert_rules",
    "dragonfly.alert_deliveries",
    "dragonfly.alert_routed_events",
    "dragonfly.alert_listener_state",
)


def one(db: Conn, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = db.execute(query, params or None).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("table", TABLES)
def test_alert_tables_have_rls_and_only_fleet_rights(db: Conn, table: str) -> None:
    assert one(db, "select relrowsecurity from pg_class where oid = %s::regclass", (table,))
    assert one(db, "select obj_description(%s::regclass, 'pg_class') is not null", (table,))
    for role in ("service_role", "dragonfly_worker"):
        assert one(db, "select has_table_privilege(%s, %s, 'select,insert,update')", (role, table))
    for role in ("anon", "authenticated", "enforcement_operator"):
        assert not one(db, "select has_table_privilege(%s, %s, 'select')", (role, table))


def test_functions_are_not_public(db: Conn) -> None:
    for function in (
        "dragonfly.alert_event_context(uuid[])",
        "dragonfly.alert_unrouted_events(interval, integer)",
        "dragonfly.retry_alert_deliveries(bigint[], boolean)",
    ):
        assert one(
            db, "select has_function_privilege('dragonfly_worker', %s, 'execute')", (function,)
        )
        for role in ("anon", "authenticated", "enforcement_operator"):
            assert not one(db, "select has_function_privilege(%s, %s, 'execute')", (role, function))


def test_default_rules_are_seeded(db: Conn) -> None:
    names = [r[0] for r in db.execute("select name from dragonfly.alert_rules order by name")]
    assert names == [
        "case_closed",
        "high_value_case_update",
        "levy_or_garnishment_served",
        "levy_served_replan",
        "payment_received",
    ]


def test_rule_constraints(db: Conn) -> None:
    with pytest.raises(errors.CheckViolation), db.transaction():
        db.execute("insert into dragonfly.alert_rules (name, sinks) values ('q', '{queue}')")
    with pytest.raises(errors.CheckViolation), db.transaction():
        db.execute("insert into dragonfly.alert_rules (name, sinks) values ('p', '{pager}')")
    with pytest.raises(errors.CheckViolation), db.transaction():
        db.execute(
            "insert into dragonfly.alert_rules (name, sinks, tiers)"
            " values ('t', '{slack}', '{tier9}')"
        )
    with pytest.raises(errors.InvalidTextRepresentation), db.transaction():
        db.execute(
            "insert into dragonfly.alert_rules (name, sinks, event_kinds)"
            " values ('k', '{slack}', '{nope}')"
        )


def test_retry_function_validates_its_arguments(db: Conn) -> None:
    with pytest.raises(errors.InvalidParameterValue), db.transaction():
        db.execute("select dragonfly.retry_alert_deliveries()")
    with pytest.raises(errors.InvalidParameterValue), db.transaction():
        db.execute("select dragonfly.retry_alert_deliveries(array[1]::bigint[], true)")


def test_a_listener_runs_as_dragonfly_worker(
    conn: Conn, case_id: UUID, slack: FakeSlack, listeners: Listeners, fresh_db_url: str
) -> None:
    set_rules(
        conn,
        {"name": "slack_all", "sinks": ["slack"]},
        {"name": "replan", "sinks": ["queue"], "job_kind": "enforce"},
    )
    log_event(conn, case_id)
    as_worker = worker_url(fresh_db_url)
    with psycopg.connect(as_worker) as check:
        assert one(check, "select session_user") == WORKER_LOGIN
        assert one(check, "select pg_has_role(session_user, 'dragonfly_worker', 'member')")
        assert not one(check, "select rolsuper from pg_roles where rolname = session_user")

    result = listeners.make(slack=slack, url=as_worker).run_once()

    assert (result.routed, result.delivered, result.failed, result.dead) == (1, 2, 0, 0)
    assert {d["sink"] for d in deliveries(fresh_db_url)} == {"slack", "queue"}
