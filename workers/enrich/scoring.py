"""The collectability model: a deterministic, pure function of a case's facts.

Five components, each 0-100, and one number 0-100 (higher = more collectable):

    base           = sum of weight_c * component_c   (identity, contactability,
                                                     asset, recency/amount)
    collectability = base * (1 - adverse_penalty / 100)

Every constant of the model lives in ``WEIGHTS`` (one frozen ``Weights``); nothing
else in the code base holds a scoring number. ``docs/scoring.md`` explains each one.

Properties the tests check with Hypothesis: every component and the total stay
within 0-100, and the total is monotone in each input — never lower when a
"good" input grows (one more bank account, a verified phone, a higher balance),
never higher when a "bad" one grows (an older judgment, a bankruptcy). The
direction of each input is ``DIRECTIONS``. Rounding to two decimals (the
``numeric(5,2)`` columns) happens last and is itself monotone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

_CENT: Final = Decimal("0.01")


@dataclass(frozen=True)
class Weights:
    """Every constant of the scoring model. Change them here and in docs/scoring.md."""

    # --- how the components combine (must sum to 1) ---
    identity: float = 0.20
    contactability: float = 0.25
    asset: float = 0.35
    recency_amount: float = 0.20

    # --- identity: points out of 100 (they sum to 100) ---
    id_entity_linked: float = 20.0  # the debtor is a normalized entity, not just a name
    id_tax_id_last4: float = 25.0  # last four of SSN/EIN known
    id_birth_year: float = 15.0  # birth year known (persons)
    id_address: float = 15.0  # a postal address for the debtor
    id_vendor_match: float = 25.0  # times the vendor's identity-match confidence (0-1)

    # --- contactability: points per item, capped item counts (maxima sum to 100) ---
    phone_points: float = 20.0
    phone_cap: int = 2
    email_points: float = 10.0
    email_cap: int = 2
    address_points: float = 15.0
    address_cap: int = 1
    verified_points: float = 5.0
    verified_cap: int = 3
    contact_confidence_points: float = 10.0  # times best contact confidence (0-1)

    # --- assets: points per item, capped counts, plus value; total capped at 100 ---
    bank_points: float = 20.0
    bank_cap: int = 2
    employer_points: float = 30.0
    employer_cap: int = 1
    real_property_points: float = 15.0
    real_property_cap: int = 1
    vehicle_points: float = 5.0
    vehicle_cap: int = 2
    other_asset_points: float = 2.0
    other_asset_cap: int = 2
    asset_value_points: float = 20.0  # reached at asset_value_full estimated value
    asset_value_full: float = 100_000.0

    # --- recency / amount (maxima sum to 100) ---
    recency_points: float = 60.0  # a judgment entered today
    recency_horizon_years: float = 20.0  # ... falling linearly to 0 at this age
    unknown_age_years: float = 10.0  # age assumed when the judgment date is unknown
    amount_points: float = 40.0  # times sqrt(balance / amount_full), capped at 1
    amount_full: float = 100_000.0

    # --- adverse penalty: points, total capped at 100 ---
    inactive_judgment_penalty: float = 100.0  # satisfied, vacated or expired: nothing to collect
    deceased_penalty: float = 80.0
    bankruptcy_penalty: float = 60.0
    other_judgment_penalty: float = 5.0  # per other active judgment against the same debtor
    other_judgment_cap: int = 4

    def __post_init__(self) -> None:
        total = self.identity + self.contactability + self.asset + self.recency_amount
        if not math.isclose(total, 1.0):
            raise ValueError(f"component weights must sum to 1, got {total}")
        identity_max = (
            self.id_entity_linked
            + self.id_tax_id_last4
            + self.id_birth_year
            + self.id_address
            + self.id_vendor_match
        )
        if not math.isclose(identity_max, 100.0):
            raise ValueError(f"identity points must sum to 100, got {identity_max}")
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ValueError(f"weight {f.name} must not be negative")


WEIGHTS: Final = Weights()


class ScoringInputs(BaseModel):
    """The facts the model scores, as read from the database for one case."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # identity
    debtor_entity_linked: bool = False
    debtor_tax_id_last4: bool = False
    debtor_birth_year: bool = False
    debtor_address: bool = False
    identity_confidence: float = Field(default=0.0, ge=0, le=1)
    # contactability (distinct stored contacts)
    phones: int = Field(default=0, ge=0)
    emails: int = Field(default=0, ge=0)
    addresses: int = Field(default=0, ge=0)
    verified_contacts: int = Field(default=0, ge=0)
    best_contact_confidence: float = Field(default=0.0, ge=0, le=1)
    # assets (distinct stored assets)
    banks: int = Field(default=0, ge=0)
    employers: int = Field(default=0, ge=0)
    real_properties: int = Field(default=0, ge=0)
    vehicles: int = Field(default=0, ge=0)
    other_assets: int = Field(default=0, ge=0)
    asset_value: float = Field(default=0.0, ge=0)
    # recency / amount
    judgment_age_years: float | None = Field(default=None, ge=0)
    balance_due: float = Field(default=0.0, ge=0)
    # adverse
    judgment_inactive: bool = False
    deceased: bool = False
    bankruptcy: bool = False
    other_judgments: int = Field(default=0, ge=0)


