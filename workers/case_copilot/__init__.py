"""The case_copilot job kind: a structured brief about one enforcement case.

- :mod:`workers.case_copilot.models` — payload, case context and brief models;
- :mod:`workers.case_copilot.rules` — the deterministic rules backend (default);
- :mod:`workers.case_copilot.backends` — backend interface, the OpenAI-compatible LLM
  backend (httpx) and ``backend_from_settings``;
- :mod:`workers.case_copilot.handler` — context read and backend call (the outside
  phase, no transaction open), output insert (the job's transaction).

docs/copilot.md is the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.case_copilot.backends import backend_from_settings
from workers.case_copilot.handler import ADAPTER, fetch, handle
from workers.case_copilot.models import CopilotPayload
from workers.runtime import JobKind
from workers.settings import Settings


def make_adapters(settings: Settings) -> Mapping[str, Any]:
    """The backend this process uses: the LLM when configured, else the rules."""
    return {ADAPTER: backend_from_settings(settings)}


JOB: JobKind[CopilotPayload] = JobKind(
    kind="case_copilot",
    payload=CopilotPayload,
    handle=handle,
    fetch=fetch,
    adapters=make_adapters,
    # An LLM call can take many seconds: the outside phase runs it with no transaction
    # open, and one job per batch keeps the other jobs from waiting behind it.
    batch_size=1,
)
"""What ``dragonfly worker case_copilot`` runs."""
