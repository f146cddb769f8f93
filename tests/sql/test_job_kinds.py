"""The job-kind registry: dragonfly.job_kinds, register_job_kind() and who reads it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb

from workers.job_kinds import KINDS

Conn = psycopg.Connection[Any]


def register(db: Conn, kind: str | None, description: str | None = "A test kind.") -> None:
    db.execute("select dragonfly.register_job_kind(%s, %s)", (kind, description))


def queue_job(db: Conn, payload: dict[str, Any]) -> int:
    row = db.execute("select public.queue_job(%s)", (Jsonb(payload),)).fetchone()
    assert row is not None
    return int(row[0])


def notify_triggers(db: Conn, kind: str) -> list[tuple[int, str]]:
    """The (oid, name) of every trigger on the kind's queue table."""
    rows = db.execute(
        "select t.oid, t.tgname from pg_trigger t join pg_class c on c.oid = t.tgrelid"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'pgmq' and c.relname = %s and not t.tgisinternal",
        (f"q_{kind}",),
    ).fetchall()
    return [(int(oid), str(name)) for oid, name in rows]


def trigger_names(db: Conn, kind: str) -> list[str]:
    return [name for _oid, name in notify_triggers(db, kind)]


def test_the_shipped_kinds_are_registered_with_their_queues(db: Conn) -> None:
    rows = db.execute("select kind, enabled from dragonfly.job_kinds order by kind").fetchall()
    assert rows == [(k, True) for k in sorted(KINDS)]
    queues = db.execute("select queue_name from pgmq.meta order by 1").fetchall()
    assert [q[0] for q in queues] == sorted(KINDS)
    for kind in KINDS:
        assert trigger_names(db, kind) == ["dragonfly_notify_insert"], kind


def test_registering_creates_the_row_the_queue_and_its_notifications(db: Conn) -> None:
    register(db, "tally", "Count things.")
    assert db.execute(
        "select description, enabled from dragonfly.job_kinds where kind = 'tally'"
    ).fetchone() == ("Count things.", True)
    assert db.execute("select count(*) from pgmq.meta where queue_name = 'tally'").fetchone() == (
        1,
    )
    # The project's notification, not PGMQ's throttled one (migration 20261202120000).
    assert trigger_names(db, "tally") == ["dragonfly_notify_insert"]
    assert db.execute(
        "select count(*) from pgmq.notify_insert_throttle where queue_name = 'tally'"
    ).fetchone() == (0,)


def test_before_the_projects_notification_exists_pgmqs_stands_in(db: Conn) -> None:
    # A database migrated up to the registry but not yet to 20261202120000.
    db.execute("drop function dragonfly.enable_queue_notify(text)")
    register(db, "tally")
    assert trigger_names(db, "tally") == ["trigger_notify_queue_insert_listeners"]
    register(db, "tally")  # again: not enabled twice
    assert trigger_names(db, "tally") == ["trigger_notify_queue_insert_listeners"]


def test_registering_again_changes_only_the_description(db: Conn) -> None:
    register(db, "tally", "Count things.")
    db.execute("update dragonfly.job_kinds set enabled = false where kind = 'tally'")
    trigger = notify_triggers(db, "tally")
    shipped = notify_triggers(db, "enrich")
    register(db, "tally", "Count things, twice.")
    register(db, "enrich", "Score a case.")  # as this file's migration does on every database
    assert notify_triggers(db, "enrich") == shipped
    assert db.execute(
        "select description, enabled from dragonfly.job_kinds where kind = 'tally'"
    ).fetchone() == ("Count things, twice.", False)
    # The queue and its trigger are the same objects: nothing was dropped or recreated.
    assert notify_triggers(db, "tally") == trigger
    assert db.execute("select count(*) from pgmq.meta").fetchone() == (len(KINDS) + 1,)


@pytest.mark.parametrize(
    "kind",
    [None, "", "Tally", "1tally", "_tally", "tal-ly", "tal ly", "tally;drop", "t" * 41, "é"],
)
def test_a_kind_that_is_not_a_short_lowercase_identifier_is_refused(
    db: Conn, kind: str | None
) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="register_job_kind: kind must be"):
        register(db, kind)
    db.rollback()
    assert db.execute("select count(*) from dragonfly.job_kinds").fetchone() == (len(KINDS),)
    assert db.execute("select count(*) from pgmq.meta").fetchone() == (len(KINDS),)