# +1: more of it never lowers the score; -1: more of it never raises it.
DIRECTIONS: Final[dict[str, int]] = {
    "debtor_entity_linked": 1,
    "debtor_tax_id_last4": 1,
    "debtor_birth_year": 1,
    "debtor_address": 1,
    "identity_confidence": 1,
    "phones": 1,
    "emails": 1,
    "addresses": 1,
    "verified_contacts": 1,
    "best_contact_confidence": 1,
    "banks": 1,
    "employers": 1,
    "real_properties": 1,
    "vehicles": 1,
    "other_assets": 1,
    "asset_value": 1,
    "judgment_age_years": -1,
    "balance_due": 1,
    "judgment_inactive": -1,
    "deceased": -1,
    "bankruptcy": -1,
    "other_judgments": -1,
}


class ScoreBreakdown(BaseModel):
    """The model's output, rounded to the two decimals the database stores."""

    model_config = ConfigDict(frozen=True)

    identity: Decimal
    contactability: Decimal
    asset: Decimal
    recency_amount: Decimal
    adverse_penalty: Decimal
    collectability: Decimal


def _capped(count: int, cap: int, points: float) -> float:
    return min(count, cap) * points


def _clamp100(value: float) -> float:
    return min(100.0, max(0.0, value))


def _round(value: float) -> Decimal:
    return Decimal(value).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def identity_score(x: ScoringInputs, w: Weights = WEIGHTS) -> float:
    points = (
        w.id_entity_linked * x.debtor_entity_linked
        + w.id_tax_id_last4 * x.debtor_tax_id_last4
        + w.id_birth_year * x.debtor_birth_year
        + w.id_address * x.debtor_address
        + w.id_vendor_match * x.identity_confidence
    )
    return _clamp100(points)


def contactability_score(x: ScoringInputs, w: Weights = WEIGHTS) -> float:
    points = (
        _capped(x.phones, w.phone_cap, w.phone_points)
        + _capped(x.emails, w.email_cap, w.email_points)
        + _capped(x.addresses, w.address_cap, w.address_points)
        + _capped(x.verified_contacts, w.verified_cap, w.verified_points)
        + w.contact_confidence_points * x.best_contact_confidence
    )
    return _clamp100(points)


def asset_score(x: ScoringInputs, w: Weights = WEIGHTS) -> float:
    points = (
        _capped(x.banks, w.bank_cap, w.bank_points)
        + _capped(x.employers, w.employer_cap, w.employer_points)
        + _capped(x.real_properties, w.real_property_cap, w.real_property_points)
        + _capped(x.vehicles, w.vehicle_cap, w.vehicle_points)
        + _capped(x.other_assets, w.other_asset_cap, w.other_asset_points)
        + w.asset_value_points * min(1.0, x.asset_value / w.asset_value_full)
    )
    return _clamp100(points)


def recency_amount_score(x: ScoringInputs, w: Weights = WEIGHTS) -> float:
    age = w.unknown_age_years if x.judgment_age_years is None else x.judgment_age_years
    recency = w.recency_points * max(0.0, 1.0 - age / w.recency_horizon_years)
    amount = w.amount_points * min(1.0, math.sqrt(x.balance_due / w.amount_full))
    return _clamp100(recency + amount)


def adverse_penalty(x: ScoringInputs, w: Weights = WEIGHTS) -> float:
    points = (
        w.inactive_judgment_penalty * x.judgment_inactive
        + w.deceased_penalty * x.deceased
        + w.bankruptcy_penalty * x.bankruptcy
        + _capped(x.other_judgments, w.other_judgment_cap, w.other_judgment_penalty)
    )
    return _clamp100(points)


def score(x: ScoringInputs, w: Weights = WEIGHTS) -> ScoreBreakdown:
    """Score one case. Pure and deterministic: same inputs, same breakdown."""
    identity = identity_score(x, w)
    contact = contactability_score(x, w)
    asset = asset_score(x, w)
    recency = recency_amount_score(x, w)
    penalty = adverse_penalty(x, w)
    base = (
        w.identity * identity
        + w.contactability * contact
        + w.asset * asset
        + w.recency_amount * recency
    )
    total = _clamp100(base * (1.0 - penalty / 100.0))
    return ScoreBreakdown(
        identity=_round(identity),
        contactability=_round(contact),
        asset=_round(asset),
        recency_amount=_round(recency),
        adverse_penalty=_round(penalty),
        collectability=_round(total),
    )


def summarize(x: ScoringInputs, s: ScoreBreakdown) -> str:
    """One line for judgments.cases.enrichment_summary: what the score rests on."""
    contacts = f"{x.phones} phone, {x.emails} email, {x.addresses} address"
    assets = (
        f"{x.banks} bank, {x.employers} employer, {x.real_properties} property, "
        f"{x.vehicles} vehicle, {x.other_assets} other"
    )
    age = "unknown age" if x.judgment_age_years is None else f"{x.judgment_age_years:.1f}y old"
    adverse = [
        name
        for name, flag in (
            ("inactive judgment", x.judgment_inactive),
            ("deceased", x.deceased),
            ("bankruptcy", x.bankruptcy),
        )
        if flag
    ]
    if x.other_judgments:
        adverse.append(f"{x.other_judgments} other judgments")
    return (
        f"collectability {s.collectability}: identity {s.identity}, contacts {s.contactability} "
        f"({contacts}), assets {s.asset} ({assets}), recency/amount {s.recency_amount} "
        f"({age}, balance {x.balance_due:,.2f}), penalty {s.adverse_penalty}"
        f" ({', '.join(adverse) or 'none'})"
    )
