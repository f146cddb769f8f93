"""The enrichment bundle: what a vendor knows about a case's debtor.

It arrives two ways — pushed in the job payload (a vendor webhook) or pulled by
:mod:`workers.enrich.vendor` — and is validated by the same models either way.
Unknown fields are ignored (vendors add fields); known ones are checked.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ContactType = Literal["phone", "email", "address"]
AssetType = Literal["bank", "employer", "real_property", "vehicle", "other"]


class BundleContact(BaseModel):
    """A phone, email or postal address of the debtor."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    contact_type: ContactType
    value: str = Field(min_length=1, max_length=500)
    confidence: float | None = Field(default=None, ge=0, le=1)
    is_verified: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)


class BundleAsset(BaseModel):
    """A bank account, employer, property, vehicle or other asset of the debtor."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    asset_type: AssetType
    asset_key: str | None = Field(
        default=None,
        max_length=500,
        description="The vendor's identifier within the type (bank + last4, EIN, parcel, VIN).",
    )
    description: str | None = Field(default=None, max_length=2000)
    institution: str | None = Field(default=None, max_length=500)
    estimated_value: float | None = Field(default=None, ge=0, lt=1e12)
    confidence: float | None = Field(default=None, ge=0, le=1)
    details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _identifiable(self) -> BundleAsset:
        natural = {"vehicle": "vin", "real_property": "parcel_id"}.get(self.asset_type)
        candidates = [self.asset_key, self.institution, self.description]
        if natural:
            candidates.append(str(self.details.get(natural) or ""))
        if not any((v or "").strip() for v in candidates):
            raise ValueError("an asset needs an asset_key, an institution or a description")
        return self


class BundleSignals(BaseModel):
    """Identity and adverse findings that are neither contacts nor assets."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    identity_confidence: float | None = Field(
        default=None, ge=0, le=1, description="How sure the vendor is it found the right person."
    )
    bankruptcy: bool = False
    deceased: bool = False


class EnrichmentBundle(BaseModel):
    """One vendor report for one case.

    ``to_rpc`` gives the shape ``upsert_enrichment_bundle`` takes (docs/rpc.md) plus
    ``signals``, which ``enrichment.prepare_scoring`` strips off and stores itself.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    source: str = Field(default="vendor", min_length=1, max_length=100, pattern=r"\S")
    contacts: list[BundleContact] = Field(default_factory=list, max_length=1000)
    assets: list[BundleAsset] = Field(default_factory=list, max_length=1000)
    signals: BundleSignals | None = None

    def to_rpc(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
