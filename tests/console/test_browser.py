"""The console in a real browser (Debian's chromium, driven by Playwright) against a real
``dragonfly console`` process and a real worker process: an operator signs in with their
Supabase access token, finds the dead letter the worker made, replays it after a dry run,
and sees the job done and the audit row; an operator of another tenant sees none of it; and
without a session every page leads to sign-in and every POST is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.console.support import (
    ADMIN_TOKEN,
    JWT_SECRET,
    ConsoleProcess,
    claims_of,
    console_url,
    token_for,
)
from tests.fleet.helpers import free_ports, wait_for
from tests.runtime.support import WorkerProcess, enqueue
from tests.security.tenants import make_tenant, member

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]

PAGES = ["/queues", "/dead-letters", "/dead-letters/1", "/audit", "/alerts", "/cases", "/fleet"]
POSTS = ["/dead-letters/replay", "/dead-letters/purge", "/alerts/retry", "/sign-out"]


def sign_in(page: Any, base: str, token: str, path: str) -> None:
    page.goto(base + path)
    assert "/sign-in?next=" in page.url
    page.fill("textarea[name=token]", token)
    page.click("form[action='/sign-in'] button[type=submit]")
    page.wait_for_url(base + path)


def test_an_operator_replays_the_dead_letter_a_worker_made_and_another_tenant_sees_none_of_it(
    conn: Conn,
    runtime_db: str,
    start_worker: Callable[..., WorkerProcess],
    console_login: None,
    browser: Any,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    acme, bolt = make_tenant(conn, "acme"), make_tenant(conn, "bolt")
    op_a = token_for(claims_of(conn, member(conn, acme, "operator", "op-a@example.test")))
    op_b = token_for(claims_of(conn, member(conn, bolt, "operator", "op-b@example.test")))

    # A job of tenant acme that fails until "the fix". The envelope's tenant is set on the
    # queued message itself, as queue_job will set it once envelopes carry their tenant.
    conn.execute("update runtime_test.switch set broken = true")
    msg_id = enqueue(conn, "console-flaky", {"fail_while_broken": True})
    conn.execute(
        "update pgmq.q_enrich set message = message || jsonb_build_object('tenant', %s::text)"
        " where msg_id = %s",
        (acme, msg_id),
    )
    worker = start_worker()
    worker.wait_ready()
    dead_id = wait_for(
        lambda: (conn.execute("select max(id) from dragonfly.dead_letters").fetchone() or [None])[
            0
        ],
        timeout=60,
        what="the worker's dead letter",
    )
    conn.execute("update runtime_test.switch set broken = false")  # the fix

    console = ConsoleProcess(
        console_url(runtime_db),
        tmp_path,
        free_ports(1),
        {"DRAGONFLY_CONSOLE_JWT_SECRET": JWT_SECRET, "DRAGONFLY_CONSOLE_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    try:
        console.wait_started()
        base = console.url

        # Operator of acme: sign in, find it, dry run, replay, job done, audit row.
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, base, op_a, "/dead-letters")
        expect(page.locator("#who")).to_have_text("op-a@example.test")
        row = page.locator(f"#dead-letters tr[data-id='{dead_id}']")
        expect(row).to_contain_text("TransientError: the switch is broken")
        row.locator(f"a[href='/dead-letters/{dead_id}']").click()
        expect(page.locator("#payload")).to_contain_text("fail_while_broken")
        expect(page.locator("#last-error")).to_contain_text("the switch is broken")
        page.click("button:has-text('Replay (dry run)')")
        expect(page.locator("#summary")).to_contain_text("1 of 1 dead letter would be replayed")
        assert conn.execute(
            "select status from dragonfly.dead_letters where id = %s", (dead_id,)
        ).fetchone() == ("dead",)
        page.click("#confirm")
        expect(page.locator("#summary")).to_contain_text("1 of 1 replayed")

        def job_done() -> bool:
            page.goto(f"{base}/dead-letters/{dead_id}")
            return page.locator("#replay-done").count() == 1

        wait_for(job_done, timeout=60, interval=0.5, what="the replayed job done")
        expect(page.locator("#status")).to_have_text("replayed")
        done = conn.execute(
            "select count(*) from dragonfly.completed_jobs where idempotency_key = 'console-flaky'"
        ).fetchone()
        assert done == (1,)
        page.goto(f"{base}/audit")
        replayed = page.locator(
            f"#audit tr[data-target='{dead_id}'][data-action='replay'][data-dry-run='no']"
        )
        expect(replayed).to_contain_text("op-a@example.test")
        expect(replayed).to_contain_text("replayed")
        expect(
            page.locator(f"#audit tr[data-target='{dead_id}'][data-dry-run='yes']")
        ).to_contain_text("would_replay")
        context.close()

        # Operator of bolt: none of it.
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, base, op_b, "/dead-letters?status=all")
        expect(page.locator("#total")).to_have_text("0 matches")
        response = page.goto(f"{base}/dead-letters/{dead_id}")
        assert response is not None
        assert response.status == 404
        page.goto(f"{base}/audit")
        expect(page.locator(f"#audit tr[data-target='{dead_id}']")).to_have_count(0)
        page.goto(f"{base}/queues")
        expect(page.locator("#queues tr[data-queue='enrich'] td.dead-letters")).to_have_text("0")
        context.close()

        # No session: every page leads to sign-in, every POST is refused.
        context = browser.new_context()
        page = context.new_page()
        for path in PAGES:
            page.goto(base + path)
            assert page.url.startswith(f"{base}/sign-in?next="), (path, page.url)
            expect(page.locator("textarea[name=token]")).to_be_visible()
        for path in POSTS:
            answer = context.request.post(
                base + path, form={"ids": str(dead_id), "step": "confirm"}
            )
            assert answer.status == 403, path
        context.close()
    finally:
        console.close()
    assert "Traceback" not in console.output(), console.output()
