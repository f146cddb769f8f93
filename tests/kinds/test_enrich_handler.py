"""The enrich handler run directly in a rolled-back transaction, against a loopback vendor."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from tests.kinds.enrich_outreach_support import (
    RICH_BUNDLE,
    FakeVendor,
    make_case,
    open_enforcement_case,
)
from workers.enrich.handler import EnrichResult, plan_key, pull_bundle, run
from workers.enrich.payload import EnrichPayload
from workers.enrich.vendor import HttpEnrichmentVendor, VendorRejected, VendorUnavailable
from workers.runtime import PermanentError, TransientError
from workers.runtime.errors import classify

Conn = psycopg.Connection[Any]


def _pull_and_run(
    db: Conn, case_id: uuid.UUID, key: str, vendor: HttpEnrichmentVendor
) -> EnrichResult:
    """The two phases of a job whose payload has no bundle: the vendor pull, the record."""
    payload = EnrichPayload(case_id=case_id)
    bundle = pull_bundle(db, payload, idempotency_key=key, vendor=vendor)
    return run(db, payload, idempotency_key=key, bundle=bundle)


def _scores(db: Conn, case_id: uuid.UUID) -> tuple[Any, ...]:
    row = db.execute(
        "select collectability_score, collectability_tier, identity_score, contactability_score,"
        " asset_score, recency_amount_score, adverse_penalty, enrichment_summary"
        " from judgments.cases where id = %s",
        (case_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def _plan_jobs(db: Conn) -> list[tuple[str, Any]]:
    return [
        (r[0], r[1])
        for r in db.execute(
            "select message ->> 'idempotency_key', message -> 'payload' from pgmq.q_enforce"
            " order by msg_id"
        ).fetchall()
    ]


def test_a_pushed_bundle_is_stored_scored_and_persisted(db: Conn) -> None:
    ids = make_case(db)
    payload = EnrichPayload.model_validate({"case_id": str(ids["case_id"]), "bundle": RICH_BUNDLE})
    result = run(db, payload, idempotency_key="enrich-1")

    assert result.stored is not None
    assert result.stored["inserted"] == 5
    score, tier, *components, summary = _scores(db, ids["case_id"])
    assert score == result.breakdown.collectability
    assert tier == result.recorded.tier
    assert components == [
        result.breakdown.identity,
        result.breakdown.contactability,
        result.breakdown.asset,
        result.breakdown.recency_amount,
        result.breakdown.adverse_penalty,
    ]
    assert summary.startswith(f"collectability {score}")
    assert result.plan_msg_id is None  # no enforcement case: nothing to plan


def test_without_bundle_or_vendor_it_scores_what_is_stored(db: Conn) -> None:
    ids = make_case(db)
    bare = run(db, EnrichPayload(case_id=ids["case_id"]), idempotency_key="e0")
    run(
        db,
        EnrichPayload.model_validate({"case_id": str(ids["case_id"]), "bundle": RICH_BUNDLE}),
        idempotency_key="e1",
    )
    again = run(db, EnrichPayload(case_id=ids["case_id"]), idempotency_key="e2")
    assert again.stored is None
    assert again.breakdown.collectability > bare.breakdown.collectability
    assert _scores(db, ids["case_id"])[0] == again.breakdown.collectability


def test_a_tier_change_enqueues_one_plan_job_for_the_enforcement_case(db: Conn) -> None:
    ids = make_case(db)
    enforcement_id = open_enforcement_case(db, ids)
    payload = EnrichPayload.model_validate({"case_id": str(ids["case_id"]), "bundle": RICH_BUNDLE})
    first = run(db, payload, idempotency_key="enrich-tier")
    assert first.recorded.enforcement_tier_changed
    assert first.plan_msg_id is not None
    key = plan_key(enforcement_id, first.recorded.tier, "enrich-tier")
    assert _plan_jobs(db) == [
        (
            key,
            {
                "case_id": str(enforcement_id),
                "trigger": "tier_change",
                "note": f"enrichment moved the case from unscored to {first.recorded.tier}"
                f" (collectability {first.breakdown.collectability})",
            },
        )
    ]
    tier = db.execute(
        "select tier from public.enforcement_cases where id = %s", (enforcement_id,)
    ).fetchone()
    assert tier == (first.recorded.tier,)

    # Same tier again (a later job): no new plan job.
    second = run(db, payload, idempotency_key="enrich-tier-2")
    assert not second.recorded.enforcement_tier_changed
    assert second.plan_msg_id is None
    assert len(_plan_jobs(db)) == 1


def test_long_keys_are_hashed_to_fit_queue_job() -> None:
    case = uuid.uuid4()
    short = plan_key(case, "tier1", "k")
    assert short == f"plan:{case}:tier1:k"
    long = plan_key(case, "tier1", "x" * 300)
    assert len(long) <= 255
    assert long == plan_key(case, "tier1", "x" * 300)
    assert long != plan_key(case, "tier1", "y" * 300)


def test_the_vendor_is_asked_when_no_bundle_is_pushed(db: Conn) -> None:
    ids = make_case(db)
    with (
        FakeVendor() as fake,
        HttpEnrichmentVendor(fake.url, "secret-key", timeout=5, attempts=1) as vendor,
    ):
        result = _pull_and_run(db, ids["case_id"], "v1", vendor)
    assert result.bundle_source == "acme-skiptrace"
    assert result.stored is not None
    assert result.stored["inserted"] == 5
    [request] = fake.requests
    assert request["path"] == "/v1/enrichment"
    assert request["authorization"] == "Bearer secret-key"
    assert request["idempotency_key"] == "v1"
    assert request["body"]["case_id"] == str(ids["case_id"])
    assert request["body"]["case_number"].startswith("CV-")


def test_a_503_then_200_is_retried_in_place(db: Conn) -> None:
    ids = make_case(db)
    with (
        FakeVendor([(503, {"error": "busy"})]) as fake,
        HttpEnrichmentVendor(fake.url, None, timeout=5, attempts=2, max_wait=0.05) as vendor,
    ):
        result = _pull_and_run(db, ids["case_id"], "v2", vendor)
    assert len(fake.requests) == 2
    assert result.stored is not None
    assert result.stored["inserted"] == 5


@pytest.mark.parametrize(
    ("answer", "error", "base"),
    [
        ((503, {"error": "busy"}), VendorUnavailable, TransientError),
        ((429, {"error": "slow down"}), VendorUnavailable, TransientError),
        ((404, {"error": "no such case"}), VendorRejected, PermanentError),
        ((401, {"error": "bad key"}), VendorRejected, PermanentError),
        (
            (200, {"contacts": [{"contact_type": "fax", "value": "1"}]}),
            VendorRejected,
            PermanentError,
        ),
        ((200, b"not json"), VendorRejected, PermanentError),
    ],
)
def test_vendor_failures_are_classified(
    db: Conn, answer: tuple[int, Any], error: type[Exception], base: type[Exception]
) -> None:
    ids = make_case(db)
    with (
        FakeVendor() as fake,
        HttpEnrichmentVendor(fake.url, None, timeout=5, attempts=1) as vendor,
    ):
        fake.default = answer
        with pytest.raises(error) as caught:
            _pull_and_run(db, ids["case_id"], "v3", vendor)
    assert isinstance(caught.value, base)
    assert str(caught.value)


def test_an_unreachable_vendor_is_transient(db: Conn) -> None:
    ids = make_case(db)
    with FakeVendor() as fake:
        url = fake.url  # the port is closed once the server stops
    with (
        HttpEnrichmentVendor(url, None, timeout=2, attempts=1) as vendor,
        pytest.raises(VendorUnavailable, match="unreachable"),
    ):
        _pull_and_run(db, ids["case_id"], "v4", vendor)


def test_an_unknown_case_is_permanent(db: Conn) -> None:
    with pytest.raises(psycopg.errors.NoDataFound, match="not found") as caught, db.transaction():
        run(db, EnrichPayload(case_id=uuid.uuid4()), idempotency_key="x")
    assert classify(caught.value) == "permanent"


def test_a_bundle_the_rpc_refuses_is_permanent(db: Conn) -> None:
    ids = make_case(db)
    bad = {"contacts": [{"contact_type": "phone", "value": "not a phone"}]}
    payload = EnrichPayload.model_validate({"case_id": str(ids["case_id"]), "bundle": bad})
    with (
        pytest.raises(psycopg.errors.InvalidParameterValue, match=r"contacts\[0\]") as caught,
        db.transaction(),
    ):
        run(db, payload, idempotency_key="x")
    assert classify(caught.value) == "permanent"


def test_an_inactive_judgment_scores_zero_and_tier3(db: Conn) -> None:
    ids = make_case(db, status="vacated")
    payload = EnrichPayload.model_validate({"case_id": str(ids["case_id"]), "bundle": RICH_BUNDLE})
    result = run(db, payload, idempotency_key="x")
    assert result.breakdown.collectability == Decimal("0.00")
    assert result.recorded.tier == "tier3"
