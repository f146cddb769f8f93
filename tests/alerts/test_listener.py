"""The listener in-process against a real database and loopback Slack/SMTP servers.

``loop()`` runs in a thread where a test needs notifications; ``run_once()`` is called
directly where a single pass is the point.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from uuid import UUID

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.alerts.conftest import Listeners, RecordingHandler, free_port
from tests.alerts.fakes import (
    FakeSlack,
    deliveries,
    event_ids_of,
    log_event,
    make_case,
    make_tenant,
    set_rules,
    wait_until,
)
from workers.alerts.sinks import EmailSink

Conn = psycopg.Connection[Any]
DEFAULT_TENANT = UUID("00000000-0000-4000-8000-000000000001")


def test_an_event_posts_one_readable_slack_message(
    conn: Conn, case_id: UUID, slack: FakeSlack, listeners: Listeners, fresh_db_url: str
) -> None:
    listeners.start(listeners.make(slack=slack))

    event_id = log_event(conn, case_id, "bank_levy_served", {"amount": 4200.5, "bank": "Chase"})

    [post] = wait_until(slack.ok_posts, what="the Slack post")
    assert post.text == (
        ":rotating_light: Bank levy served · case CV-TEST-1 · tenant default"
        " · kind bank_levy_served · amount $4,200.50 · stage bank_levy · tier tier0"
    )
    fields = " ".join(f["text"] for f in post.body["blocks"][1]["fields"])
    assert f"*Tenant*\ndefault ({DEFAULT_TENANT})" in fields
    assert "*Balance*\n$12,500.00" in fields
    assert "*Debtor*\nJohn Debtor" in fields
    assert event_ids_of([post]) == [str(event_id)]
    [row] = wait_until(
        lambda: [d for d in deliveries(fresh_db_url) if d["status"] == "delivered"],
        what="the delivery record",
    )
    assert (row["event_id"], row["sink"], row["attempts"]) == (event_id, "slack", 1)
    assert row["delivered_by"] == "test-listener"
    # The stored delivery names the tenant too.
    assert row["tenant_id"] == DEFAULT_TENANT
    assert (row["context"]["tenant_id"], row["context"]["tenant_slug"]) == (
        str(DEFAULT_TENANT),
        "default",
    )
    assert len(slack.snapshot()) == 1


def test_slack_500_twice_then_200_is_delivered_once(
    conn: Conn, case_id: UUID, slack: FakeSlack, listeners: Listeners, fresh_db_url: str
) -> None:
    slack.script = [500, 500]
    listeners.start(listeners.make(slack=slack))

    event_id = log_event(conn, case_id)

    wait_until(
        lambda: [d for d in deliveries(fresh_db_url) if d["status"] == "delivered"],
        what="delivery after two failures",
    )
    assert [p.status for p in slack.snapshot()] == [500, 500, 200]
    assert event_ids_of(slack.ok_posts()) == [str(event_id)]
    [row] = deliveries(fresh_db_url)
    assert row["attempts"] == 3
    assert "HTTP 500" in row["last_error"]


def test_rules_filter_by_kind_and_tier(conn: Conn, slack: FakeSlack, listeners: Listeners) -> None:
    set_rules(
        conn,
        {
            "name": "levies_on_top_cases",
            "event_kinds": ["bank_levy_served"],
            "tiers": ["tier0", "tier1"],
            "sinks": ["slack"],
        },
    )
    tier0 = make_case(conn, tier="tier0", case_number="CV-TIER0")
    tier2 = make_case(conn, tier="tier2", case_number="CV-TIER2")
    matching = log_event(conn, tier0, "bank_levy_served")
    log_event(conn, tier2, "bank_levy_served")  # wrong tier
    log_event(conn, tier0, "payment_received", {"amount": 100})  # wrong kind

    result = listeners.make(slack=slack).run_once()

    assert (result.routed, result.created, result.delivered) == (3, 1, 1)
    assert event_ids_of(slack.ok_posts()) == [str(matching)]
    assert "case CV-TIER0" in slack.ok_posts()[0].text


def test_amount_threshold_uses_the_event_amount_else_the_balance(
    conn: Conn, slack: FakeSlack, listeners: Listeners
) -> None:
    set_rules(conn, {"name": "big_money", "min_amount": 10000, "sinks": ["slack"]})
    rich = make_case(conn, balance=50000)
    poor = make_case(conn, balance=500)
    big_payment = log_event(conn, poor, "payment_received", {"amount": "15000"})
    log_event(conn, rich, "payment_received", {"amount": 20})  # its own amount is small
    big_balance = log_event(conn, rich, "marshal_assigned")  # no amount: the balance counts

    listeners.make(slack=slack).run_once()

    assert sorted(event_ids_of(slack.ok_posts())) == sorted([str(big_payment), str(big_balance)])


def test_an_event_in_a_rolled_back_transaction_alerts_nobody(
    conn: Conn, case_id: UUID, slack: FakeSlack, listeners: Listeners, fresh_db_url: str
) -> None:
    listener = listeners.make(slack=slack)
    listeners.start(listener)

    with psycopg.connect(fresh_db_url) as other:
        log_event(other, case_id, "bank_levy_served")
        other.rollback()
    committed = log_event(conn, case_id, "garnishment_served")

    wait_until(slack.ok_posts, what="the committed event's post")
    listener.stop()  # and a full catch-up pass afterwards finds nothing more
    listeners.make(slack=slack, name="sweeper").run_once()
    assert event_ids_of(slack.snapshot()) == [str(committed)]
    assert [d["event_id"] for d in deliveries(fresh_db_url)] == [committed]


def test_email_over_smtp(
    conn: Conn,
    case_id: UUID,
    smtp_server: tuple[Any, RecordingHandler],
    listeners: Listeners,
) -> None:
    controller, handler = smtp_server
    set_rules(
        conn, {"name": "mail_on_call", "sinks": ["email"], "email_to": ["oncall@example.com"]}
    )
    sink = EmailSink(
        "127.0.0.1", controller.port, sender="alerts@dragonfly.test", recipients=["x@example.com"]
    )
    listeners.start(listeners.make(email=sink))

    event_id = log_event(conn, case_id, "marshal_result", {"amount": 999})

    [envelope] = wait_until(lambda: list(handler.messages), what="the email")
    assert envelope.rcpt_tos == ["oncall@example.com"]
    assert envelope.mail_from == "alerts@dragonfly.test"
    assert isinstance(envelope.content, bytes)
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == (
        "[Dragonfly] Marshal result · case CV-TEST-1 · tenant default · kind marshal_result"
        " · amount $999.00 · stage bank_levy · tier tier0"
    )
    assert message["Message-ID"].strip() == f"<alert.{event_id}.mail_on_call@dragonfly.test>"
    body = message.get_content()
    assert "Amount    $999.00" in body
    assert f"Tenant    default ({DEFAULT_TENANT})" in body
    assert f"event {event_id}" in body


def test_queue_sink_enqueues_one_job_in_the_delivery_transaction(
    conn: Conn, case_id: UUID, listeners: Listeners, fresh_db_url: str
) -> None:
    set_rules(
        conn,
        {
            "name": "replan",
            "event_kinds": ["bank_levy_served"],
            "sinks": ["queue"],
            "job_kind": "enforce",
        },
    )
    event_id = log_event(conn, case_id, "bank_levy_served")
    listener = listeners.make()

    assert listener.run_once().delivered == 1
    assert listener.run_once().delivered == 0

    jobs = conn.execute("select message from pgmq.q_enforce").fetchall()
    assert len(jobs) == 1
    envelope = jobs[0][0]
    assert envelope["kind"] == "enforce"
    assert envelope["idempotency_key"] == f"alert:{event_id}:replan"
    assert envelope["payload"]["case_id"] == str(case_id)
    assert envelope["tenant"] == str(DEFAULT_TENANT)  # named by the sink, checked at the door
    [row] = deliveries(fresh_db_url)
    assert (row["status"], row["sink"]) == ("delivered", "queue")


def test_a_bad_notification_triggers_a_catch_up(
    conn: Conn, case_id: UUID, slack: FakeSlack, listeners: Listeners
) -> None:
    listeners.start(listeners.make(slack=slack, sweep_interval=3600))
    # An event whose notification names nothing usable: the catch-up still finds it.
    with conn.transaction():
        event_id = log_event(conn, case_id, "bank_levy_served")
        conn.execute("select pg_notify('enforcement_events_channel', 'not json')")

    wait_until(slack.ok_posts, what="the post")
    assert event_ids_of(slack.ok_posts()) == [str(event_id)]


def test_unconfigured_sinks_leave_deliveries_pending(
    conn: Conn, case_id: UUID, listeners: Listeners, fresh_db_url: str
) -> None:
    log_event(conn, case_id)

    result = listeners.make().run_once()  # no Slack sink in this process

    assert (result.created, result.delivered) == (1, 0)
    [row] = deliveries(fresh_db_url)
    assert (row["status"], row["attempts"]) == ("pending", 0)


@pytest.mark.parametrize("threads", [2])
def test_two_listeners_in_threads_deliver_each_alert_once(
    conn: Conn,
    case_id: UUID,
    slack: FakeSlack,
    listeners: Listeners,
    fresh_db_url: str,
    threads: int,
) -> None:
    for n in range(threads):
        listeners.start(listeners.make(slack=slack, name=f"listener-{n}"))

    logged = [log_event(conn, case_id) for _ in range(50)]

    wait_until(
        lambda: sum(d["status"] == "delivered" for d in deliveries(fresh_db_url)) == 50,
        what="50 deliveries",
    )
    posted = event_ids_of(slack.snapshot())
    assert sorted(posted) == sorted(str(e) for e in logged)


def test_reconnects_after_losing_the_database_and_catches_up(
    conn: Conn, case_id: UUID, slack: FakeSlack, listeners: Listeners, fresh_db_url: str
) -> None:
    listener = listeners.make(slack=slack, sweep_interval=3600)
    listeners.start(listener)

    conn.execute(
        """
        select pg_terminate_backend(pid) from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid()
        """
    )
    logged = [log_event(conn, case_id) for _ in range(5)]  # maybe while it is away

    wait_until(
        lambda: sum(d["status"] == "delivered" for d in deliveries(fresh_db_url)) == 5,
        what="5 deliveries after the reconnect",
    )
    assert sorted(event_ids_of(slack.snapshot())) == sorted(str(e) for e in logged)
    reconnects = listener.metrics.registry.get_sample_value(
        "dragonfly_alert_listener_reconnects_total"
    )
    assert reconnects is not None
    assert reconnects >= 1


def test_catch_up_finds_an_event_committed_after_the_cursor_moved(
    conn: Conn, case_id: UUID, slack: FakeSlack, listeners: Listeners, fresh_db_url: str
) -> None:
    listener = listeners.make(slack=slack)
    with psycopg.connect(fresh_db_url) as slow:
        late = log_event(slow, case_id)  # created now, committed after the next pass
        assert listener.run_once().routed == 0
        slow.commit()

    result = listener.run_once()  # no loop: the notification went unheard

    assert (result.routed, result.delivered) == (1, 1)
    assert event_ids_of(slack.ok_posts()) == [str(late)]


def test_a_running_listener_follows_rule_changes(
    conn: Conn, case_id: UUID, slack: FakeSlack, listeners: Listeners, fresh_db_url: str
) -> None:
    listeners.start(listeners.make(slack=slack, sweep_interval=3600))
    first = log_event(conn, case_id, "bank_levy_served")
    wait_until(slack.ok_posts, what="the first post")

    set_rules(
        conn, {"name": "garnishments", "event_kinds": ["garnishment_served"], "sinks": ["slack"]}
    )
    skipped = log_event(conn, case_id, "bank_levy_served")
    wanted = log_event(conn, case_id, "garnishment_served")

    wait_until(lambda: len(slack.ok_posts()) == 2, what="the second post")
    assert event_ids_of(slack.ok_posts()) == [str(first), str(wanted)]
    marker = conn.execute(
        "select deliveries from dragonfly.alert_routed_events where event_id = %s", (skipped,)
    ).fetchone()
    assert marker == (0,)


# aiosmtpd itself sets its deprecated Session.login_data after a successful AUTH.
@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning")
def test_email_logs_in_when_credentials_are_set(
    conn: Conn, case_id: UUID, listeners: Listeners, fresh_db_url: str
) -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret", handled=False)

    handler = RecordingHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        set_rules(conn, {"name": "mail", "sinks": ["email"]})
        log_event(conn, case_id)

        def sink(password: str) -> EmailSink:
            return EmailSink(
                "127.0.0.1",
                controller.port,
                sender="alerts@dragonfly.test",
                recipients=["oncall@example.com"],
                username="alerts",
                password=password,
            )

        wrong = listeners.make(email=sink("wrong"), name="wrong").run_once()
        assert wrong.dead == 1  # bad credentials do not get better by retrying
        assert "authentication failed" in deliveries(fresh_db_url)[0]["last_error"]

        conn.execute("select dragonfly.retry_alert_deliveries(p_all_dead => true)")
        right = listeners.make(email=sink("s3cret"), name="right").run_once()
        assert right.delivered == 1
        assert len(handler.messages) == 1
        # smtplib tries each offered mechanism (PLAIN, LOGIN) before giving up.
        assert logins[-1] == (b"alerts", b"s3cret")
        assert set(logins[:-1]) == {(b"alerts", b"wrong")}
    finally:
        controller.stop()


def test_alerts_name_their_tenant_and_a_rule_of_b_ignores_as_events(
    conn: Conn, slack: FakeSlack, listeners: Listeners, fresh_db_url: str
) -> None:
    a, b = make_tenant(conn, "acme"), make_tenant(conn, "beta")
    slugs = dict(conn.execute("select id, slug from public.tenants").fetchall())
    slug_a, slug_b = slugs[a], slugs[b]
    case_a, case_b = make_case(conn, tenant=a), make_case(conn, tenant=b)
    set_rules(
        conn,
        {"name": "b_only", "sinks": ["slack"], "tenant_id": b},
        {"name": "b_replan", "sinks": ["queue"], "job_kind": "enforce", "tenant_id": b},
        {"name": "everyone", "event_kinds": ["bank_levy_served"], "sinks": ["slack"]},
    )
    listeners.start(listeners.make(slack=slack))

    event_a = log_event(conn, case_a, "bank_levy_served")
    event_b = log_event(conn, case_b, "bank_levy_served")

    posts = wait_until(lambda: len(slack.ok_posts()) >= 3 and slack.ok_posts(), what="3 posts")
    listener = listeners.make()
    listener.run_once()  # the queue sink, in this process
    rows = deliveries(fresh_db_url)
    routed = sorted((str(r["event_id"]), r["rule"], r["sink"]) for r in rows)
    # A's event: the rule of every tenant only. B's: all three rules.
    assert routed == sorted(
        [
            (str(event_a), "everyone", "slack"),
            (str(event_b), "everyone", "slack"),
            (str(event_b), "b_only", "slack"),
            (str(event_b), "b_replan", "queue"),
        ]
    )
    for row in rows:
        tenant, slug = (a, slug_a) if row["event_id"] == event_a else (b, slug_b)
        assert row["tenant_id"] == tenant
        assert row["context"]["tenant_slug"] == slug
    for post in posts:
        [event_id] = event_ids_of([post])
        tenant, slug = (a, slug_a) if event_id == str(event_a) else (b, slug_b)
        assert f" · tenant {slug} · " in post.text
        fields = " ".join(f["text"] for f in post.body["blocks"][1]["fields"])
        assert f"*Tenant*\n{slug} ({tenant})" in fields
    # B's replan job names B's tenant; A's event queued nothing.
    jobs = [r[0] for r in conn.execute("select message from pgmq.q_enforce").fetchall()]
    assert [(j["payload"]["case_id"], j["tenant"]) for j in jobs] == [(str(case_b), str(b))]
