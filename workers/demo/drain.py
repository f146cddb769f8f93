"""Run the fleet for the demo and wait, with a deadline, until it has drained the queues.

"Drained" means: no message of any job kind's queue is visible, none is in flight or
waiting for a retry (read at least once), and every enforcement event of the demo's
cases has been routed by the alert listener (when the demo runs one). Messages that
were *deferred* — enqueued with a delay and never read, such as outreach waiting for
the plaintiff's quiet hours to end — do not hold the demo up; the summary counts them.
The counts are ``dragonfly.queue_stats()``'s.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from workers.fleet.supervisor import ChildSpec, Supervisor
from workers.ops.queues import queue_stats

UNROUTED_EVENTS = """
select count(*)
  from public.enforcement_events as e
 where e.enforcement_case_id = any(%s)
   and not exists (select 1 from dragonfly.alert_routed_events as r where r.event_id = e.id)
"""


@dataclass(frozen=True)
class QueueState:
    visible: int
    busy: int
    deferred: int


def queue_state(conn: psycopg.Connection[Any]) -> dict[str, QueueState]:
    """Per queue: visible now, busy (read, not finished: in flight or backing off), deferred."""
    return {s.queue: QueueState(s.visible, s.in_flight, s.deferred) for s in queue_stats(conn)}


def fleet_specs(
    *, kinds: list[str], listener: bool, workers_per_kind: int, database_url: str
) -> list[ChildSpec]:
    """``workers_per_kind`` worker processes for each kind, and the alert listener."""
    env = {
        "DATABASE_URL": database_url,
        "DRAGONFLY_METRICS_PORT": "0",
        "DRAGONFLY_LOG_LEVEL": "WARNING",
    }
    base = [sys.executable, "-m", "workers.cli"]
    specs = [
        ChildSpec(f"{kind}.{n}", kind, [*base, "worker", kind], env)
        for kind in kinds
        for n in range(1, workers_per_kind + 1)
    ]
    if listener:
        specs.append(ChildSpec("listener.1", "listener", [*base, "listen"], env))
    return specs


class DrainTimeout(Exception):
    """The queues did not drain before the deadline."""


def wait_drained(
    conn: psycopg.Connection[Any],
    *,
    timeout: float,
    case_ids: list[UUID] | None = None,
    supervisor: Supervisor | None = None,
    progress: Callable[[dict[str, QueueState]], None] | None = None,
    interval: float = 0.25,
) -> dict[str, QueueState]:
    """Poll until drained (see the module doc) or raise :class:`DrainTimeout`.

    ``case_ids``: also wait for the listener to route every event of these cases.
    ``supervisor``: keep it polled (restarts) while waiting.
    """
    deadline = time.monotonic() + timeout
    last: dict[str, QueueState] = {}
    quiet_rounds = 0
    while True:
        if supervisor is not None:
            supervisor.poll_once()
        state = queue_state(conn)
        if state != last and progress is not None:
            progress(state)
        last = state
        busy = any(s.visible or s.busy for s in state.values())
        unrouted = 0
        if not busy and case_ids is not None:
            row = conn.execute(UNROUTED_EVENTS, (case_ids,)).fetchone()
            unrouted = int(row[0]) if row else 0
        # Two quiet polls in a row: a job that enqueues another (enrich -> enforce) commits
        # both in one transaction, so a single quiet poll could fall between them only if
        # the follow-up were enqueued outside it; the second poll is cheap insurance.
        quiet_rounds = quiet_rounds + 1 if not busy and unrouted == 0 else 0
        if quiet_rounds >= 2:
            return state
        if time.monotonic() >= deadline:
            detail = ", ".join(
                f"{q}: {s.visible} waiting, {s.busy} in flight" for q, s in state.items()
            )
            raise DrainTimeout(
                f"the fleet did not drain within {timeout:.0f}s ({detail}; {unrouted} events"
                " not yet routed)"
            )
        time.sleep(interval)
