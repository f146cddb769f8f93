"""Put a synthetic book into the database and enqueue its work.

1. :func:`import_book` writes a tenant's part of the book as a Simplicity CSV and loads
   it into that tenant through the real import path
   (``workers.intake.simplicity.load_and_process`` → ``process_simplicity_imports``),
   exactly as ``dragonfly import simplicity FILE --tenant T`` does;
2. :func:`open_cases` opens an enforcement case for every judgment of that part
   (``open_enforcement_case``; the case takes the judgment's tenant);
3. :func:`enqueue_work` sends, through ``queue_jobs`` (1000 a call), an ``enrich`` job per
   court case (with the debtor's vendor bundle, as a webhook would), an ``outreach`` job per
   plaintiff and an ``enforce`` plan job per enforcement case;
4. :func:`request_briefs` asks Case Copilot (``request_case_copilot``) about the
   largest cases once the book has been enriched and planned.

Every idempotency key starts with ``demo:<import run id>:`` (the run of the case's
tenant), so a demo run is repeatable and never collides with real work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from workers.demo.generator import BookRow, write_csv
from workers.enrich.bundle import EnrichmentBundle
from workers.intake.simplicity import ImportResult, load_and_process
from workers.ops.enqueue import enqueue_all

ACTOR = "dragonfly demo"

# Case numbers are unique per tenant: the same number may be another tenant's case.
CASES_BY_NUMBER = """
select jc.case_number, jc.id, j.id, j.plaintiff_id, j.balance_due
  from judgments.cases as jc
  join public.judgments as j on j.id = jc.judgment_id
 where jc.tenant_id = %s and jc.case_number = any(%s)
"""
OPEN_CASE_OF = """
select id from public.enforcement_cases where judgment_id = %s and closed_at is null
"""
OPEN_CASE = "select public.open_enforcement_case(%s)"
REQUEST_BRIEF = "select public.request_case_copilot(%s::text, %s)"
LARGEST_OPEN = """
select id from public.enforcement_cases
 where id = any(%s) and closed_at is null
 order by current_balance desc, id
 limit %s
"""


@dataclass(frozen=True)
class DemoCase:
    case_number: str
    court_case_id: UUID
    judgment_id: UUID
    plaintiff_id: UUID
    enforcement_case_id: UUID
    row: BookRow
    tenant: str
    run_id: UUID


@dataclass(frozen=True)
class Book:
    """The demo's cases, every tenant's part together."""

    cases: tuple[DemoCase, ...]

    @property
    def enforcement_case_ids(self) -> list[UUID]:
        return [c.enforcement_case_id for c in self.cases]

    @property
    def court_case_ids(self) -> list[UUID]:
        return [c.court_case_id for c in self.cases]

    @property
    def plaintiff_ids(self) -> list[UUID]:
        return sorted({c.plaintiff_id for c in self.cases})

    def plaintiff_runs(self) -> dict[UUID, UUID]:
        """Each plaintiff's import run (a plaintiff belongs to one tenant, so to one run)."""
        return {c.plaintiff_id: c.run_id for c in self.cases}

    def cases_by_tenant(self) -> dict[str, list[UUID]]:
        """Enforcement case ids per tenant slug."""
        parts: dict[str, list[UUID]] = {}
        for c in self.cases:
            parts.setdefault(c.tenant, []).append(c.enforcement_case_id)
        return parts


def import_book(
    conn: psycopg.Connection[Any], rows: list[BookRow], csv_path: Path, tenant_id: UUID
) -> ImportResult:
    """Write the CSV and import it into ``tenant_id``; ``conn`` must not be in autocommit mode."""
    write_csv(rows, csv_path)
    return load_and_process(conn, csv_path, created_by=ACTOR, tenant_id=tenant_id)


