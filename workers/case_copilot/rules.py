"""The deterministic rules backend: a brief from the case context, offline.

Two tables, each in one place: :data:`RISK_RULES` (which risk flags a case raises)
and the follow-up recommendations in :func:`_recommendations`. The first
recommendation is always what the enforcement planner would do next, so the brief
and the ``enforce`` job never disagree. docs/copilot.md lists the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from workers.case_copilot.models import Brief, CaseContext, RecommendedAction, RiskFlag, Severity
from workers.enforce.planner import LADDER, Step, plan

VERSION = "rules-2026.11.1"
"""Stored with every rules brief; bump it when a rule below changes."""

SMALL_BALANCE = Decimal("500")
STALE_ENRICHMENT = timedelta(days=90)
PAYMENT_GAP = timedelta(days=45)
OLD_JUDGMENT_YEARS = 10


@dataclass(frozen=True)
class RiskRule:
    code: str
    severity: Severity
    applies: Callable[[CaseContext], bool]
    detail: Callable[[CaseContext], str]


def _days_in_stage(ctx: CaseContext) -> int:
    return max((ctx.as_of - ctx.case.stage_entered_at).days, 0)


def _stage_sla(ctx: CaseContext) -> int | None:
    return LADDER.get(ctx.case.stage, (0, None))[1]


def _over_sla(ctx: CaseContext) -> bool:
    sla = _stage_sla(ctx)
    return sla is not None and ctx.case.closed_at is None and _days_in_stage(ctx) > sla


def _overdue(ctx: CaseContext) -> bool:
    nxt = ctx.case.next_action_at
    return ctx.case.closed_at is None and nxt is not None and nxt < ctx.as_of


def _judgment_age_years(ctx: CaseContext) -> int | None:
    if ctx.judgment.judgment_date is None:
        return None
    return (ctx.as_of.date() - ctx.judgment.judgment_date).days // 365


def _last_payment_gap(ctx: CaseContext) -> timedelta | None:
    if not ctx.payments:
        return None
    return ctx.as_of - max(p.received_at for p in ctx.payments)


def _plan_gap_too_long(ctx: CaseContext) -> bool:
    if ctx.case.stage != "payment_plan":
        return False
    gap = _last_payment_gap(ctx)
    since = ctx.case.stage_entered_at
    return (gap is None and ctx.as_of - since > PAYMENT_GAP) or (
        gap is not None and gap > PAYMENT_GAP
    )


def _enrichment_stale(ctx: CaseContext) -> bool:
    s = ctx.scores
    last = s.last_enriched_at if s is not None else None
    return last is None or ctx.as_of - last > STALE_ENRICHMENT


def _money(value: Decimal) -> str:
    return f"${value:,.2f}"


RISK_RULES: tuple[RiskRule, ...] = (
    RiskRule(
        "judgment_not_active",
        "high",
        lambda c: c.judgment.status != "active",
        lambda c: f"the judgment is {c.judgment.status}; enforcement may not proceed",
    ),
    RiskRule(
        "plaintiff_unreachable",
        "high",
        lambda c: c.plaintiff.status in ("do_not_call", "bad_number"),
        lambda c: f"plaintiff status is {c.plaintiff.status}; do not call, use written channels",
    ),
    RiskRule(
        "payment_plan_lapsed",
        "high",
        _plan_gap_too_long,
        lambda c: f"no payment under the plan in over {PAYMENT_GAP.days} days",
    ),
    RiskRule(
        "stage_over_sla",
        "medium",
        _over_sla,
        lambda c: f"{_days_in_stage(c)} days in {c.case.stage} (SLA {_stage_sla(c)} days)",
    ),
    RiskRule(
        "next_action_overdue",
        "medium",
        _overdue,
        lambda c: f"next action was due {c.case.next_action_at:%Y-%m-%d}",
    ),
    RiskRule(
        "no_assets_known",
        "medium",
        lambda c: not c.plan_input.hints,
        lambda c: "no bank, employer, property or vehicle known for the debtor",
    ),
    RiskRule(
        "adverse_records",
        "medium",
        lambda c: (
            c.scores is not None
            and c.scores.adverse_penalty is not None
            and c.scores.adverse_penalty >= 50
        ),
        lambda c: (
            f"adverse penalty {c.scores.adverse_penalty if c.scores else '?'}"
            " (bankruptcy, competing judgments or liens)"
        ),
    ),
    RiskRule(
        "old_judgment",
        "medium",
        lambda c: (_judgment_age_years(c) or 0) >= OLD_JUDGMENT_YEARS,
        lambda c: f"judgment is {_judgment_age_years(c)} years old; confirm renewal of liens",
    ),
    RiskRule(
        "low_collectability",
        "medium",
        lambda c: c.case.tier == "tier3",
        lambda c: f"tier3 (score {c.case.collectability_score}); expect low recovery",
    ),
    RiskRule(
        "small_balance",
        "low",
        lambda c: c.case.current_balance < SMALL_BALANCE,
        lambda c: f"balance {_money(c.case.current_balance)}; costs may exceed recovery",
    ),
    RiskRule(
        "unscored",
        "low",
        lambda c: c.case.collectability_score is None,
        lambda c: "no collectability score yet; enrichment has not run",
    ),
)


_STEP_ACTION_NAMES: dict[Step, str] = {
    Step.ASSET_SEARCH: "asset_search",
    Step.SUBPOENA: "information_subpoena",
    Step.BANK_LEVY: "bank_levy",
    Step.GARNISHMENT: "wage_garnishment",
    Step.MARSHAL: "marshal_execution",
    Step.UNCOLLECTIBLE_REVIEW: "uncollectible_review",
    Step.WAIT: "monitor",
    Step.NONE: "no_action",
}


def _recommendations(ctx: CaseContext, flags: list[RiskFlag]) -> list[RecommendedAction]:
    decided = plan(ctx.plan_input.model_copy(update={"requested": None}))
    recs = [
        RecommendedAction(
            action=_STEP_ACTION_NAMES[decided.step],
            reason=f"{decided.reason} (playbook rule {decided.rule})",
            priority=1,
        )
    ]
    codes = {f.code for f in flags}
    if ctx.case.closed_at is None and _enrichment_stale(ctx):
        recs.append(
            RecommendedAction(
                action="refresh_enrichment",
                reason="enrichment is missing or older than "
                f"{STALE_ENRICHMENT.days} days; new contacts or assets may change the plan",
                priority=2,
            )
        )
    if "payment_plan_lapsed" in codes:
        recs.append(
            RecommendedAction(
                action="contact_debtor",
                reason="installments have stopped; call before the plan is declared in default",
                priority=2,
            )
        )
    if "judgment_not_active" in codes:
        recs.append(
            RecommendedAction(
                action="verify_judgment_status",
                reason="the judgment is not active; confirm with the court before any device",
                priority=1,
            )
        )
    if "plaintiff_unreachable" not in codes and ctx.plaintiff.status in ("new", "no_answer"):
        recs.append(
            RecommendedAction(
                action="plaintiff_outreach",
                reason=f"plaintiff status is {ctx.plaintiff.status}; confirm engagement",
                priority=3,
            )
        )
    return sorted(recs, key=lambda r: r.priority)


def _summary(ctx: CaseContext) -> str:
    c, j = ctx.case, ctx.judgment
    where = ", ".join(x for x in (j.county, j.state) if x) or "court unknown"
    tier = c.tier or "unscored"
    score = f" (score {c.collectability_score})" if c.collectability_score is not None else ""
    parts = [
        f"{j.debtor_name} owes {_money(c.current_balance)} of a {_money(j.judgment_amount)}"
        f" judgment for {ctx.plaintiff.name}"
        + (f", case {j.case_number}" if j.case_number else "")
        + f" ({where}).",
    ]
    if c.closed_at is not None:
        parts.append(f"Closed as {c.closure_reason} on {c.closed_at:%Y-%m-%d}.")
    else:
        parts.append(f"{tier}{score}; {_days_in_stage(ctx)} days in {c.stage}.")
    if ctx.open_actions:
        parts.append(
            "Open: " + ", ".join(f"{a.action_type} ({a.status})" for a in ctx.open_actions) + "."
        )
    if ctx.payments:
        total = sum((p.amount for p in ctx.payments), Decimal(0))
        parts.append(f"{len(ctx.payments)} payment(s) received, {_money(total)} in total.")
    hints = sorted(ctx.plan_input.hints)
    if hints:
        parts.append("Known assets: " + ", ".join(hints) + ".")
    return " ".join(parts)


def risk_flags(ctx: CaseContext) -> list[RiskFlag]:
    """Every risk rule that applies, in table order (most severe first)."""
    return [
        RiskFlag(code=r.code, severity=r.severity, detail=r.detail(ctx))
        for r in RISK_RULES
        if r.applies(ctx)
    ]


def rules_brief(ctx: CaseContext) -> Brief:
    """The deterministic brief for a case."""
    flags = risk_flags(ctx)
    return Brief(
        summary=_summary(ctx),
        risk_flags=flags,
        recommended_actions=_recommendations(ctx, flags),
        inputs_used=ctx.inputs_used(),
    )
