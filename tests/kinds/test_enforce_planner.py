"""The enforce planner's rule table, row by row (pure; no database)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.enforce.planner import (
    ACTION_TYPES,
    LADDER,
    RULES,
    STEP_STAGE,
    TIER_CADENCE_DAYS,
    PlanInput,
    Rule,
    Step,
    plan,
)

PLAYBOOK = Path(__file__).resolve().parents[2] / "docs" / "enforcement-playbook.md"


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_each_rule_matches_its_example_first(rule: Rule) -> None:
    decided = plan(rule.example)
    assert decided.rule == rule.id
    if rule.step is not None:
        assert decided.step is rule.step


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_each_rule_is_documented_in_the_playbook(rule: Rule) -> None:
    text = PLAYBOOK.read_text()
    assert re.search(rf"^\|\s*\d+\s*\|\s*`{re.escape(rule.id)}`\s*\|", text, re.M), rule.id


def test_rule_ids_are_unique_and_the_last_rule_catches_all() -> None:
    assert len({r.id for r in RULES}) == len(RULES)
    assert RULES[-1].matches(PlanInput(stage="pre_enforcement"))


# --- the rows as scenarios -------------------------------------------------------------


@pytest.mark.parametrize(
    ("inp", "rule", "step", "stage"),
    [
        # bank hint -> bank levy, stage moves forward
        (
            PlanInput(stage="pre_enforcement", tier="tier0", hints=frozenset({"bank"})),
            "bank_hint",
            Step.BANK_LEVY,
            "bank_levy",
        ),
        # employer hint -> garnishment
        (
            PlanInput(stage="asset_search", tier="tier1", hints=frozenset({"employer"})),
            "employer_hint",
            Step.GARNISHMENT,
            "wage_garnishment",
        ),
        # bank first when both are known
        (
            PlanInput(stage="pre_enforcement", hints=frozenset({"bank", "employer"})),
            "bank_hint",
            Step.BANK_LEVY,
            "bank_levy",
        ),
        # nothing known -> asset search, then subpoena
        (
            PlanInput(stage="pre_enforcement", tier="tier3"),
            "asset_search",
            Step.ASSET_SEARCH,
            "asset_search",
        ),
        (
            PlanInput(stage="asset_search", tier="tier3"),
            "information_subpoena",
            Step.SUBPOENA,
            "information_subpoena",
        ),
        # bank levy tried, nothing else -> subpoena for more accounts
        (
            PlanInput(
                stage="bank_levy", hints=frozenset({"bank"}), tried_actions=frozenset({"bank_levy"})
            ),
            "information_subpoena",
            Step.SUBPOENA,
            None,
        ),
        # exhausted: good tier -> marshal; bad tier, no property -> uncollectible review
        (
            PlanInput(
                stage="information_subpoena", tier="tier0", tried_actions=frozenset({"subpoena"})
            ),
            "marshal",
            Step.MARSHAL,
            "marshal_execution",
        ),
        (
            PlanInput(
                stage="information_subpoena", tier="tier3", tried_actions=frozenset({"subpoena"})
            ),
            "uncollectible_review",
            Step.UNCOLLECTIBLE_REVIEW,
            None,
        ),
        (
            PlanInput(
                stage="marshal_execution",
                tier="tier0",
                tried_actions=frozenset({"subpoena", "marshal"}),
            ),
            "uncollectible_review",
            Step.UNCOLLECTIBLE_REVIEW,
            None,
        ),
        # stage never moves backwards: a levy in the garnishment stage keeps the stage
        (
            PlanInput(
                stage="wage_garnishment",
                hints=frozenset({"bank", "employer"}),
                tried_actions=frozenset({"garnishment"}),
            ),
            "bank_hint",
            Step.BANK_LEVY,
            None,
        ),
        # operator request wins over the table, unless already open
        (
            PlanInput(stage="pre_enforcement", hints=frozenset({"bank"}), requested="subpoena"),
            "requested",
            Step.SUBPOENA,
            "information_subpoena",
        ),
        (
            PlanInput(
                stage="information_subpoena",
                requested="subpoena",
                open_actions=frozenset({"subpoena"}),
            ),
            "requested_already_open",
            Step.WAIT,
            None,
        ),
        # closed cases are left alone even when asked
        (
            PlanInput(stage="uncollectible", closed=True, requested="bank_levy"),
            "closed",
            Step.NONE,
            None,
        ),
    ],
)
def test_scenarios(inp: PlanInput, rule: str, step: Step, stage: str | None) -> None:
    decided = plan(inp)
    assert (decided.rule, decided.step, decided.stage) == (rule, step, stage)
    assert decided.reason


def test_follow_up_is_bounded_by_tier_cadence_and_stage_sla() -> None:
    tier0 = plan(PlanInput(stage="pre_enforcement", tier="tier0", hints=frozenset({"bank"})))
    assert tier0.follow_up_days == 7
    tier3 = plan(PlanInput(stage="pre_enforcement", tier="tier3"))
    assert tier3.follow_up_days == 21  # asset_search SLA (21) < tier3 cadence (30)
    closed = plan(PlanInput(stage="satisfied", closed=True))
    assert closed.follow_up_days is None


_inputs = st.builds(
    PlanInput,
    stage=st.sampled_from(sorted(s for s, (_o, sla) in LADDER.items() if sla is not None)),
    closed=st.just(False),
    tier=st.sampled_from([None, "tier0", "tier1", "tier2", "tier3"]),
    hints=st.frozensets(st.sampled_from(["bank", "employer", "real_property", "vehicle"])),
    open_actions=st.frozensets(st.sampled_from(ACTION_TYPES)),
    tried_actions=st.frozensets(st.sampled_from(ACTION_TYPES)),
    review_pending=st.booleans(),
    requested=st.sampled_from(
        [None, "asset_search", "subpoena", "bank_levy", "garnishment", "marshal"]
    ),
)


@given(_inputs)
def test_plan_never_opens_an_action_that_is_already_open(inp: PlanInput) -> None:
    decided = plan(inp)
    if decided.action_type is not None:
        assert decided.action_type not in inp.open_actions
    if decided.stage is not None:
        assert LADDER[decided.stage][0] > LADDER[inp.stage][0]
        assert decided.stage == STEP_STAGE[decided.step]
    assert decided.follow_up_days is not None
    assert 1 <= decided.follow_up_days <= max(TIER_CADENCE_DAYS.values())


@given(_inputs)
def test_plan_is_deterministic(inp: PlanInput) -> None:
    assert plan(inp) == plan(inp)
