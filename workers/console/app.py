"""The console's web application: Starlette, Jinja2 templates, htmx for the live parts.

Every page needs a session (a signed cookie holding the operator's access token, re-verified
on each request, or the mark of the static admin token); without one a page redirects to
``/sign-in`` and a POST is refused with 403. Every POST also carries the session's CSRF
token. Each request's reads and actions run as its operator (:mod:`workers.console.db`).

Replays and purges go in two steps: a dry run (recorded in the audit) shows what would
happen and hands back a form whose ``reviewed`` field is an HMAC, under the session's CSRF
token, of exactly the ids it listed; only that form carries them out. A purge also needs its
confirmation box ticked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from argparse import ArgumentTypeError
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, QueryParams
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.cli.ops import when
from workers.console import present
from workers.console.auth import AuthError, Identity, TokenVerifier
from workers.console.charts import WINDOWS, history_charts
from workers.console.db import ConsoleDatabase, one, rows

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "dragonfly_console"
PAGE_SIZE = 100
MAX_SELECTION = 10000
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

Handler = Callable[[Request, Identity], Response]


@dataclass
class ConsoleConfig:
    """What the application is built from."""

    database: ConsoleDatabase
    verifier: TokenVerifier
    session_secret: str
    session_hours: float = 12.0
    https_only: bool = False


class _SecurityHeaders:
    """Headers every answer carries: no framing, scripts only from the console itself."""

    HEADERS = (
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (
            b"content-security-policy",
            b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
            b" img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class Console:
    """The routes and the state they share."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.db = config.database
        self.verifier = config.verifier
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.filters["ts"] = present.ts
        env.filters["age"] = present.age
        env.filters["since"] = present.since
        env.filters["one_line"] = present.one_line
        env.filters["scrubbed"] = present.scrubbed
        env.filters["pretty_json"] = present.pretty_json
        env.globals["windows"] = list(WINDOWS)
        self.app = Starlette(
            routes=[
                Route("/", self.home),
                Route("/sign-in", self.sign_in_form, methods=["GET"]),
                Route("/sign-in", self.sign_in, methods=["POST"]),
                Route("/sign-out", self.action(self.sign_out), methods=["POST"]),
                Route("/queues", self.page(self.queues)),
                Route("/dead-letters", self.page(self.dead_letters)),
                Route("/dead-letters/replay", self.action(self.replay), methods=["POST"]),
                Route("/dead-letters/purge", self.action(self.purge), methods=["POST"]),
                Route("/dead-letters/{id:int}", self.page(self.dead_letter)),
                Route("/audit", self.page(self.audit)),
                Route("/alerts", self.page(self.alerts)),
                Route("/alerts/retry", self.action(self.retry_alerts), methods=["POST"]),
                Route("/cases", self.page(self.case_search)),
                Route("/cases/{case_id}", self.page(self.case)),
                Route("/fleet", self.page(self.fleet)),
                Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
            ],
            middleware=[
                Middleware(_SecurityHeaders),
                Middleware(
                    SessionMiddleware,
                    secret_key=config.session_secret,
                    session_cookie=SESSION_COOKIE,
                    max_age=int(config.session_hours * 3600),
                    same_site="strict",
                    https_only=config.https_only,
                ),
            ],
        )

    # -- sessions ----------------------------------------------------------------------

    def identity(self, request: Request) -> Identity | None:
        """The session's operator, verified afresh (an expired token ends the session)."""
        session = request.session
        admin = session.get("admin")
        if isinstance(admin, str):
            expected = self.verifier.admin_fingerprint
            if expected is not None and hmac.compare_digest(admin, expected):
                return self.verifier.admin()
            session.clear()
            return None
        token = session.get("token")
        if isinstance(token, str):
            try:
                return self.verifier.verify(token)
            except AuthError:
                session.clear()
        return None

    @staticmethod
    def csrf(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            request.session["csrf"] = token
        return token

    @staticmethod
    def csrf_ok(request: Request, form: FormData) -> bool:
        sent = form.get("csrf")
        expected = request.session.get("csrf")
        return (
            isinstance(sent, str)
            and isinstance(expected, str)
            and hmac.compare_digest(sent.encode(), expected.encode())
        )

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A GET page: redirected to sign-in without a session."""

        async def endpoint(request: Request) -> Response:
            ident = self.identity(request)
            if ident is None:
                wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                target = "/sign-in?" + urlencode({"next": wanted})
                if request.headers.get("hx-request"):
                    return Response(status_code=401, headers={"HX-Redirect": target})
                return RedirectResponse(target, status_code=303)
            return await run_in_threadpool(handler, request, ident)

        return endpoint

    def action(
        self, handler: Callable[[Request, Identity, FormData], Response]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A POST: refused (403) without a session or without the session's CSRF token."""

        async def endpoint(request: Request) -> Response:
            ident = self.identity(request)
            if ident is None:
                return PlainTextResponse("refused: sign in first", status_code=403)
            form = await request.form()
            if not self.csrf_ok(request, form):
                return PlainTextResponse(
                    "refused: the form's CSRF token is missing or stale; reload the page",
                    status_code=403,
                )
            return await run_in_threadpool(handler, request, ident, form)

        return endpoint

    def render(
        self,
        request: Request,
        name: str,
        ident: Identity | None,
        context: dict[str, Any],
        *,
        status_code: int = 200,
        me: dict[str, Any] | None = None,
    ) -> HTMLResponse:
        return self.templates.TemplateResponse(
            request,
            name,
            {"ident": ident, "me": me, "csrf": self.csrf(request), **context},
            status_code=status_code,
        )

    def error(
        self, request: Request, ident: Identity | None, status: int, message: str
    ) -> HTMLResponse:
        return self.render(
            request, "error.html", ident, {"message": message, "status": status}, status_code=status
        )

    @staticmethod
    def whoami(conn: psycopg.Connection[Any]) -> dict[str, Any]:
        me = one(conn, "select * from console.whoami()") or {}
        names = rows(
            conn,
            "select id, slug, name from public.tenants where id = any (%s) order by slug",
            (me.get("read_tenants") or [],),
        )
        me["tenants"] = {str(r["id"]): r for r in names}
        write = {str(t) for t in me.get("write_tenants") or []}
        me["tenant_list"] = [
            {**r, "access": "write" if str(r["id"]) in write else "read"} for r in names
        ]
        return me

    # -- sign-in -----------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/queues", status_code=303)

    async def sign_in_form(self, request: Request) -> Response:
        if self.identity(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
        return self.render(
            request, "sign_in.html", None, {"next": request.query_params.get("next", "")}
        )

    async def sign_in(self, request: Request) -> Response:
        form = await request.form()
        if not self.csrf_ok(request, form):
            return PlainTextResponse(
                "refused: the sign-in form is stale; reload the page", status_code=403
            )
        token = str(form.get("token") or "")
        next_path = _safe_next(str(form.get("next") or ""))
        try:
            ident = await run_in_threadpool(self.verifier.sign_in, token)
        except AuthError as exc:
            return self.render(
                request,
                "sign_in.html",
                None,
                {"error": str(exc), "next": next_path},
                status_code=401,
            )
        request.session.clear()
        if ident.is_admin:
            request.session["admin"] = self.verifier.admin_fingerprint
        else:
            request.session["token"] = token.strip()
        request.session["csrf"] = secrets.token_urlsafe(32)
        return RedirectResponse(next_path, status_code=303)

    def sign_out(self, request: Request, ident: Identity, form: FormData) -> Response:
        request.session.clear()
        return RedirectResponse("/sign-in", status_code=303)

    # -- queues ------------------------------------------------------------------------

    def queues(self, request: Request, ident: Identity) -> Response:
        window = request.query_params.get("window", "hour")
        if window not in WINDOWS:
            window = "hour"
        now = datetime.now(UTC)
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            stats = rows(conn, "select * from console.queue_overview()")
            span, bucket = WINDOWS[window]
            samples = rows(
                conn, "select * from console.queue_history(%s, %s)", (now - span, bucket)
            )
        charts = history_charts(samples, [s["queue"] for s in stats], now=now, window=window)
        context = {"stats": stats, "charts": charts, "window": window, "nav": "queues"}
        if request.query_params.get("partial") == "table":
            return self.render(request, "_queue_table.html", ident, context, me=me)
        return self.render(request, "queues.html", ident, context, me=me)

    # -- dead letters ------------------------------------------------------------------

    def dead_letters(self, request: Request, ident: Identity) -> Response:
        search = Search.parse(request.query_params)
        try:
            offset = max(int(request.query_params.get("offset", "0")), 0)
        except ValueError:
            offset = 0
        found: list[dict[str, Any]] = []
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            queues = [r["queue"] for r in rows(conn, "select queue from console.queue_overview()")]
            if not search.errors:
                found = search.run(conn, limit=PAGE_SIZE, offset=offset)
        total = int(found[0]["total"]) if found else 0
        return self.render(
            request,
            "dead_letters.html",
            ident,
            {
                "nav": "dead-letters",
                "search": search,
                "found": found,
                "total": total,
                "offset": offset,
                "page_size": PAGE_SIZE,
                "queues": queues,
                "any_writable": any(r["writable"] for r in found),
            },
            me=me,
        )

    def dead_letter(self, request: Request, ident: Identity) -> Response:
        dead_letter_id = int(request.path_params["id"])
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            row = one(conn, "select * from console.dead_letter(%s)", (dead_letter_id,))
            audit = (
                [
                    r
                    for r in rows(conn, "select * from console.audit_log(500)")
                    if r["target_id"] == dead_letter_id and r["action"] != "retry_alert"
                ]
                if row
                else []
            )
        if row is None:
            return self.error(request, ident, 404, f"dead letter {dead_letter_id} does not exist")
        return self.render(
            request,
            "dead_letter.html",
            ident,
            {"nav": "dead-letters", "d": row, "audit": audit},
            me=me,
        )

    def _selection(
        self, conn: psycopg.Connection[Any], form: FormData
    ) -> tuple[list[int], dict[str, Any], list[str]]:
        """The dead letters a form names: ``ids`` (scope selected) or the search (scope filter)."""
        if form.get("scope") == "filter":
            search = Search.parse(QueryParams([(k, str(v)) for k, v in form.multi_items()]))
            if search.errors:
                return [], {}, search.errors
            found = search.run(conn, limit=MAX_SELECTION, offset=0, status="dead")
            return [int(r["id"]) for r in found], {"filter": search.as_dict()}, []
        ids = _ids(form)
        if not ids:
            return [], {}, ["select at least one dead letter"]
        return ids, {"ids": ids}, []

    def replay(self, request: Request, ident: Identity, form: FormData) -> Response:
        return self._resolve(request, ident, form, "replay")

    def purge(self, request: Request, ident: Identity, form: FormData) -> Response:
        return self._resolve(request, ident, form, "purge")

    def _resolve(self, request: Request, ident: Identity, form: FormData, verb: str) -> Response:
        step = form.get("step")
        function = f"console.{verb}_dead_letters"
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            if step == "confirm":
                ids = _ids(form)
                if not ids or not hmac.compare_digest(
                    str(form.get("reviewed") or ""), self._reviewed(request, verb, ids)
                ):
                    return self.error(
                        request,
                        ident,
                        400,
                        f"{verb} refused: run the dry run first and confirm what it listed",
                    )
                if verb == "purge" and form.get("confirm") != "yes":
                    return self.error(
                        request, ident, 400, "purge refused: tick the box to confirm the purge"
                    )
                outcomes = rows(
                    conn,
                    f"select * from {function}(%s, false, %s, %s)",
                    (ids, ident.name, _jsonb({"ids": ids, "confirmed": True})),
                )
                return self.render(
                    request,
                    "resolved.html",
                    ident,
                    {"nav": "dead-letters", "verb": verb, "outcomes": outcomes, "dry_run": False},
                    me=me,
                )
            ids, selection, errors = self._selection(conn, form)
            if errors:
                return self.error(request, ident, 400, "; ".join(errors))
            if not ids:
                return self.error(request, ident, 404, "no open dead letters match")
            outcomes = rows(
                conn,
                f"select * from {function}(%s, true, %s, %s)",
                (ids, ident.name, _jsonb(selection)),
            )
        ready = [int(o["dead_letter_id"]) for o in outcomes if o["outcome"] == f"would_{verb}"]
        return self.render(
            request,
            "resolved.html",
            ident,
            {
                "nav": "dead-letters",
                "verb": verb,
                "outcomes": outcomes,
                "dry_run": True,
                "ready": ready,
                "reviewed": self._reviewed(request, verb, ready) if ready else "",
            },
            me=me,
        )

    def _reviewed(self, request: Request, verb: str, ids: list[int]) -> str:
        """The proof that a dry run of this session listed exactly ``ids`` for ``verb``."""
        key = self.csrf(request).encode()
        text = verb + ":" + ",".join(str(i) for i in sorted(set(ids)))
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    def audit(self, request: Request, ident: Identity) -> Response:
        action = request.query_params.get("action") or None
        if action not in (None, "replay", "purge", "retry_alert"):
            action = None
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            entries = rows(conn, "select * from console.audit_log(500, %s)", (action,))
        return self.render(
            request,
            "audit.html",
            ident,
            {"nav": "audit", "entries": entries, "action": action},
            me=me,
        )

    # -- alerts ------------------------------------------------------------------------

    def alerts(self, request: Request, ident: Identity) -> Response:
        status = request.query_params.get("status") or None
        if status not in (None, "pending", "failed", "delivered", "dead"):
            status = None
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            counts = rows(conn, "select * from console.alert_delivery_counts()")
            deliveries = rows(
                conn, "select * from console.find_alert_deliveries(%s, null, 200)", (status,)
            )
            rules = rows(conn, "select * from console.alert_rules()")
        return self.render(
            request,
            "alerts.html",
            ident,
            {
                "nav": "alerts",
                "counts": counts,
                "deliveries": deliveries,
                "rules": rules,
                "status": status,
            },
            me=me,
        )

    def retry_alerts(self, request: Request, ident: Identity, form: FormData) -> Response:
        ids = _ids(form)
        if not ids:
            return self.error(request, ident, 400, "select at least one alert delivery")
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            outcomes = rows(
                conn, "select * from console.retry_alert_deliveries(%s, %s)", (ids, ident.name)
            )
        return self.render(
            request, "retried.html", ident, {"nav": "alerts", "outcomes": outcomes}, me=me
        )

    # -- one case ----------------------------------------------------------------------

    def case_search(self, request: Request, ident: Identity) -> Response:
        wanted = (request.query_params.get("id") or "").strip()
        if wanted:
            return RedirectResponse(f"/cases/{quote(wanted)}", status_code=303)
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            recent = rows(
                conn,
                "select c.id, c.current_stage, c.current_balance, c.updated_at, j.debtor_name"
                "  from public.enforcement_cases as c"
                "  join public.judgments as j on j.id = c.judgment_id"
                " order by c.updated_at desc limit 20",
            )
        return self.render(request, "cases.html", ident, {"nav": "case", "recent": recent}, me=me)

    def case(self, request: Request, ident: Identity) -> Response:
        case_id = str(request.path_params["case_id"])
        if not _UUID.match(case_id):
            return self.error(request, ident, 404, "a case id is a uuid")
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            case = one(
                conn,
                "select c.id, c.tenant_id, c.current_stage, c.tier, c.current_balance, c.opened_at,"
                "       c.closed_at, c.closure_reason, j.debtor_name, j.judgment_amount"
                "  from public.enforcement_cases as c"
                "  join public.judgments as j on j.id = c.judgment_id"
                " where c.id = %s",
                (case_id,),
            )
            if case is None:
                return self.error(request, ident, 404, f"case {case_id} does not exist")
            timeline = rows(
                conn,
                "select * from public.v_enforcement_timeline where case_id = %s"
                " order by occurred_at, recorded_at",
                (case_id,),
            )
            jobs = rows(conn, "select * from console.case_jobs(%s)", (case_id,))
            alerts = rows(
                conn, "select * from console.find_alert_deliveries(null, %s, 1000)", (case_id,)
            )
            briefs = rows(conn, "select * from console.case_briefs(%s)", (case_id,))
        entries = case_entries(timeline, jobs, alerts, briefs)
        return self.render(
            request,
            "case.html",
            ident,
            {
                "nav": "case",
                "case": case,
                "entries": entries,
                "counts": {
                    "jobs": len(jobs),
                    "timeline": len(timeline),
                    "alerts": len(alerts),
                    "briefs": len(briefs),
                },
            },
            me=me,
        )

    # -- fleet -------------------------------------------------------------------------

    def fleet(self, request: Request, ident: Identity) -> Response:
        with self.db.session(ident) as conn:
            me = self.whoami(conn)
            processes = rows(conn, "select * from console.fleet_processes()")
        return self.render(
            request,
            "fleet.html",
            ident,
            {"nav": "fleet", "processes": processes, "now": datetime.now(UTC)},
            me=me,
        )


@dataclass
class Search:
    """The dead-letter search form, parsed."""

    queue: str | None = None
    kind: str | None = None
    error: str | None = None
    case: str | None = None
    since: str | None = None
    until: str | None = None
    status: str = "dead"
    since_at: datetime | None = None
    until_at: datetime | None = None
    errors: list[str] | None = None

    @classmethod
    def parse(cls, params: QueryParams) -> Search:
        def text(name: str) -> str | None:
            value = (params.get(name) or "").strip()
            return value[:500] or None

        found = cls(
            queue=text("queue"),
            kind=text("kind"),
            error=text("error"),
            case=text("case"),
            since=text("since"),
            until=text("until"),
            status=text("status") or "dead",
            errors=[],
        )
        assert found.errors is not None
        if found.status not in ("dead", "replayed", "purged", "all"):
            found.errors.append("status must be dead, replayed, purged or all")
        if found.case and not _UUID.match(found.case):
            found.errors.append("case must be a case id (a uuid)")
        for name in ("since", "until"):
            value = getattr(found, name)
            if value:
                try:
                    setattr(found, f"{name}_at", when(value))
                except ArgumentTypeError as exc:
                    found.errors.append(f"{name}: {exc}")
        return found

    def as_dict(self) -> dict[str, str]:
        fields = ("queue", "kind", "error", "case", "since", "until", "status")
        return {k: str(getattr(self, k)) for k in fields if getattr(self, k)}

    def query(self) -> str:
        return urlencode(self.as_dict())

    def run(
        self,
        conn: psycopg.Connection[Any],
        *,
        limit: int,
        offset: int,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        wanted = status or (None if self.status == "all" else self.status)
        return rows(
            conn,
            "select * from console.find_dead_letters(p_queue => %s, p_kind => %s,"
            " p_error => %s, p_case => %s, p_since => %s, p_until => %s, p_status => %s,"
            " p_limit => %s, p_offset => %s)",
            (
                self.queue,
                self.kind,
                self.error,
                self.case,
                self.since_at,
                self.until_at,
                wanted,
                limit,
                offset,
            ),
        )


def case_entries(
    timeline: list[dict[str, Any]],
    jobs: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    briefs: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """One stream of everything about a case, oldest first."""
    entries: list[dict[str, Any]] = []
    for t in timeline:
        entries.append(
            {
                "at": t["occurred_at"],
                "type": t["entry_type"],
                "title": t["kind"] + (f" ({t['status']})" if t["status"] else ""),
                "who": t["actor"],
                "detail": t["details"],
                "link": None,
            }
        )
    for j in jobs:
        link = f"/dead-letters/{j['ref_id']}" if j["source"] == "dead_letter" else None
        entries.append(
            {
                "at": j["at"],
                "type": "job",
                "title": f"{j['queue']} job {j['state']} ({j['source'].replace('_', ' ')})",
                "who": j["idempotency_key"],
                "detail": {
                    "msg_id": j["msg_id"],
                    "attempts": j["attempts"],
                    **({"detail": present.scrubbed(j["detail"])} if j["detail"] else {}),
                },
                "link": link,
            }
        )
    for a in alerts:
        entries.append(
            {
                "at": a["event_created_at"],
                "type": "alert",
                "title": f"alert {a['id']}: {a['rule']} → {a['sink']} ({a['status']})",
                "who": a["event_kind"],
                "detail": {
                    "attempts": a["attempts"],
                    "last_error": present.scrubbed(a["last_error"]),
                }
                if a["last_error"]
                else {"attempts": a["attempts"]},
                "link": "/alerts",
            }
        )
    for b in briefs:
        entries.append(
            {
                "at": b["created_at"],
                "type": "brief",
                "title": f"copilot brief ({b['backend']}{', ' + b['model'] if b['model'] else ''})",
                "who": b["requested_by"],
                "detail": b["brief"],
                "link": None,
            }
        )
    epoch = datetime.min.replace(tzinfo=UTC)
    entries.sort(key=lambda e: e["at"] or epoch)
    return entries


def _ids(form: FormData) -> list[int]:
    out: list[int] = []
    for value in form.getlist("ids"):
        for part in str(value).replace(",", " ").split():
            if part.isdigit() and len(part) < 19:
                out.append(int(part))
    return sorted(set(out))[:MAX_SELECTION]


def _jsonb(value: dict[str, Any]) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def _safe_next(target: str | None) -> str:
    """Only a path of this console (no scheme, no host, no //)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queues"


def new_session_secret() -> str:
    return secrets.token_urlsafe(48)


def build_app(config: ConsoleConfig) -> Starlette:
    return Console(config).app
