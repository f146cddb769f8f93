"""The enrich job kind: store a vendor bundle, score the case, persist, re-plan.

- :mod:`workers.enrich.payload` — the payload model (``case_id``, optional ``bundle``);
- :mod:`workers.enrich.bundle` — the vendor bundle models;
- :mod:`workers.enrich.vendor` — the HTTP vendor adapter;
- :mod:`workers.enrich.scoring` — the collectability model and its weights;
- :mod:`workers.enrich.handler` — the handler, and its outside phase (the vendor pull);
- :mod:`workers.enrich.batch` — the batch handler (many jobs in a few round trips).

docs/scoring.md is the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.enrich.batch import handle_batch
from workers.enrich.handler import fetch, handle
from workers.enrich.payload import EnrichPayload
from workers.enrich.vendor import HttpEnrichmentVendor
from workers.runtime import JobKind
from workers.settings import Settings


def make_adapters(settings: Settings) -> Mapping[str, Any]:
    """The vendor adapter when ``DRAGONFLY_ENRICH_VENDOR_URL`` is set, else none."""
    vendor = None
    if settings.enrich_vendor_url:
        key = settings.enrich_vendor_api_key
        vendor = HttpEnrichmentVendor(
            settings.enrich_vendor_url,
            key.get_secret_value() if key is not None else None,
            timeout=settings.enrich_vendor_timeout,
            attempts=settings.enrich_vendor_attempts,
        )
    return {"enrich_vendor": vendor}


JOB = JobKind(
    kind="enrich",
    payload=EnrichPayload,
    handle=handle,
    adapters=make_adapters,
    handle_batch=handle_batch,
    fetch=fetch,
)

__all__ = ["JOB", "EnrichPayload", "make_adapters"]
