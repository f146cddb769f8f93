"""The enforcement planner: one pure rule table that picks a case's next step.

Input is a :class:`PlanInput` (tier, asset hints, stage, open and finished
actions, an optional requested action); output is a :class:`Plan` naming the
rule that matched, the step to take, the stage to move to and when the case
should resurface. Nothing here touches the database or the clock: the handler
(``workers.enforce.handler``) reads the input and carries the plan out through
the enforcement RPCs.

The rules are evaluated top to bottom and the first match wins. Every row of
:data:`RULES` is documented in ``docs/enforcement-playbook.md`` and carries an
``example`` input that the test suite feeds back through :func:`plan` to prove
the row is reachable and matches first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Tier = Literal["tier0", "tier1", "tier2", "tier3"]
ActionType = Literal["bank_levy", "garnishment", "subpoena", "marshal"]
"""The ``enforcement_actions.action_type`` values."""

ACTION_TYPES: tuple[ActionType, ...] = ("bank_levy", "garnishment", "subpoena", "marshal")


class Step(StrEnum):
    """What the handler does for a plan."""

    NONE = "none"
    """Nothing: the case is closed. ``next_action_at`` is left alone."""
    WAIT = "wait"
    """No new work; only push ``next_action_at`` out (monitor what is in flight)."""
    ASSET_SEARCH = "asset_search"
    """Move to the asset_search stage and log ``asset_search_requested``."""
    SUBPOENA = "subpoena"
    """``issue_subpoena`` (an information subpoena with restraining notice)."""
    BANK_LEVY = "bank_levy"
    """``queue_enforcement_action`` bank_levy."""
    GARNISHMENT = "garnishment"
    """``queue_enforcement_action`` garnishment (income execution)."""
    MARSHAL = "marshal"
    """``queue_enforcement_action`` marshal (property execution)."""
    UNCOLLECTIBLE_REVIEW = "uncollectible_review"
    """Log ``review_scheduled`` so Ops decides whether to close as uncollectible."""


RequestedStep = Literal["asset_search", "subpoena", "bank_levy", "garnishment", "marshal"]
"""Steps an operator may request explicitly in the job payload."""

# The stage ladder of enforcement_stage_lookup (ordinal, SLA days). The planner needs
# both to keep stages moving forward and to bound follow-ups; a database test checks
# this copy against the lookup table so the two never drift.
LADDER: dict[str, tuple[int, int | None]] = {
    "pre_enforcement": (10, 14),
    "asset_search": (20, 21),
    "information_subpoena": (30, 30),
    "bank_levy": (40, 30),
    "wage_garnishment": (50, 30),
    "marshal_execution": (60, 45),
    "payment_plan": (70, 30),
    "satisfied": (90, None),
    "uncollectible": (91, None),
    "withdrawn": (92, None),
}

# How often a case of each tier is looked at again, at most: better tiers get
# attention sooner. An unscored case is looked at like a tier1 case (it is new
# and enrichment is about to tell us more).
TIER_CADENCE_DAYS: dict[Tier | None, int] = {
    "tier0": 7,
    "tier1": 14,
    "tier2": 21,
    "tier3": 30,
    None: 14,
}

# Asset hints that point to property a marshal can execute against.
PROPERTY_HINTS: frozenset[str] = frozenset({"real_property", "vehicle"})

# Stage each step moves the case to (only ever forward on the ladder).
STEP_STAGE: dict[Step, str] = {
    Step.ASSET_SEARCH: "asset_search",
    Step.SUBPOENA: "information_subpoena",
    Step.BANK_LEVY: "bank_levy",
    Step.GARNISHMENT: "wage_garnishment",
    Step.MARSHAL: "marshal_execution",
}

# enforcement_actions.action_type each action step opens.
STEP_ACTION: dict[Step, ActionType] = {
    Step.SUBPOENA: "subpoena",
    Step.BANK_LEVY: "bank_levy",
    Step.GARNISHMENT: "garnishment",
    Step.MARSHAL: "marshal",
}


class PlanInput(BaseModel):
    """Everything the planner looks at, read by the handler in the job's transaction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: str = Field(description="enforcement_cases.current_stage")
    closed: bool = False
    tier: Tier | None = Field(
        default=None, description="Effective tier: a live tier_override, else tier."
    )
    hints: frozenset[str] = Field(
        default=frozenset(),
        description="Asset kinds known for the debtor (bank, employer, real_property, vehicle):"
        " truthy asset_flags plus the asset types stored by enrichment.",
    )
    open_actions: frozenset[ActionType] = frozenset()
    tried_actions: frozenset[ActionType] = Field(
        default=frozenset(), description="Action types that were opened and have since closed."
    )
    review_pending: bool = Field(
        default=False,
        description="An uncollectible review was scheduled since the case entered its stage.",
    )
    requested: RequestedStep | None = Field(
        default=None, description="A step an operator asked for explicitly."
    )


