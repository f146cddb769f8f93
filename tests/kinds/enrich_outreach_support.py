"""Shared helpers of the enrich and outreach tests: a small book of test data, loopback
servers (an enrichment vendor on http.server, an SMTP server on aiosmtpd), polling, and
one outreach attempt run through the handler's two phases."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from datetime import time as clock
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg

from workers.outreach.handler import OutreachConfig, OutreachResult, record, send_email
from workers.outreach.mailer import Mailer, SmtpMailer
from workers.outreach.payload import OutreachPayload
from workers.outreach.quiet_hours import QuietHours
from workers.runtime.envelope import TrustLevel

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last={last!r}")


# --- data ---------------------------------------------------------------------------------


def make_plaintiff(
    conn: psycopg.Connection[Any],
    *,
    status: str = "new",
    email: str | None = "creditor@example.test",
    phone: str | None = "+12125550100",
    timezone: str = "America/New_York",
    name: str = "Acme Holdings LLC",
    tenant: uuid.UUID | None = None,
) -> uuid.UUID:
    """A plaintiff in ``tenant`` (default: the default tenant)."""
    row = conn.execute(
        "insert into public.plaintiffs (name, email, phone, timezone, status, tenant_id)"
        " values (%s, %s, %s, %s, %s, coalesce(%s, tenancy.default_tenant_id())) returning id",
        (name, email, phone, timezone, status, tenant),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def make_case(
    conn: psycopg.Connection[Any],
    *,
    plaintiff_id: uuid.UUID | None = None,
    balance: float = 25_000,
    judgment_date: str | None = "2024-06-01",
    status: str = "active",
    tax_id_last4: str | None = "1234",
) -> dict[str, uuid.UUID]:
    """A plaintiff, a debtor entity, a judgment and its court case; returns their ids."""
    plaintiff_id = plaintiff_id or make_plaintiff(conn)
    suffix = uuid.uuid4().hex[:12]
    entity = conn.execute(
        "insert into public.entities (entity_type, display_name, normalized_name, tax_id_last4)"
        " values ('person', %s, %s, %s) returning id",
        (f"Debtor {suffix}", f"debtor {suffix}", tax_id_last4),
    ).fetchone()
    assert entity is not None
    judgment = conn.execute(
        "insert into public.judgments (plaintiff_id, debtor_entity_id, debtor_name,"
        " judgment_amount, balance_due, judgment_date, state, status)"
        " values (%s, %s, %s, %s, %s, %s, 'NY', %s)"
        " returning id",
        (
            plaintiff_id,
            entity[0],
            f"Debtor {suffix}",
            max(balance, 1),
            balance,
            judgment_date,
            status,
        ),
    ).fetchone()
    assert judgment is not None
    case = conn.execute(
        "insert into judgments.cases (judgment_id, case_number, county, state)"
        " values (%s, %s, 'Kings', 'NY') returning id",
        (judgment[0], f"CV-{suffix}"),
    ).fetchone()
    assert case is not None
    return {
        "plaintiff_id": plaintiff_id,
        "entity_id": uuid.UUID(str(entity[0])),
        "judgment_id": uuid.UUID(str(judgment[0])),
        "case_id": uuid.UUID(str(case[0])),
    }


def open_enforcement_case(conn: psycopg.Connection[Any], ids: dict[str, uuid.UUID]) -> uuid.UUID:
    row = conn.execute(
        "select public.open_enforcement_case(%s::jsonb)",
        (
            json.dumps(
                {
                    "judgment_id": str(ids["judgment_id"]),
                    "plaintiff_id": str(ids["plaintiff_id"]),
                    "created_by": "test",
                }
            ),
        ),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


RICH_BUNDLE: dict[str, Any] = {
    "source": "acme-skiptrace",
    "contacts": [
        {
            "contact_type": "phone",
            "value": "(212) 555-0199",
            "confidence": 0.9,
            "is_verified": True,
        },
        {"contact_type": "email", "value": "Debtor@Example.test", "confidence": 0.7},
        {"contact_type": "address", "value": "1 Main St, Brooklyn NY"},
    ],
    "assets": [
        {
            "asset_type": "bank",
            "institution": "Chase",
            "details": {"account_last4": "9876"},
            "estimated_value": 12000,
        },
        {"asset_type": "employer", "institution": "Globex Corp", "confidence": 0.8},
    ],
    "signals": {"identity_confidence": 0.85},
}


def quiet_zone(now: datetime | None = None, *, quiet: bool = True) -> str:
    """A fixed-offset zone (Etc/GMT±N) where it is now deep inside (or outside) quiet hours.

    "Inside" means local 01:00-06:59, "outside" 11:00-16:59, so a test that takes a
    minute cannot cross the default 20:00-09:00 boundary.
    """
    now = now or datetime.now(UTC)
    wanted = range(1, 7) if quiet else range(11, 17)
    for offset in range(-12, 15):
        # Etc/GMT signs are inverted: Etc/GMT-3 is UTC+3.
        name = "Etc/UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
        if now.astimezone(ZoneInfo(name)).hour in wanted:
            return name
    raise AssertionError("no zone found")  # pragma: no cover - 27 offsets cover every hour


# --- loopback vendor ------------------------------------------------------------------------


class FakeVendor:
    """An enrichment vendor on 127.0.0.1: answers from a script, records every request.

    A scripted answer may be a function of the recorded request (to echo what it got).
    """

    def __init__(self, script: list[tuple[int, Any]] | None = None) -> None:
        self.script: list[tuple[int, Any]] = list(script or [])
        self.default: tuple[int, Any] = (200, RICH_BUNDLE)
        self.requests: list[dict[str, Any]] = []
        self.gate: threading.Event | None = None
        """When set to an Event: every request waits for it (at most 60 s) before answering."""
        self.entered = threading.Event()
        """Set when a request arrived (before it waits at the gate)."""
        self._lock = threading.Lock()
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                vendor.entered.set()
                if vendor.gate is not None:
                    vendor.gate.wait(60)
                with vendor._lock:
                    request = {
                        "path": self.path,
                        "body": body,
                        "authorization": self.headers.get("Authorization"),
                        "idempotency_key": self.headers.get("Idempotency-Key"),
                    }
                    vendor.requests.append(request)
                    status, answer = vendor.script.pop(0) if vendor.script else vendor.default
                if callable(answer):
                    answer = answer(request)
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeVendor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


# --- loopback SMTP --------------------------------------------------------------------------


@contextmanager
def smtp_server(on_message: Callable[[Any], None] | None = None) -> Iterator[Any]:
    """An aiosmtpd server on 127.0.0.1 that keeps every message; yields the handler.

    ``on_message(message)`` is called once the server holds a message and before it
    replies to DATA (the sender does not know yet that it was accepted)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Keep(Message):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[Any] = []

        def handle_message(self, message: Any) -> None:
            self.messages.append(message)
            if on_message is not None:
                on_message(message)

    handler = Keep()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        handler.port = port
        yield handler
    finally:
        controller.stop()


