"""What the demo did, read back from the database and printed as a short report.

Everything counted is this run's: work finished, opened, sent or deferred since it
started. Running the demo again with the same seed finds the same cases, and what
earlier runs did to them (their actions, alerts, briefs, deferred outreach) is not
counted again. The stages and tiers are the cases' state now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from workers.demo.tenants import TenantView
from workers.job_kinds import KINDS

COMPLETED = """
select kind, count(*) from dragonfly.completed_jobs
 where completed_at >= %s group by kind
"""
DEAD = """
select queue, reason, last_error from dragonfly.dead_letters
 where dead_at >= %s order by dead_at
"""
TIERS = """
select coalesce(collectability_tier, 'unscored'), count(*), avg(collectability_score)
  from judgments.cases where id = any(%s) group by 1 order by 1
"""
SCORES = "select collectability_score from judgments.cases where id = any(%s)"
STAGES = """
select current_stage, count(*) from public.enforcement_cases
 where id = any(%s) group by 1
"""
ACTIONS = """
select action_type, status, count(*) from public.enforcement_actions
 where enforcement_case_id = any(%s) and opened_at >= %s group by 1, 2 order by 1, 2
"""
OUTREACH = """
select outcome, coalesce(channel, '-'), count(*) from public.outreach_attempts
 where plaintiff_id = any(%s) and attempted_at >= %s group by 1, 2 order by 1, 2
"""
ALERTS = """
select sink, status, count(*) from dragonfly.alert_deliveries
 where case_id = any(%s) and created_at >= %s group by 1, 2 order by 1, 2
"""
BRIEF = """
select count(*) over (), backend, brief, model from public.v_case_copilot_latest
 where case_id = any(%s) and created_at >= %s order by created_at desc limit 1