class Plan(BaseModel):
    """The planner's decision."""

    model_config = ConfigDict(frozen=True)

    rule: str
    step: Step
    reason: str
    stage: str | None = Field(
        default=None, description="Stage to move to; None keeps the current stage."
    )
    follow_up_days: int | None = Field(
        default=None, description="Days until next_action_at; None leaves it alone."
    )

    @property
    def action_type(self) -> ActionType | None:
        return STEP_ACTION.get(self.step)


@dataclass(frozen=True)
class Rule:
    """One row of the rule table."""

    id: str
    when: str
    """The condition, in words (the playbook repeats it)."""
    step: Step | None
    """The step taken; None when the step is computed (operator requests)."""
    matches: Callable[[PlanInput], bool]
    decide: Callable[[PlanInput], Step]
    example: PlanInput
    """An input this rule matches first (the tests check it)."""


def _ordinal(stage: str) -> int:
    return LADDER.get(stage, (0, None))[0]


def _sla(stage: str) -> int | None:
    return LADDER.get(stage, (0, None))[1]


def _active(inp: PlanInput) -> frozenset[ActionType]:
    return inp.open_actions


def _unused(inp: PlanInput, action: ActionType) -> bool:
    return action not in inp.open_actions and action not in inp.tried_actions


def _requested_is_open(inp: PlanInput) -> bool:
    req = inp.requested
    return req is not None and req in ACTION_TYPES and req in inp.open_actions


def _requested_step(inp: PlanInput) -> Step:
    assert inp.requested is not None
    return Step(inp.requested)


def _const(step: Step) -> Callable[[PlanInput], Step]:
    return lambda _inp: step


def _exhausted_property_or_good_tier(inp: PlanInput) -> bool:
    return _unused(inp, "marshal") and (
        bool(inp.hints & PROPERTY_HINTS) or inp.tier in ("tier0", "tier1")
    )


