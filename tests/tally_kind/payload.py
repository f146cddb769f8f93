"""What a ``tally`` job carries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TallyPayload(BaseModel):
    """``queue_job({"kind": "tally", "payload": <this>})``: record ``count``, or fail."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0)
    fail: bool = False