# --- one outreach attempt -------------------------------------------------------------------


def outreach_config(*, emails: int = 2, calls: int = 3) -> OutreachConfig:
    """Default quiet hours (20:00-09:00), a From address, a weekly cap of ``emails`` emails
    and ``calls`` call tasks."""
    return OutreachConfig(
        QuietHours(clock(20, 0), clock(9, 0)),
        "outreach@dragonfly.test",
        max_emails_per_week=emails,
        max_calls_per_week=calls,
    )


def smtp_mailer(port: int) -> SmtpMailer:
    """The real SMTP adapter, sending to the loopback server on ``port``."""
    return SmtpMailer("127.0.0.1", port, starttls=False, username=None, password=None, timeout=5)


def run_outreach(
    db: psycopg.Connection[Any],
    payload: OutreachPayload,
    *,
    idempotency_key: str,
    mailer: Mailer | None,
    config: OutreachConfig,
    now: datetime,
    level: TrustLevel = "internal",
) -> OutreachResult:
    """One attempt as the runtime runs it: the outside phase, then the record (a job of
    the fleet's unless ``level`` says otherwise)."""
    emailed = send_email(
        db,
        payload,
        idempotency_key=idempotency_key,
        mailer=mailer,
        config=config,
        now=now,
        level=level,
    )
    return record(
        db,
        payload,
        idempotency_key=idempotency_key,
        emailed=emailed,
        email_enabled=mailer is not None,
        config=config,
        now=now,
        level=level,
    )