RULES: tuple[Rule, ...] = (
    Rule(
        id="closed",
        when="the case is closed",
        step=Step.NONE,
        matches=lambda i: i.closed,
        decide=_const(Step.NONE),
        example=PlanInput(stage="satisfied", closed=True, hints=frozenset({"bank"})),
    ),
    Rule(
        id="requested_already_open",
        when="an operator requested an action that is already open",
        step=Step.WAIT,
        matches=_requested_is_open,
        decide=_const(Step.WAIT),
        example=PlanInput(
            stage="bank_levy", requested="bank_levy", open_actions=frozenset({"bank_levy"})
        ),
    ),
    Rule(
        id="requested",
        when="an operator requested a step",
        step=None,
        matches=lambda i: i.requested is not None,
        decide=_requested_step,
        example=PlanInput(stage="pre_enforcement", tier="tier3", requested="marshal"),
    ),
    Rule(
        id="payment_plan",
        when="the debtor is paying under a payment plan",
        step=Step.WAIT,
        matches=lambda i: i.stage == "payment_plan",
        decide=_const(Step.WAIT),
        example=PlanInput(stage="payment_plan", tier="tier0", hints=frozenset({"bank"})),
    ),
    Rule(
        id="action_in_flight",
        when="a levy, garnishment, subpoena or marshal execution is open",
        step=Step.WAIT,
        matches=lambda i: bool(_active(i)),
        decide=_const(Step.WAIT),
        example=PlanInput(
            stage="bank_levy",
            tier="tier0",
            hints=frozenset({"bank", "employer"}),
            open_actions=frozenset({"bank_levy"}),
        ),
    ),
    Rule(
        id="bank_hint",
        when="a bank account is known and no bank levy has been tried",
        step=Step.BANK_LEVY,
        matches=lambda i: "bank" in i.hints and _unused(i, "bank_levy"),
        decide=_const(Step.BANK_LEVY),
        example=PlanInput(stage="pre_enforcement", tier="tier1", hints=frozenset({"bank"})),
    ),
    Rule(
        id="employer_hint",
        when="an employer is known and no garnishment has been tried",
        step=Step.GARNISHMENT,
        matches=lambda i: "employer" in i.hints and _unused(i, "garnishment"),
        decide=_const(Step.GARNISHMENT),
        example=PlanInput(
            stage="bank_levy",
            tier="tier1",
            hints=frozenset({"bank", "employer"}),
            tried_actions=frozenset({"bank_levy"}),
        ),
    ),
    Rule(
        id="asset_search",
        when="nothing usable is known and the case has not left pre_enforcement",
        step=Step.ASSET_SEARCH,
        matches=lambda i: _ordinal(i.stage) < _ordinal("asset_search"),
        decide=_const(Step.ASSET_SEARCH),
        example=PlanInput(stage="pre_enforcement", tier="tier2"),
    ),
    Rule(
        id="information_subpoena",
        when="the asset search found nothing usable and no subpoena has been tried",
        step=Step.SUBPOENA,
        matches=lambda i: _unused(i, "subpoena"),
        decide=_const(Step.SUBPOENA),
        example=PlanInput(stage="asset_search", tier="tier2"),
    ),
    Rule(
        id="marshal",
        when="devices are exhausted and property is known or the tier is tier0/tier1",
        step=Step.MARSHAL,
        matches=_exhausted_property_or_good_tier,
        decide=_const(Step.MARSHAL),
        example=PlanInput(
            stage="information_subpoena",
            tier="tier3",
            hints=frozenset({"vehicle"}),
            tried_actions=frozenset({"subpoena"}),
        ),
    ),
    Rule(
        id="review_pending",
        when="everything is exhausted and an uncollectible review is already scheduled",
        step=Step.WAIT,
        matches=lambda i: i.review_pending,
        decide=_const(Step.WAIT),
        example=PlanInput(
            stage="information_subpoena",
            tier="tier3",
            tried_actions=frozenset({"subpoena"}),
            review_pending=True,
        ),
    ),
    Rule(
        id="uncollectible_review",
        when="everything is exhausted",
        step=Step.UNCOLLECTIBLE_REVIEW,
        matches=lambda _i: True,
        decide=_const(Step.UNCOLLECTIBLE_REVIEW),
        example=PlanInput(
            stage="information_subpoena", tier="tier2", tried_actions=frozenset({"subpoena"})
        ),
    ),
)
"""The rule table, first match wins. Keep docs/enforcement-playbook.md in step."""

_REASONS: dict[str, str] = {
    "closed": "case is closed; nothing to plan",
    "requested_already_open": "requested {step} is already open; monitoring it",
    "requested": "operator requested {step}",
    "payment_plan": "debtor is on a payment plan; monitoring installments",
    "action_in_flight": "{open} in flight; monitoring",
    "bank_hint": "bank account known; bank levy",
    "employer_hint": "employer known; wage garnishment",
    "asset_search": "no bank, employer or property known; asset search",
    "information_subpoena": "asset search found nothing usable; information subpoena",
    "marshal": "devices exhausted; {why}; marshal execution",
    "review_pending": "devices exhausted; uncollectible review already scheduled",
    "uncollectible_review": "devices exhausted; uncollectible review",
}


def _reason(rule: Rule, inp: PlanInput, step: Step) -> str:
    why = (
        "property known (" + ", ".join(sorted(inp.hints & PROPERTY_HINTS)) + ")"
        if inp.hints & PROPERTY_HINTS
        else f"{inp.tier} case"
    )
    return _REASONS[rule.id].format(
        step=step.value, open=", ".join(sorted(inp.open_actions)) or "nothing", why=why
    )


def _target_stage(current: str, step: Step) -> str | None:
    target = STEP_STAGE.get(step)
    if target is None or _ordinal(target) <= _ordinal(current):
        return None
    return target


def _follow_up(inp: PlanInput, step: Step, stage: str | None) -> int | None:
    if step is Step.NONE:
        return None
    cadence = TIER_CADENCE_DAYS[inp.tier]
    sla = _sla(stage or inp.stage)
    return min(cadence, sla) if sla is not None else cadence


def plan(inp: PlanInput) -> Plan:
    """The next step for a case: the first rule of :data:`RULES` that matches."""
    for rule in RULES:
        if rule.matches(inp):
            step = rule.decide(inp)
            stage = _target_stage(inp.stage, step)
            return Plan(
                rule=rule.id,
                step=step,
                reason=_reason(rule, inp, step),
                stage=stage,
                follow_up_days=_follow_up(inp, step, stage),
            )
    raise AssertionError("the last rule matches everything")  # pragma: no cover