"""
# Delayed and never read (outreach held for quiet hours), enqueued by this run. Queue
# names are the shipped kinds' (the demo runs no other), so the format is safe.
DEFERRED = " union all ".join(
    f"select '{q}', count(*) from pgmq.q_{q}"
    " where read_ct = 0 and vt > now() and enqueued_at >= %(since)s"
    for q in KINDS
)
BALANCE = "select sum(current_balance) from public.enforcement_cases where id = any(%s)"

STAGE_ORDER = (
    "pre_enforcement",
    "asset_search",
    "information_subpoena",
    "bank_levy",
    "wage_garnishment",
    "marshal_execution",
    "payment_plan",
    "satisfied",
    "uncollectible",
    "withdrawn",
)


@dataclass
class Summary:
    cases: int
    plaintiffs: int
    balance: Decimal
    seconds: float
    jobs: dict[str, int]
    deferred: dict[str, int]
    tiers: list[tuple[str, int, Decimal | None]]
    score_buckets: list[tuple[str, int]]
    stages: dict[str, int]
    actions: list[tuple[str, str, int]]
    outreach: list[tuple[str, str, int]]
    alerts: list[tuple[str, str, int]]
    dead: list[tuple[str, str, str]]
    briefs: int
    sample_brief: dict[str, Any] | None = None
    brief_backend: str | None = None
    tenants: list[TenantView] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _rows(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> list[Any]:
    return list(conn.execute(query, params).fetchall())


def _optional(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> list[Any]:
    """A query on a table another part of the fleet owns; [] when it is not installed."""
    try:
        with conn.transaction():
            return _rows(conn, query, params)
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
        return []


def _buckets(scores: Iterable[Decimal | None]) -> list[tuple[str, int]]:
    edges = [(0, 25), (25, 50), (50, 75), (75, 101)]
    counts = [0] * len(edges)
    for s in scores:
        if s is None:
            continue
        for i, (lo, hi) in enumerate(edges):
            if lo <= s < hi:
                counts[i] += 1
    labels = ["0-24", "25-49", "50-74", "75-100"]
    return list(zip(labels, counts, strict=True))


def collect(
    conn: psycopg.Connection[Any],
    *,
    started_at: datetime,
    seconds: float,
    enforcement_case_ids: list[UUID],
    court_case_ids: list[UUID],
    plaintiff_ids: list[UUID],
    tenants: Iterable[TenantView] = (),
) -> Summary:
    briefs = _rows(conn, BRIEF, (enforcement_case_ids, started_at))
    deferred = conn.execute(DEFERRED, {"since": started_at}).fetchall()
    balance_row = conn.execute(BALANCE, (enforcement_case_ids,)).fetchone()
    return Summary(
        cases=len(enforcement_case_ids),
        plaintiffs=len(plaintiff_ids),
        balance=Decimal(balance_row[0] or 0) if balance_row else Decimal(0),
        seconds=seconds,
        jobs={k: int(n) for k, n in _rows(conn, COMPLETED, (started_at,))},
        deferred={q: int(n) for q, n in deferred if n},
        tiers=[(t, int(n), a) for t, n, a in _rows(conn, TIERS, (court_case_ids,))],
        score_buckets=_buckets(r[0] for r in _rows(conn, SCORES, (court_case_ids,))),
        stages={s: int(n) for s, n in _rows(conn, STAGES, (enforcement_case_ids,))},
        actions=[
            (a, s, int(n)) for a, s, n in _rows(conn, ACTIONS, (enforcement_case_ids, started_at))
        ],
        outreach=[
            (o, c, int(n)) for o, c, n in _optional(conn, OUTREACH, (plaintiff_ids, started_at))
        ],
        alerts=[
            (k, s, int(n))
            for k, s, n in _optional(conn, ALERTS, (enforcement_case_ids, started_at))
        ],
        dead=[(q, r, e) for q, r, e in _rows(conn, DEAD, (started_at,))],
        briefs=int(briefs[0][0]) if briefs else 0,
        sample_brief=dict(briefs[0][2]) if briefs else None,
        brief_backend=(f"{briefs[0][1]} {briefs[0][3] or ''}".strip() if briefs else None),
        tenants=list(tenants),
    )


def _bar(n: int, total: int, width: int = 30) -> str:
    return "█" * (round(width * n / total) if total else 0)


def render(s: Summary) -> str:
    """The report ``dragonfly demo`` prints."""
    out: list[str] = []
    add = out.append
    add("")
    in_tenants = f" in {len(s.tenants)} tenants" if len(s.tenants) > 1 else ""
    add(
        f"Dragonfly demo: {s.cases} cases for {s.plaintiffs} plaintiffs{in_tenants},"
        f" ${s.balance:,.2f} outstanding; drained in {s.seconds:.1f}s"
    )
    add("")
    add("Jobs per queue            done   deferred   dead")
    dead_by_queue: dict[str, int] = {}
    for q, _r, _e in s.dead:
        dead_by_queue[q] = dead_by_queue.get(q, 0) + 1
    for q in KINDS:
        add(f"  {q:<22}{s.jobs.get(q, 0):>6}{s.deferred.get(q, 0):>11}{dead_by_queue.get(q, 0):>7}")
    add("")
    add("Collectability (tier: cases, mean score)")
    total = sum(n for _t, n, _a in s.tiers)
    for tier, n, avg in s.tiers:
        mean = f"{avg:5.1f}" if avg is not None else "    -"
        add(f"  {tier:<9}{n:>5}  {mean}  {_bar(n, total)}")
    add("  score    " + "   ".join(f"{label}: {n}" for label, n in s.score_buckets))
    add("")
    add("Enforcement stage")
    for stage in STAGE_ORDER:
        if s.stages.get(stage):
            add(f"  {stage:<22}{s.stages[stage]:>5}  {_bar(s.stages[stage], s.cases)}")
    add("")
    opened = sum(n for _a, _s, n in s.actions)
    add(f"Actions opened: {opened}")
    for action, status, n in s.actions:
        add(f"  {action:<14}{status:<20}{n:>4}")
    if s.outreach:
        add("")
        add("Plaintiff outreach")
        for outcome, channel, n in s.outreach:
            add(f"  {outcome:<14}{channel:<8}{n:>4}")
    add("")
    sent = sum(n for _k, st, n in s.alerts if st == "delivered")
    add(f"Alerts: {sent} sent")
    for sink, status, n in s.alerts:
        add(f"  {sink:<8}{status:<12}{n:>4}")
    if any(st == "pending" for _k, st, _n in s.alerts):
        add(
            "  (pending: that sink is not configured; set DRAGONFLY_SLACK_WEBHOOK_URL or"
            " DRAGONFLY_SMTP_HOST)"
        )
    add("")
    add(f"Dead letters: {len(s.dead)}")
    for q, reason, error in s.dead[:5]:
        add(f"  {q}: {reason}: {error[:100]}")
    add("")
    add(f"Case Copilot briefs: {s.briefs}" + (f" ({s.brief_backend})" if s.brief_backend else ""))
    if s.sample_brief:
        add(f"  latest: {s.sample_brief.get('summary', '')}")
        for rec in (s.sample_brief.get("recommended_actions") or [])[:2]:
            add(f"  -> {rec.get('action')}: {rec.get('reason')}")
    if s.tenants:
        add("")
        add(
            "Tenant isolation: what each operator sees, signed in (role authenticated, its JWT sub)"
        )
        width = max(len(t.slug) for t in s.tenants)
        email_width = max(len(t.operator_email) for t in s.tenants)
        for t in s.tenants:
            add(
                f"  {t.slug:<{width}}  {t.operator_email:<{email_width}}"
                f"  own cases {t.own_seen} of {t.own_total}"
                f"  · other tenants' {t.others_seen} of {t.others_total}"
                + (
                    f"  · overview: {t.overview_open} open"
                    if t.overview_open is not None
                    else "  · overview: not readable signed in"
                )
            )
    for note in s.notes:
        add(note)
    return "\n".join(out)
