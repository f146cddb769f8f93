"""The enrichment-vendor adapter: pull a bundle for a case over HTTP.

Contract (documented in docs/scoring.md, "The vendor API"):

    POST {base_url}/v1/enrichment
    Authorization: Bearer {api_key}
    Idempotency-Key: {the enrich job's idempotency key}
    {"case_id": ..., "case_number": ..., "debtor_name": ..., "state": ..., "county": ...}
    -> 200 with an EnrichmentBundle as JSON

Failure classes: 429, 5xx, timeouts and connection errors are *transient* (the
vendor may answer later); any other 4xx, and a 200 whose body is not a valid
bundle, are *permanent* (asking again gets the same answer). One call may be
retried in place a few times with short jittered waits (tenacity,
``attempts``); past that the transient error goes to the queue, whose backoff
takes over.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol
from uuid import UUID

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from workers.enrich.bundle import EnrichmentBundle
from workers.runtime import PermanentError, TransientError


class VendorUnavailable(TransientError):
    """The vendor did not answer usefully this time (429, 5xx, timeout, network)."""


class VendorRejected(PermanentError):
    """The vendor refused the request or answered with something that is not a bundle."""


class VendorRequest(BaseModel):
    """What the vendor is told about the case."""

    model_config = ConfigDict(frozen=True)

    case_id: UUID
    case_number: str
    debtor_name: str
    state: str | None = None
    county: str | None = None


class EnrichmentVendor(Protocol):
    """Anything that can produce a bundle for a case."""

    def fetch_bundle(self, request: VendorRequest, *, idempotency_key: str) -> EnrichmentBundle:
        """Return the vendor's bundle; raise VendorUnavailable or VendorRejected."""
        ...


class HttpEnrichmentVendor:
    """The real adapter: one pooled httpx client per process."""

    PATH = "/v1/enrichment"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float,
        attempts: int = 2,
        max_wait: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "dragonfly-enrich/1"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )
        self._attempts = max(1, attempts)
        self._max_wait = max_wait

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpEnrichmentVendor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def fetch_bundle(self, request: VendorRequest, *, idempotency_key: str) -> EnrichmentBundle:
        retrying = Retrying(
            retry=retry_if_exception_type(VendorUnavailable),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.05, max=self._max_wait)
            + wait_random(0, min(0.05, self._max_wait)),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._call_once(request, idempotency_key)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    def _call_once(self, request: VendorRequest, idempotency_key: str) -> EnrichmentBundle:
        try:
            response = self._client.post(
                self.PATH,
                json=request.model_dump(mode="json"),
                headers={"Idempotency-Key": idempotency_key},
            )
        except httpx.TimeoutException as exc:
            raise VendorUnavailable(f"enrichment vendor timed out: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise VendorUnavailable(f"enrichment vendor unreachable: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise VendorUnavailable(f"enrichment vendor answered {status}")
        if status >= 400:
            raise VendorRejected(
                f"enrichment vendor refused case {request.case_id}: {status} {_snippet(response)}"
            )
        if status != 200:
            raise VendorRejected(f"enrichment vendor answered unexpected {status}")
        try:
            return EnrichmentBundle.model_validate_json(response.content)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "body"
            raise VendorRejected(
                f"enrichment vendor sent an invalid bundle: {where}: {first.get('msg')}"
            ) from None


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    text = " ".join(response.text.split())
    return text[:limit]
