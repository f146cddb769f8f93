"""Loopback servers and database helpers for the alert tests (and nothing else)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], *, timeout: float = 30.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@dataclass
class Post:
    path: str
    body: dict[str, Any]
    status: int
    received: float  # time.perf_counter()

    @property
    def text(self) -> str:
        return str(self.body.get("text", ""))


@dataclass
class FakeSlack:
    """An incoming-webhook server on 127.0.0.1: records every POST, answers scripted statuses
    first (e.g. [500, 500]) and 200 "ok" afterwards. ``token`` is the webhook's secret path
    part; with ``echo``, a refusal quotes the path it was sent to."""

    script: list[int] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    token: str = "fake"
    echo: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; with Nagle on, the body would wait
            # for the client's delayed ACK (40 ms) on a kept-alive connection.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                received = time.perf_counter()
                with fake._lock:
                    status = fake.script.pop(0) if fake.script else 200
                    fake.posts.append(Post(self.path, json.loads(raw), status, received))
                reply = b"ok" if status == 200 else b"internal_error"
                if status != 200 and fake.echo:
                    reply += f" for POST {self.path}".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/services/T0/B0/{self.token}"

    def snapshot(self) -> list[Post]:
        with self._lock:
            return list(self.posts)

    def ok_posts(self) -> list[Post]:
        return [p for p in self.snapshot() if p.status == 200]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def event_ids_of(posts: list[Post]) -> list[str]:
    """The event id each Slack post names (from the reference in its context block)."""
    ids = []
    for post in posts:
        context = post.body["blocks"][-1]["elements"][0]["text"]
        ids.append(context.split("event ")[1].split(" ")[0])
    return ids


# -- database ------------------------------------------------------------------


def make_case(
    conn: psycopg.Connection[Any],
    *,
    tier: str | None = "tier0",
    balance: Decimal | int = 12500,
    stage: str = "bank_levy",
    case_number: str | None = None,
    tenant: UUID | None = None,
) -> UUID:
    """A plaintiff, judgment, court case and open enforcement case (in ``tenant``, by default
    the default tenant); returns the case id."""
    number = case_number or f"CV-{uuid4().hex[:8].upper()}"
    plaintiff = conn.execute(
        "insert into public.plaintiffs (name, tenant_id)"
        " values ('Acme Funding LLC', coalesce(%s, tenancy.default_tenant_id())) returning id",
        (tenant,),
    ).fetchone()
    assert plaintiff is not None
    judgment = conn.execute(
        """
        insert into public.judgments (plaintiff_id, debtor_name, judgment_amount, balance_due)
        values (%s, 'John Debtor', %s, %s) returning id
        """,
        (plaintiff[0], balance, balance),
    ).fetchone()
    assert judgment is not None
    conn.execute(
        "insert into judgments.cases (judgment_id, case_number) values (%s, %s)",
        (judgment[0], number),
    )
    case = conn.execute(
        """
        insert into public.enforcement_cases
            (judgment_id, plaintiff_id, tier, current_stage, current_balance, created_by)
        values (%s, %s, %s, %s, %s, 'tests') returning id
        """,
        (judgment[0], plaintiff[0], tier, stage, balance),
    ).fetchone()
    assert case is not None
    return UUID(str(case[0]))


_LOGGABLE = """
select to_regprocedure('public.log_enforcement_event(jsonb)') is not null
   and to_regclass('public.enforcement_event_kind_lookup') is not null
   and exists (
       select 1 from public.enforcement_event_kind_lookup
       where event_kind::text = %s and loggable
   )
"""
_TRIGGER = """
select exists (
    select 1 from pg_catalog.pg_trigger t
    join pg_catalog.pg_proc p on p.oid = t.tgfoid
    where t.tgrelid = 'public.enforcement_events'::regclass and not t.tgisinternal
      and pg_catalog.pg_get_functiondef(p.oid) ilike '%enforcement_events_channel%'
)
"""


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params or None).fetchone()
    assert row is not None
    return row[0]


def log_event(
    conn: psycopg.Connection[Any],
    case_id: UUID,
    kind: str = "bank_levy_served",
    payload: dict[str, Any] | None = None,
) -> UUID:
    """Log an enforcement event the way the application does, in ``conn``'s transaction.

    Through public.log_enforcement_event() for the kinds it accepts. Kinds owned by
    another RPC (payments, stage changes...) are inserted directly, as service_role may;
    the enforcement_events_notify trigger sends their NOTIFY (sent here by hand only on
    a schema without that trigger).
    """
    body = payload or {}
    if _one(conn, _LOGGABLE, (kind,)):
        row = conn.execute(
            "select public.log_enforcement_event(%s)",
            (
                Jsonb(
                    {
                        "case_id": str(case_id),
                        "event_kind": kind,
                        "payload": body,
                        "document_path": f"cases/{case_id}/{uuid4().hex}.pdf",
                        "actor": "tests",
                    }
                ),
            ),
        ).fetchone()
        assert row is not None
        return UUID(str(row[0]))
    row = conn.execute(
        """
        insert into public.enforcement_events (enforcement_case_id, event_kind, payload, actor)
        values (%s, %s, %s, 'tests') returning id
        """,
        (case_id, kind, Jsonb(body)),
    ).fetchone()
    assert row is not None
    event_id = UUID(str(row[0]))
    if not _one(conn, _TRIGGER):
        conn.execute(
            "select pg_notify('enforcement_events_channel', %s)",
            (json.dumps({"event_id": str(event_id), "case_id": str(case_id), "kind": kind}),),
        )
    return event_id


def set_rules(conn: psycopg.Connection[Any], *rules: dict[str, Any]) -> None:
    """Replace every alert rule by ``rules`` (dicts of alert_rules columns)."""
    conn.execute("delete from dragonfly.alert_rules")
    for rule in rules:
        columns = {
            "event_kinds": None,
            "tiers": None,
            "min_amount": None,
            "job_kind": None,
            "tenant_id": None,
        }
        columns.update(rule)
        conn.execute(
            """
            insert into dragonfly.alert_rules
                (name, event_kinds, tiers, min_amount, sinks, job_kind, email_to, tenant_id)
            values (%(name)s, %(event_kinds)s::public.enforcement_event_kind[], %(tiers)s,
                    %(min_amount)s, %(sinks)s, %(job_kind)s, %(email_to)s, %(tenant_id)s)
            """,
            {"email_to": None, **columns},
        )


def deliveries(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from dragonfly.alert_deliveries order by id")
        return cur.fetchall()


def make_tenant(conn: psycopg.Connection[Any], slug: str) -> UUID:
    """A tenant (``slug`` made unique); its id."""
    row = conn.execute(
        "insert into public.tenants (slug, name) values (%s, %s) returning id",
        (f"{slug}-{uuid4().hex[:6]}", f"Tenant {slug}"),
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))
