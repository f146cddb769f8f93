"""``dragonfly demo``: a synthetic book, the whole fleet working it, and a summary.

The book is split between two tenants (:mod:`workers.demo.tenants`), each with an
operator. Phase 1 imports each tenant's part into it, opens the cases and enqueues
enrich, outreach and enforce work; the fleet drains it (enrichment re-plans cases whose
tier changed). Phase 2 asks Case Copilot about the largest cases, now that they are
scored and planned. Then the fleet is stopped, each operator's view of the cases is
read as that signed-in user, and :mod:`workers.demo.summary` reports. docs/demo.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from workers.db.connect import connect
from workers.db.migrate import default_migrations_dir, migrate
from workers.demo.drain import QueueState, fleet_specs, wait_drained
from workers.demo.generator import generate_book, write_csv
from workers.demo.seed import Book, DemoCase, enqueue_work, import_book, open_cases, request_briefs
from workers.demo.summary import Summary, collect, render
from workers.demo.tenants import DemoTenant, TenantView, isolation, prepare_tenants, split
from workers.fleet.supervisor import Supervisor
from workers.job_kinds import KINDS
from workers.settings import Settings


@dataclass(frozen=True)
class DemoOptions:
    cases: int = 40
    seed: int = 7
    timeout: float = 300.0
    fleet: bool = True
    listener: bool = True
    workers_per_kind: int = 1
    copilot: int = 5
    csv_path: Path | None = None
    migrate: bool = True


def _progress_printer(out: Callable[[str], None]) -> Callable[[dict[str, QueueState]], None]:
    last_print = 0.0

    def show(state: dict[str, QueueState]) -> None:
        nonlocal last_print
        now = time.monotonic()
        if now - last_print < 1.0:
            return
        last_print = now
        parts = [f"{q} {s.visible + s.busy}" for q, s in state.items()]
        out("  working: " + " · ".join(parts))

    return show


def runnable_kinds() -> list[str]:
    """The job kinds this installation has a handler for (``workers.<kind>:JOB``)."""
    from workers.runtime.handlers import HandlerNotFound, load_job

    kinds: list[str] = []
    for kind in KINDS:
        try:
            load_job(kind)
        except HandlerNotFound:
            continue
        kinds.append(kind)
    return kinds


def available_commands() -> set[str]:
    """The CLI's subcommands (the fleet needs ``worker``; alerts need ``listen``)."""
    from workers.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def run_demo(
    settings: Settings, url: str, opts: DemoOptions, out: Callable[[str], None] = print
) -> Summary:
    started_at = datetime.now(UTC)
    t0 = time.monotonic()
    if opts.migrate:
        with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
            applied = migrate(conn, settings.migrations_dir or default_migrations_dir())
        if applied:
            out(f"Applied {len(applied)} migration(s).")

    with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
        tenants = prepare_tenants(conn)
    out(
        "Tenants and their operators: "
        + ", ".join(f"{t.slug} ({t.operator_email})" for t in tenants)
    )

    rows = generate_book(opts.cases, opts.seed)
    csv_path = opts.csv_path or settings.home / "demo" / f"book-seed{opts.seed}-{opts.cases}.csv"
    write_csv(rows, csv_path)
    out(f"Generated a book of {len(rows)} judgments (seed {opts.seed}): {csv_path}")
    parts = split(rows, len(tenants))
    imports = []
    with connect(url, connect_timeout=settings.connect_timeout) as conn:
        for tenant, part in zip(tenants, parts, strict=True):
            if not part:
                continue
            part_path = csv_path.with_name(f"{csv_path.stem}.{tenant.slug}{csv_path.suffix}")
            imported = import_book(conn, part, part_path, tenant.id)
            imports.append((tenant, part, imported))
            out(
                f"Imported {len(part)} into {tenant.slug} through the Simplicity path:"
                f" {imported.imported_rows} new, {imported.duplicate_rows} already known,"
                f" {imported.failed_rows} failed"
            )

    supervisor: Supervisor | None = None
    with connect(url, connect_timeout=settings.connect_timeout, autocommit=True) as conn:
        cases: list[DemoCase] = []
        for tenant, part, imported in imports:
            cases.extend(open_cases(conn, part, imported, tenant.slug))
        book = Book(tuple(cases))
        per_tenant = ", ".join(
            f"{t.slug} {len(book.cases_by_tenant().get(t.slug, []))}" for t in tenants
        )
        out(
            f"{len(book.cases)} enforcement cases open for {len(book.plaintiff_ids)} plaintiffs"
            f" ({per_tenant})"
        )
        try:
            listener = False
            kinds = list(KINDS)
            if opts.fleet:
                commands = available_commands()
                if "worker" not in commands:
                    raise RuntimeError("this installation has no `dragonfly worker` command")
                listener = opts.listener and "listen" in commands
                kinds = runnable_kinds()
                missing = [k for k in KINDS if k not in kinds]
                if missing:
                    out(f"No handler here for {', '.join(missing)}: that work is skipped")
                supervisor = Supervisor(
                    fleet_specs(
                        kinds=kinds,
                        listener=listener,
                        workers_per_kind=opts.workers_per_kind,
                        database_url=url,
                    ),
                    stop_timeout=settings.fleet_stop_timeout,
                )
                supervisor.start()
                out(
                    f"Fleet started: {opts.workers_per_kind} worker(s) per kind"
                    + (" + alert listener" if listener else "")
                )
            sent = enqueue_work(conn, book, kinds=set(kinds))
            out("Enqueued: " + ", ".join(f"{k} {n}" for k, n in sent.items()))
            progress = _progress_printer(out)
            routed_ids = book.enforcement_case_ids if listener else None
            wait_drained(
                conn,
                timeout=opts.timeout,
                case_ids=routed_ids,
                supervisor=supervisor,
                progress=progress,
            )
            asked = request_briefs(conn, book, opts.copilot if "case_copilot" in kinds else 0)
            out(f"Scored and planned; asked Case Copilot about the {asked} largest cases")
            remaining = max(opts.timeout - (time.monotonic() - t0), 5.0)
            wait_drained(
                conn,
                timeout=remaining,
                case_ids=routed_ids,
                supervisor=supervisor,
                progress=progress,
            )
        finally:
            if supervisor is not None:
                supervisor.shutdown()
        views, note = _isolation(conn, tenants, book)
        summary = collect(
            conn,
            started_at=started_at,
            seconds=time.monotonic() - t0,
            enforcement_case_ids=book.enforcement_case_ids,
            court_case_ids=book.court_case_ids,
            plaintiff_ids=book.plaintiff_ids,
            tenants=views,
        )
        if note:
            summary.notes.append(note)
    out(render(summary))
    return summary


def _isolation(
    conn: psycopg.Connection[Any], tenants: list[DemoTenant], book: Book
) -> tuple[list[TenantView], str | None]:
    """Each operator's view, or a note saying why it could not be read."""
    try:
        return isolation(conn, tenants, book.cases_by_tenant()), None
    except psycopg.errors.InsufficientPrivilege as exc:
        reason = " ".join(str(exc).split())
        return (
            [],
            f"Tenant isolation not shown: this login may not act as a signed-in user: {reason}",
        )