def open_cases(
    conn: psycopg.Connection[Any], rows: list[BookRow], imported: ImportResult, tenant: str
) -> list[DemoCase]:
    """An open enforcement case for every judgment of one tenant's part of the book
    (existing ones are kept)."""
    by_number = {r.case_number: r for r in rows}
    cases: list[DemoCase] = []
    with conn.transaction():
        found = conn.execute(CASES_BY_NUMBER, (imported.tenant_id, list(by_number))).fetchall()
        for number, court_case_id, judgment_id, plaintiff_id, _balance in found:
            existing = conn.execute(OPEN_CASE_OF, (judgment_id,)).fetchone()
            if existing is not None:
                ec = existing[0]
            else:
                opened = conn.execute(
                    OPEN_CASE,
                    (
                        Jsonb(
                            {
                                "judgment_id": str(judgment_id),
                                "plaintiff_id": str(plaintiff_id),
                                "created_by": ACTOR,
                                "notes": "opened by the demo for a synthetic judgment",
                            }
                        ),
                    ),
                ).fetchone()
                assert opened is not None
                ec = opened[0]
            cases.append(
                DemoCase(
                    number,
                    court_case_id,
                    judgment_id,
                    plaintiff_id,
                    ec,
                    by_number[number],
                    tenant,
                    imported.run_id,
                )
            )
    cases.sort(key=lambda c: c.case_number)
    return cases


def bundle_for(row: BookRow) -> dict[str, Any]:
    """The vendor bundle of a debtor, validated by the enrich kind's own model."""
    profile = row.profile
    bundle = EnrichmentBundle.model_validate(
        {
            "source": "demo-skiptrace",
            "contacts": [
                {
                    "contact_type": c.contact_type,
                    "value": c.value,
                    "confidence": float(c.confidence),
                    "is_verified": c.is_verified,
                }
                for c in profile.contacts
            ],
            "assets": [
                {
                    "asset_type": a.asset_type,
                    "description": a.description,
                    "institution": a.institution,
                    "estimated_value": float(a.estimated_value)
                    if a.estimated_value is not None
                    else None,
                    "confidence": float(a.confidence),
                }
                for a in profile.assets
            ],
            "signals": {
                "identity_confidence": 0.9 if profile.contacts else 0.4,
                "bankruptcy": "bankruptcy_filing" in profile.adverse,
            },
        }
    )
    return bundle.to_rpc()


def enqueue_work(
    conn: psycopg.Connection[Any], book: Book, kinds: set[str] | None = None
) -> dict[str, int]:
    """Enrich, outreach and enforce jobs for the whole book, in one transaction
    (only those of ``kinds`` when given)."""
    wanted = [k for k in ("enrich", "outreach", "enforce") if kinds is None or k in kinds]
    jobs: list[tuple[str, str, dict[str, Any]]] = []
    for case in book.cases:
        prefix = f"demo:{case.run_id}"
        jobs.append(
            (
                "enrich",
                f"{prefix}:enrich:{case.court_case_id}",
                {"case_id": str(case.court_case_id), "bundle": bundle_for(case.row)},
            )
        )
        jobs.append(
            (
                "enforce",
                f"{prefix}:enforce:{case.enforcement_case_id}",
                {"case_id": str(case.enforcement_case_id), "trigger": "demo"},
            )
        )
    runs = book.plaintiff_runs()
    for plaintiff_id in book.plaintiff_ids:
        jobs.append(
            (
                "outreach",
                f"demo:{runs[plaintiff_id]}:outreach:{plaintiff_id}",
                {"plaintiff_id": str(plaintiff_id), "reason": "new_judgment", "campaign": "demo"},
            )
        )
    sent = dict.fromkeys(wanted, 0)
    chosen = [(kind, key, payload) for kind, key, payload in jobs if kind in sent]
    envelopes = [
        {"kind": kind, "idempotency_key": key, "payload": payload, "requested_by": ACTOR}
        for kind, key, payload in chosen
    ]
    with conn.transaction():
        enqueue_all(conn, envelopes)
    for kind, _, _ in chosen:
        sent[kind] += 1
    return sent


def request_briefs(conn: psycopg.Connection[Any], book: Book, limit: int) -> int:
    """Ask Case Copilot about the ``limit`` largest open cases; returns how many."""
    if limit <= 0:
        return 0
    with conn.transaction():
        ids = [r[0] for r in conn.execute(LARGEST_OPEN, (book.enforcement_case_ids, limit))]
        for case_id in ids:
            conn.execute(REQUEST_BRIEF, (case_id, ACTOR))
    return len(ids)