def test_the_longest_kind_name_is_accepted(db: Conn) -> None:
    register(db, "t" * 40)
    assert db.execute("select public.pgmq_metrics(%s)", ("t" * 40,)).fetchall()


@pytest.mark.parametrize("description", [None, "", "   "])
def test_a_blank_description_is_refused(db: Conn, description: str | None) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="description of tally"):
        register(db, "tally", description)


def test_queue_job_and_the_wrappers_take_a_newly_registered_kind(db: Conn) -> None:
    register(db, "tally")
    msg_id = queue_job(db, {"kind": "tally", "idempotency_key": "t1", "payload": {"n": 1}})
    read = db.execute("select msg_id from public.pgmq_read('tally', 30, 5)").fetchall()
    assert read == [(msg_id,)]
    assert db.execute("select public.pgmq_delete('tally', %s)", (msg_id,)).fetchone() == (True,)
    every = db.execute("select queue from public.pgmq_metrics()").fetchall()
    assert [r[0] for r in every] == sorted([*KINDS, "tally"])
    stats = db.execute("select queue from dragonfly.queue_stats()").fetchall()
    assert [r[0] for r in stats] == sorted([*KINDS, "tally"])


def test_an_unregistered_kind_is_refused_naming_the_registered_ones(db: Conn) -> None:
    with pytest.raises(errors.InvalidParameterValue) as caught, db.transaction():
        queue_job(db, {"kind": "tally", "idempotency_key": "t1"})
    message = caught.value.diag.message_primary
    assert message == f'queue_job: kind must be one of {", ".join(sorted(KINDS))} (got "tally")'
    with pytest.raises(errors.InvalidParameterValue, match="must be one of"), db.transaction():
        db.execute("select public.pgmq_read('tally', 30, 1)")


def test_queue_job_refuses_a_disabled_kind_with_df101_and_writes_nothing(db: Conn) -> None:
    register(db, "tally")
    db.execute("update dragonfly.job_kinds set enabled = false where kind = 'tally'")
    with pytest.raises(psycopg.Error) as caught, db.transaction():
        queue_job(db, {"kind": "tally", "idempotency_key": "t1"})
    assert caught.value.sqlstate == "DF101"
    assert caught.value.diag.message_primary == "queue_job: job kind tally is disabled"
    written = db.execute(
        "select (select count(*) from dragonfly.enqueued_jobs where kind = 'tally'),"
        " (select count(*) from pgmq.q_tally)"
    ).fetchone()
    assert written == (0, 0)
    # A disabled kind's queue is still consumed: the wrappers keep taking it.
    assert db.execute("select count(*) from public.pgmq_read('tally', 30, 1)").fetchone() == (0,)
    db.execute("update dragonfly.job_kinds set enabled = true where kind = 'tally'")
    assert queue_job(db, {"kind": "tally", "idempotency_key": "t1"}) > 0


def test_an_alert_rule_names_a_registered_kind(db: Conn) -> None:
    insert = (
        "insert into dragonfly.alert_rules (name, sinks, job_kind) values (%s, array['queue'], %s)"
    )
    with db.transaction(), pytest.raises(errors.ForeignKeyViolation):
        db.execute(insert, ("to-tally", "tally"))
    register(db, "tally")
    db.execute(insert, ("to-tally", "tally"))


def test_queue_stats_tells_deferred_from_in_flight(db: Conn) -> None:
    for n in range(3):
        db.execute("select pgmq.send('enforce', %s)", (Jsonb({"n": n}),))
    db.execute("select pgmq.send('enforce', '{}'::jsonb, 600)")
    db.execute("select pgmq.send('enforce', '{}'::jsonb, 1200)")
    db.execute("select * from pgmq.read('enforce', 300, 2)")  # two of the three ready ones
    row = db.execute(
        "select depth, visible, in_flight, deferred, next_due_at - clock_timestamp()"
        " from dragonfly.queue_stats() where queue = 'enforce'"
    ).fetchone()
    assert row is not None
    depth, visible, in_flight, deferred, due_in = row
    assert (depth, visible, in_flight, deferred) == (5, 1, 2, 2)
    assert 590 < due_in.total_seconds() <= 600
    empty = db.execute(
        "select depth, visible, in_flight, deferred, next_due_at"
        " from dragonfly.queue_stats() where queue = 'enrich'"
    ).fetchone()
    assert empty == (0, 0, 0, 0, None)
