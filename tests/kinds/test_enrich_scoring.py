"""The collectability model: bounded, monotone in every input, deterministic."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.enrich.scoring import (
    DIRECTIONS,
    WEIGHTS,
    ScoreBreakdown,
    ScoringInputs,
    Weights,
    score,
    summarize,
)

_FIELD_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {}
for _name, _field in ScoringInputs.model_fields.items():
    annotation = _field.annotation
    if annotation is bool:
        _FIELD_STRATEGIES[_name] = st.booleans()
    elif annotation is int:
        _FIELD_STRATEGIES[_name] = st.integers(min_value=0, max_value=10_000)
    elif _name in ("identity_confidence", "best_contact_confidence"):
        _FIELD_STRATEGIES[_name] = st.floats(min_value=0, max_value=1)
    elif _name == "judgment_age_years":
        _FIELD_STRATEGIES[_name] = st.none() | st.floats(min_value=0, max_value=200)
    else:
        _FIELD_STRATEGIES[_name] = st.floats(min_value=0, max_value=1e12)

inputs = st.fixed_dictionaries(_FIELD_STRATEGIES).map(lambda d: ScoringInputs(**d))

_COMPONENTS = (
    "identity",
    "contactability",
    "asset",
    "recency_amount",
    "adverse_penalty",
    "collectability",
)


def test_every_input_has_a_direction() -> None:
    assert set(DIRECTIONS) == set(ScoringInputs.model_fields)


@settings(max_examples=300)
@given(inputs)
def test_every_component_is_within_0_and_100(x: ScoringInputs) -> None:
    result = score(x)
    for name in _COMPONENTS:
        value = getattr(result, name)
        assert Decimal(0) <= value <= Decimal(100), (name, value)
        assert value == value.quantize(Decimal("0.01"))


def _bumped(x: ScoringInputs, name: str, data: st.DataObject) -> ScoringInputs:
    """x with one input moved in its "more of it" direction (never less)."""
    current = getattr(x, name)
    if isinstance(current, bool):
        return x.model_copy(update={name: True})
    if name == "judgment_age_years":
        base = 10.0 if current is None else current  # None means "unknown", scored as 10y
        grow = data.draw(st.floats(min_value=0, max_value=100), label="grow")
        return x.model_copy(update={name: base + grow})
    if isinstance(current, int):
        grow_int = data.draw(st.integers(min_value=0, max_value=10), label="grow")
        return x.model_copy(update={name: current + grow_int})
    upper = 1.0 if name in ("identity_confidence", "best_contact_confidence") else current + 1e9
    bigger = data.draw(st.floats(min_value=current, max_value=upper), label="bigger")
    return x.model_copy(update={name: bigger})


@settings(max_examples=500)
@given(inputs, st.sampled_from(sorted(DIRECTIONS)), st.data())
def test_collectability_is_monotone_in_each_input(
    x: ScoringInputs, name: str, data: st.DataObject
) -> None:
    if name == "judgment_age_years" and x.judgment_age_years is None:
        x = x.model_copy(update={name: WEIGHTS.unknown_age_years})
    y = _bumped(x, name, data)
    before, after = score(x).collectability, score(y).collectability
    if DIRECTIONS[name] > 0:
        assert after >= before, (name, getattr(x, name), getattr(y, name))
    else:
        assert after <= before, (name, getattr(x, name), getattr(y, name))


@given(inputs)
def test_scoring_is_deterministic(x: ScoringInputs) -> None:
    again = ScoringInputs.model_validate_json(x.model_dump_json())
    assert score(x) == score(again)


def test_the_best_case_scores_high_and_an_empty_one_low() -> None:
    best = ScoringInputs(
        debtor_entity_linked=True,
        debtor_tax_id_last4=True,
        debtor_birth_year=True,
        debtor_address=True,
        identity_confidence=1,
        phones=2,
        emails=2,
        addresses=1,
        verified_contacts=3,
        best_contact_confidence=1,
        banks=2,
        employers=1,
        real_properties=1,
        vehicles=2,
        other_assets=2,
        asset_value=200_000,
        judgment_age_years=0,
        balance_due=100_000,
    )
    assert score(best).collectability == Decimal("100.00")
    empty = score(ScoringInputs())
    assert empty.collectability < Decimal(25)  # tier3


def test_an_inactive_judgment_scores_zero() -> None:
    x = ScoringInputs(banks=2, employers=1, phones=2, balance_due=50_000, judgment_inactive=True)
    assert score(x).collectability == Decimal("0.00")
    assert score(x).adverse_penalty == Decimal("100.00")


def test_the_weights_must_add_up() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        Weights(asset=0.5)
    with pytest.raises(ValueError, match="identity points"):
        Weights(id_tax_id_last4=30)


def test_a_worked_example_matches_docs_scoring_md() -> None:
    """The example in docs/scoring.md, to the cent."""
    x = ScoringInputs(
        debtor_entity_linked=True,
        debtor_tax_id_last4=True,
        identity_confidence=0.8,
        phones=1,
        emails=1,
        best_contact_confidence=0.9,
        banks=1,
        employers=1,
        asset_value=0,
        judgment_age_years=2.0,
        balance_due=25_000,
        other_judgments=1,
    )
    assert score(x) == ScoreBreakdown(
        identity=Decimal("65.00"),
        contactability=Decimal("39.00"),
        asset=Decimal("50.00"),
        recency_amount=Decimal("74.00"),
        adverse_penalty=Decimal("5.00"),
        collectability=Decimal("52.30"),
    )
    text = summarize(x, score(x))
    assert "52.30" in text
    assert "1 bank" in text
