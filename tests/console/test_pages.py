"""The console's pages over HTTP (the application served by uvicorn on loopback in this
process, the real database logged in as the console's login role): sessions, CSRF, the
two-step replay and purge, what each role sees, the case page, scrubbed payloads."""

from __future__ import annotations

import html
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from psycopg.types.json import Jsonb

from tests.console.support import (
    ADMIN_TOKEN,
    JWT_SECRET,
    add_dead_letter,
    claims_of,
    console_url,
    token_for,
)
from tests.security.tenants import make_tenant, member
from tests.sql.enforcement_seed import rpc, seed
from workers.console.app import ConsoleConfig, build_app
from workers.console.auth import TokenVerifier
from workers.console.db import ConsoleDatabase

Conn = psycopg.Connection[Any]

PAGES = [
    "/queues",
    "/queues?window=day",
    "/queues?partial=table",
    "/dead-letters",
    "/dead-letters/1",
    "/audit",
    "/alerts",
    "/cases",
    "/cases/00000000-0000-4000-8000-000000000009",
    "/fleet",
    "/",
]
POSTS = ["/dead-letters/replay", "/dead-letters/purge", "/alerts/retry", "/sign-out"]


@pytest.fixture
def setup(fresh_db_url: str, console_login: None) -> Iterator[dict[str, Any]]:
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        a = make_tenant(conn, "acme")
        b = make_tenant(conn, "bolt")
        users = {
            "op_a": claims_of(conn, member(conn, a, "operator", "op-a@example.test")),
            "viewer_a": claims_of(conn, member(conn, a, "viewer", "viewer-a@example.test")),
            "op_b": claims_of(conn, member(conn, b, "operator", "op-b@example.test")),
        }
    database = ConsoleDatabase(console_url(fresh_db_url), max_size=2)
    database.open()
    app = build_app(
        ConsoleConfig(
            database=database,
            verifier=TokenVerifier(jwt_secret=JWT_SECRET, admin_token=ADMIN_TOKEN),
            session_secret="test-session-secret",
        )
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        clients: list[httpx.Client] = []
        yield {"base": base, "url": fresh_db_url, "a": a, "b": b, "clients": clients, **users}
    finally:
        for c in clients:
            c.close()
        server.should_exit = True
        thread.join(10)
        sock.close()
        database.close()


def client(setup: dict[str, Any]) -> httpx.Client:
    c = httpx.Client(base_url=setup["base"], follow_redirects=False, timeout=30)
    setup["clients"].append(c)
    return c


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def signed_in(setup: dict[str, Any], token: str) -> tuple[httpx.Client, str]:
    c = client(setup)
    csrf = csrf_of(c.get("/sign-in").text)
    answer = c.post("/sign-in", data={"csrf": csrf, "token": token, "next": "/dead-letters"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/dead-letters"
    page = c.get("/dead-letters")
    assert page.status_code == 200
    return c, csrf_of(page.text)


def test_without_a_session_every_page_redirects_to_sign_in_and_every_post_is_refused(
    setup: dict[str, Any],
) -> None:
    c = client(setup)
    for path in PAGES:
        answer = c.get(path)
        if path == "/":
            assert answer.headers["location"] == "/queues"
            continue
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/sign-in?next=%2F"), path
    assert (
        c.get("/queues", headers={"HX-Request": "true"})
        .headers["HX-Redirect"]
        .startswith("/sign-in")
    )
    csrf = csrf_of(c.get("/sign-in").text)  # a session with a CSRF token but no sign-in
    for path in POSTS:
        answer = c.post(path, data={"csrf": csrf, "ids": "1", "step": "confirm"})
        assert answer.status_code == 403, path
        assert answer.text == "refused: sign in first"


def test_signed_in_posts_need_the_sessions_csrf_token(setup: dict[str, Any]) -> None:
    dead = _dead_letter(setup, tenant=setup["a"])
    c, csrf = signed_in(setup, ADMIN_TOKEN)
    for data in ({}, {"csrf": "forged"}, {"csrf": csrf + "x"}):
        answer = c.post(
            "/dead-letters/replay", data={**data, "ids": str(dead), "scope": "selected"}
        )
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    other, _ = signed_in(setup, ADMIN_TOKEN)
    answer = other.post("/dead-letters/replay", data={"csrf": csrf, "ids": str(dead)})
    assert answer.status_code == 403  # another session's token is no use
    assert _status(setup, dead) == "dead"


def test_sign_in_refuses_bad_tokens_and_keeps_next_on_this_site(setup: dict[str, Any]) -> None:
    c = client(setup)
    csrf = csrf_of(c.get("/sign-in").text)
    bad = c.post(
        "/sign-in", data={"csrf": csrf, "token": token_for(setup["op_a"], secret="y" * 40)}
    )
    assert bad.status_code == 401
    assert "Signature verification failed" in bad.text
    assert c.post("/sign-in", data={"token": ADMIN_TOKEN}).status_code == 403  # no CSRF token
    away = c.post("/sign-in", data={"csrf": csrf, "token": ADMIN_TOKEN, "next": "//evil.test/"})
    assert away.headers["location"] == "/queues"
    page = c.get("/queues")
    assert "admin (static token)" in page.text
    assert c.post("/sign-out", data={"csrf": csrf_of(page.text)}).status_code == 303
    assert c.get("/queues").status_code == 303


def test_an_expired_token_ends_the_session(setup: dict[str, Any]) -> None:
    import time

    c = client(setup)
    csrf = csrf_of(c.get("/sign-in").text)
    soon = token_for(setup["op_a"], exp=int(time.time()) - 31)
    assert c.post("/sign-in", data={"csrf": csrf, "token": soon}).status_code == 401


def test_replay_goes_through_a_dry_run_and_purge_through_a_confirmation(
    setup: dict[str, Any],
) -> None:
    one = _dead_letter(setup, tenant=setup["a"])
    two = _dead_letter(setup, tenant=setup["a"])
    c, csrf = signed_in(setup, token_for(setup["op_a"]))
    # Straight to the real thing: refused.
    skip = c.post("/dead-letters/replay", data={"csrf": csrf, "ids": str(one), "step": "confirm"})
    assert skip.status_code == 400
    assert "run the dry run first" in skip.text
    dry = c.post(
        "/dead-letters/replay",
        data={"csrf": csrf, "ids": [str(one)], "scope": "selected", "step": "dry-run"},
    )
    assert dry.status_code == 200
    assert "1 of 1 dead letter would be replayed" in dry.text
    reviewed = re.search(r'name="reviewed" value="([0-9a-f]+)"', dry.text)
    assert reviewed
    assert _status(setup, one) == "dead"
    # The proof covers exactly the ids the dry run listed.
    widened = c.post(
        "/dead-letters/replay",
        data={
            "csrf": csrf,
            "ids": [str(one), str(two)],
            "step": "confirm",
            "reviewed": reviewed[1],
        },
    )
    assert widened.status_code == 400
    done = c.post(
        "/dead-letters/replay",
        data={"csrf": csrf, "ids": [str(one)], "step": "confirm", "reviewed": reviewed[1]},
    )
    assert done.status_code == 200
    assert "1 of 1 replayed" in done.text
    assert _status(setup, one) == "replayed"

    review = c.post(
        "/dead-letters/purge",
        data={"csrf": csrf, "scope": "filter", "status": "dead", "step": "dry-run"},
    )
    assert "1 of 1 dead letter would be purged" in review.text
    token = re.search(r'name="reviewed" value="([0-9a-f]+)"', review.text)
    assert token
    unconfirmed = c.post(
        "/dead-letters/purge",
        data={"csrf": csrf, "ids": str(two), "step": "confirm", "reviewed": token[1]},
    )
    assert unconfirmed.status_code == 400
    assert "tick the box" in unconfirmed.text
    assert _status(setup, two) == "dead"
    purged = c.post(
        "/dead-letters/purge",
        data={
            "csrf": csrf,
            "ids": str(two),
            "step": "confirm",
            "reviewed": token[1],
            "confirm": "yes",
        },
    )
    assert "1 of 1 purged" in purged.text
    assert _status(setup, two) == "purged"
    audit = c.get("/audit").text
    # The replay's dry run and the replay, the purge's dry run and the purge, all by op-a.
    assert len(re.findall(r"<tr data-target=", audit)) == 4
    assert len(re.findall(r"<td>op-a@example.test</td>", audit)) == 4


def test_a_viewer_sees_the_dead_letters_of_their_tenant_but_cannot_change_them(
    setup: dict[str, Any],
) -> None:
    dead = _dead_letter(setup, tenant=setup["a"])
    c, csrf = signed_in(setup, token_for(setup["viewer_a"]))
    page = c.get("/dead-letters").text
    assert f'data-id="{dead}"' in page
    assert "read only" in page
    assert "Replay selected" not in page
    answer = c.post(
        "/dead-letters/replay",
        data={"csrf": csrf, "ids": str(dead), "scope": "selected", "step": "dry-run"},
    )
    assert "0 of 1 dead letter would be replayed" in answer.text
    assert "read_only" in answer.text
    assert _status(setup, dead) == "dead"


def test_an_operator_of_another_tenant_sees_none_of_it(setup: dict[str, Any]) -> None:
    dead = _dead_letter(setup, tenant=setup["a"])
    case = _case(setup, setup["a"])
    c, csrf = signed_in(setup, token_for(setup["op_b"]))
    assert f'data-id="{dead}"' not in c.get("/dead-letters").text
    assert c.get(f"/dead-letters/{dead}").status_code == 404
    missing = c.get("/dead-letters/999999999")
    assert missing.text.replace("999999999", str(dead)) == c.get(f"/dead-letters/{dead}").text
    assert c.get(f"/cases/{case}").status_code == 404
    assert case not in c.get("/cases").text
    answer = c.post(
        "/dead-letters/replay",
        data={"csrf": csrf, "ids": str(dead), "scope": "selected", "step": "dry-run"},
    )
    assert "not_found" in answer.text
    assert _status(setup, dead) == "dead"


def test_the_case_page_shows_jobs_timeline_alerts_and_briefs_in_time_order(
    setup: dict[str, Any],
) -> None:
    case = _case(setup, setup["a"])
    with psycopg.connect(setup["url"], autocommit=True) as conn:
        rpc(
            conn,
            "log_enforcement_event",
            {"case_id": case, "event_kind": "note_added", "actor": "ops", "payload": {"n": 1}},
        )
        conn.execute(
            "insert into dragonfly.completed_jobs (kind, idempotency_key, queue, msg_id, attempts,"
            " case_id, completed_at) values ('enforce', 'plan-x', 'enforce', 5, 1, %s,"
            " now() + interval '1 minute')",
            (case,),
        )
        conn.execute(
            "insert into dragonfly.alert_deliveries (event_id, case_id, event_kind,"
            " event_created_at, rule, sink, context) values (gen_random_uuid(), %s,"
            " 'payment_received', now() + interval '2 minutes', 'payment_received', 'slack', '{}')",
            (case,),
        )
        conn.execute(
            "insert into public.case_copilot_outputs (enforcement_case_id, backend, version,"
            " latency_ms, brief, created_at) values (%s, 'rules', 'v1', 3, %s,"
            " now() + interval '3 minutes')",
            (
                case,
                Jsonb(
                    {"summary": "s", "risk_flags": [], "recommended_actions": [], "inputs_used": []}
                ),
            ),
        )
    c, _ = signed_in(setup, token_for(setup["op_a"]))
    page = c.get(f"/cases/{case}")
    assert page.status_code == 200
    types = re.findall(r'<tr data-type="([a-z]+)">', page.text)
    assert "event" in types
    assert "history" in types
    assert types[-3:] == ["job", "alert", "brief"]
    viewer, _ = signed_in(setup, token_for(setup["viewer_a"]))
    assert "brief" not in re.findall(
        r'<tr data-type="([a-z]+)">', viewer.get(f"/cases/{case}").text
    )


def test_every_page_renders_for_the_admin_with_secrets_scrubbed(setup: dict[str, Any]) -> None:
    secret_key = "sk-live-0123456789abcdef"
    dead = _dead_letter(
        setup,
        tenant=None,
        payload={"api_key": secret_key, "note": "call https://vendor.test/v1?token=abcdef123456"},
        error=f"VendorError: 401 for Authorization: Bearer {secret_key}",
    )
    with psycopg.connect(setup["url"], autocommit=True) as conn:
        conn.execute("select dragonfly.record_queue_samples()")
    c, _ = signed_in(setup, ADMIN_TOKEN)
    for path in PAGES:
        answer = c.get(path)
        assert answer.status_code in (200, 303, 404), (path, answer.text[:300])
        assert "content-security-policy" in answer.headers
    detail = html.unescape(c.get(f"/dead-letters/{dead}").text)
    assert secret_key not in detail
    assert "abcdef123456" not in detail
    assert '"api_key": "***"' in detail
    assert "every tenant" in c.get("/queues").text


def _dead_letter(setup: dict[str, Any], **kwargs: Any) -> int:
    with psycopg.connect(setup["url"], autocommit=True) as conn:
        return add_dead_letter(conn, **kwargs)


def _case(setup: dict[str, Any], tenant: str) -> str:
    with psycopg.connect(setup["url"], autocommit=True) as conn:
        case = seed(conn, tenant=tenant).case_id
    assert case is not None
    return case


def _status(setup: dict[str, Any], dead_letter_id: int) -> str:
    with psycopg.connect(setup["url"], autocommit=True) as conn:
        row = conn.execute(
            "select status from dragonfly.dead_letters where id = %s", (dead_letter_id,)
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_an_operator_retries_a_dead_alert_of_their_tenant_from_the_alerts_page(
    setup: dict[str, Any],
) -> None:
    case = _case(setup, setup["a"])
    with psycopg.connect(setup["url"], autocommit=True) as conn:
        row = conn.execute(
            "insert into dragonfly.alert_deliveries (event_id, case_id, event_kind,"
            " event_created_at, rule, sink, context, status, attempts, dead_at, last_error)"
            " values (gen_random_uuid(), %s, 'payment_received', now(), 'payment_received',"
            " 'slack', '{}', 'dead', 8, now(), 'HTTP 404') returning id",
            (case,),
        ).fetchone()
    assert row is not None
    delivery = int(row[0])
    viewer, viewer_csrf = signed_in(setup, token_for(setup["viewer_a"]))
    page = viewer.get("/alerts?status=dead").text
    assert f'data-id="{delivery}"' in page
    assert 'id="retry"' not in page  # viewers get no retry button
    refused = viewer.post("/alerts/retry", data={"csrf": viewer_csrf, "ids": str(delivery)})
    assert "read_only" in refused.text
    other, other_csrf = signed_in(setup, token_for(setup["op_b"]))
    assert f'data-id="{delivery}"' not in other.get("/alerts").text
    assert (
        "not_found"
        in other.post("/alerts/retry", data={"csrf": other_csrf, "ids": str(delivery)}).text
    )
    c, csrf = signed_in(setup, token_for(setup["op_a"]))
    assert 'id="retry"' in c.get("/alerts?status=dead").text
    answer = c.post("/alerts/retry", data={"csrf": csrf, "ids": str(delivery)})
    assert answer.status_code == 200
    assert "retried" in answer.text
    with psycopg.connect(setup["url"], autocommit=True) as conn:
        status = conn.execute(
            "select status from dragonfly.alert_deliveries where id = %s", (delivery,)
        ).fetchone()
    assert status == ("pending",)
    assert "retry_alert" in c.get("/audit?action=retry_alert").text
