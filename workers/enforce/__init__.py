"""The enforce job kind: plan a case's next enforcement step and carry it out.

- :mod:`workers.enforce.planner` — the pure rule table (documented in
  ``docs/enforcement-playbook.md``);
- :mod:`workers.enforce.handler` — reads the case, runs the planner, acts through the
  enforcement RPCs inside the job's transaction;
- :mod:`workers.enforce.sweep` — the scheduled SLA sweep that enqueues plan jobs for
  open cases whose ``next_action_at`` has passed.
"""

from workers.enforce.handler import handle, lock_batch
from workers.enforce.payload import EnforcePayload
from workers.runtime import JobKind

JOB: JobKind[EnforcePayload] = JobKind(
    kind="enforce", payload=EnforcePayload, handle=handle, handle_batch=lock_batch
)
"""What ``dragonfly worker enforce`` runs."""
