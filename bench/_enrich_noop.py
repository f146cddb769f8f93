"""A no-op enrich job for bench/bench_enrich.py --baseline: the same payload model (so the
bundle is validated), no handler work. Measures the runtime's own cost per job."""

from __future__ import annotations

from workers.enrich.payload import EnrichPayload
from workers.runtime import JobContext, JobKind


def _noop(ctx: JobContext, payload: EnrichPayload) -> None:
    del ctx, payload


JOB = JobKind(kind="enrich", payload=EnrichPayload, handle=_noop)
