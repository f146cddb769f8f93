"""``tally``: a job kind only the tests know, added the way any kind is added.

Its folder (this package: payload model, handler, ``JOB``) and one migration
(``migrations/``, applied to a test database only) are all there is to it; the
worker finds ``JOB`` through ``DRAGONFLY_HANDLERS='{"tally": "tests.tally_kind:JOB"}'``
(docs/adding-a-job-kind.md).
"""

from __future__ import annotations

from tests.tally_kind.handler import handle
from tests.tally_kind.payload import TallyPayload
from workers.runtime import JobKind

JOB = JobKind(kind="tally", payload=TallyPayload, handle=handle)
