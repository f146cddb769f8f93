"""The envelope queue_job() sends, and what counts as malformed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.runtime.handlers import ProbePayload
from workers.runtime.envelope import parse_envelope, parse_payload
from workers.runtime.errors import MalformedMessage

GOOD = {
    "kind": "enrich",
    "idempotency_key": "k-1",
    "payload": {"sleep": 0},
    "requested_by": "ops",
    "enqueued_at": "2026-11-27T10:00:00.123456Z",
}


def test_a_queue_job_envelope_parses() -> None:
    envelope = parse_envelope(GOOD, "enrich")
    assert (envelope.kind, envelope.idempotency_key, envelope.requested_by) == (
        "enrich",
        "k-1",
        "ops",
    )
    assert envelope.enqueued_at is not None
    assert parse_payload(ProbePayload, envelope) == ProbePayload(sleep=0)


def test_optional_fields_may_be_missing_and_unknown_ones_are_ignored() -> None:
    envelope = parse_envelope(
        {"kind": "enrich", "idempotency_key": "k", "payload": {}, "x": 1}, "enrich"
    )
    assert envelope.requested_by is None
    assert envelope.enqueued_at is None


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (None, "JSON object"),
        ([1, 2], "JSON object"),
        ({**GOOD, "kind": None}, "kind"),
        ({k: v for k, v in GOOD.items() if k != "idempotency_key"}, "idempotency_key"),
        ({**GOOD, "idempotency_key": ""}, "idempotency_key"),
        ({**GOOD, "idempotency_key": "   "}, "blank"),
        ({**GOOD, "idempotency_key": "k" * 256}, "idempotency_key"),
        ({**GOOD, "payload": [1]}, "payload"),
        ({**GOOD, "enqueued_at": "yesterday"}, "enqueued_at"),
        ({**GOOD, "kind": "outreach"}, "does not belong on queue 'enrich'"),
    ],
)
def test_malformed_envelopes(message: Any, error: str) -> None:
    with pytest.raises(MalformedMessage, match=error):
        parse_envelope(message, "enrich")


def test_a_payload_that_does_not_fit_the_kind_is_malformed() -> None:
    envelope = parse_envelope({**GOOD, "payload": {"sleep": "long", "extra": 1}}, "enrich")
    with pytest.raises(MalformedMessage, match=r"invalid enrich payload: sleep: .*; extra: "):
        parse_payload(ProbePayload, envelope)
