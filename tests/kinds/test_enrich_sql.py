"""enrichment.prepare_scoring / record_case_scores and the enrich migration's rights."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.kinds.enrich_outreach_support import RICH_BUNDLE, make_case, open_enforcement_case
from workers.enrich.bundle import EnrichmentBundle
from workers.enrich.scoring import ScoringInputs

Conn = psycopg.Connection[Any]


def _prepare(db: Conn, case_id: uuid.UUID, bundle: Any = None, lock: bool = True) -> Any:
    row = db.execute(
        "select enrichment.prepare_scoring(%s, %s, %s)",
        (case_id, Jsonb(bundle) if bundle is not None else None, lock),
    ).fetchone()
    assert row is not None
    return row[0]


def _record(db: Conn, case_id: uuid.UUID, score: float, summary: str = "s") -> Any:
    row = db.execute(
        "select enrichment.record_case_scores(%s, 10, 20, 30, 40, 0, %s, %s)",
        (case_id, Decimal(str(score)), summary),
    ).fetchone()
    assert row is not None
    return row[0]


def test_prepare_scoring_stores_the_bundle_and_returns_model_inputs(db: Conn) -> None:
    ids = make_case(db)
    bundle = EnrichmentBundle.model_validate(RICH_BUNDLE).to_rpc()
    out = _prepare(db, ids["case_id"], bundle)
    assert out["stored"]["inserted"] == 5
    assert out["case"]["case_id"] == str(ids["case_id"])
    assert out["case"]["previous_tier"] is None
    inputs = ScoringInputs.model_validate(out["inputs"])
    assert (inputs.phones, inputs.emails, inputs.addresses, inputs.verified_contacts) == (
        1,
        1,
        1,
        1,
    )
    assert (inputs.banks, inputs.employers) == (1, 1)
    assert inputs.asset_value == 12000
    assert inputs.identity_confidence == pytest.approx(0.85)
    assert inputs.debtor_entity_linked
    assert inputs.debtor_tax_id_last4
    assert inputs.debtor_address
    assert inputs.balance_due == 25000
    assert inputs.judgment_age_years is not None
    assert inputs.judgment_age_years > 0

    again = _prepare(db, ids["case_id"], bundle)
    assert again["stored"]["inserted"] == 0
    assert again["stored"]["updated"] == 0
    assert again["inputs"] == out["inputs"]


def test_signals_are_kept_per_source_and_adverse_ones_count(db: Conn) -> None:
    ids = make_case(db)
    _prepare(db, ids["case_id"], {"source": "a", "signals": {"identity_confidence": 0.4}})
    out = _prepare(
        db, ids["case_id"], {"source": "b", "signals": {"bankruptcy": True, "deceased": False}}
    )
    assert out["inputs"]["identity_confidence"] == pytest.approx(0.4)
    assert out["inputs"]["bankruptcy"] is True
    rows = db.execute(
        "select source from enrichment.case_signals where case_id = %s order by source",
        (ids["case_id"],),
    ).fetchall()
    assert [r[0] for r in rows] == ["a", "b"]


def test_other_active_judgments_against_the_debtor_are_counted(db: Conn) -> None:
    ids = make_case(db)
    db.execute(
        "insert into public.judgments (plaintiff_id, debtor_entity_id, debtor_name,"
        " judgment_amount, balance_due) values (%s, %s, 'same debtor', 100, 100)",
        (ids["plaintiff_id"], ids["entity_id"]),
    )
    assert _prepare(db, ids["case_id"])["inputs"]["other_judgments"] == 1


def test_unknown_case_and_bad_arguments_are_refused(db: Conn) -> None:
    with pytest.raises(psycopg.errors.NoDataFound, match="not found"), db.transaction():
        _prepare(db, uuid.uuid4())
    ids = make_case(db)
    with pytest.raises(psycopg.errors.InvalidParameterValue), db.transaction():
        _prepare(db, ids["case_id"], {"contacts": [{"contact_type": "phone", "value": "x"}]})
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_lock"), db.transaction():
        _prepare(db, ids["case_id"], {"source": "a"}, lock=False)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="between 0"), db.transaction():
        _record(db, ids["case_id"], 101)
    with pytest.raises(psycopg.errors.NoDataFound), db.transaction():
        _record(db, uuid.uuid4(), 50)


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (0, "tier3"),
        (24.99, "tier3"),
        (25, "tier2"),
        (74.99, "tier1"),
        (75, "tier0"),
        (100, "tier0"),
    ],
)
def test_record_case_scores_maps_the_score_through_the_tier_lookup(
    db: Conn, score: float, tier: str
) -> None:
    ids = make_case(db)
    out = _record(db, ids["case_id"], score, "summary text")
    assert out["tier"] == tier
    assert out["tier_changed"] is True
    row = db.execute(
        "select collectability_score, collectability_tier, identity_score, recency_amount_score,"
        " enrichment_summary, last_enriched_at is not null, last_scored_at is not null"
        " from judgments.cases where id = %s",
        (ids["case_id"],),
    ).fetchone()
    assert row == (
        Decimal(str(score)).quantize(Decimal("0.01")),
        tier,
        Decimal("10.00"),
        Decimal("40.00"),
        "summary text",
        True,
        True,
    )
    assert _record(db, ids["case_id"], score)["tier_changed"] is False


def test_the_open_enforcement_case_follows_the_tier(db: Conn) -> None:
    ids = make_case(db)
    _record(db, ids["case_id"], 30)
    enforcement_id = open_enforcement_case(db, ids)
    out = _record(db, ids["case_id"], 80)
    assert out["enforcement_case_id"] == str(enforcement_id)
    assert out["enforcement_previous_tier"] == "tier2"
    assert out["enforcement_tier_changed"] is True
    row = db.execute(
        "select tier, collectability_score, tier_reason from public.enforcement_cases"
        " where id = %s",
        (enforcement_id,),
    ).fetchone()
    assert row == ("tier0", Decimal("80.00"), "collectability 80.00 (enrich)")
    # Same band again: no change to report, so no re-plan.
    assert _record(db, ids["case_id"], 90)["enforcement_tier_changed"] is False


def test_only_service_role_and_the_fleet_may_execute(db: Conn) -> None:
    rows = db.execute(
        """
        select p.proname, r.rolname, has_function_privilege(r.rolname, p.oid, 'execute')
          from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace
          cross join (values ('anon'), ('authenticated'), ('service_role'), ('dragonfly_worker'),
                             ('enforcement_operator')) as r(rolname)
         where n.nspname = 'enrichment' and p.proname in ('prepare_scoring', 'record_case_scores')
        """
    ).fetchall()
    allowed = {(name, role) for name, role, ok in rows if ok}
    assert allowed == {
        (name, role)
        for name in ("prepare_scoring", "record_case_scores")
        for role in ("service_role", "dragonfly_worker")
    }
    rls = db.execute(
        "select relrowsecurity from pg_class where oid = 'enrichment.case_signals'::regclass"
    ).fetchone()
    assert rls == (True,)


def test_the_fleet_role_can_enrich_through_the_functions_alone(db: Conn) -> None:
    ids = make_case(db)
    db.execute("set local role dragonfly_worker")
    out = _prepare(db, ids["case_id"], EnrichmentBundle.model_validate(RICH_BUNDLE).to_rpc())
    assert out["stored"]["inserted"] == 5
    assert _record(db, ids["case_id"], 60)["tier"] == "tier1"
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
        db.execute("select 1 from enrichment.contacts limit 1")
