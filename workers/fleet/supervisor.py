"""Supervise the fleet's child processes.

Each child runs in a process group of its own, so a Ctrl-C at the terminal
reaches only the supervisor, which then stops the children in order: SIGTERM
to every group, a grace period for in-flight jobs, SIGKILL for whatever is
left. (A terminal's SIGINT reaching children too would count as their second
signal and cut their grace short.) On Linux each child also gets SIGTERM if
the supervisor itself dies (``PR_SET_PDEATHSIG``), so no worker outlives it.

A child that exits while the fleet runs is restarted after a backoff that
doubles with each quick failure (``min_backoff`` up to ``max_backoff``) and
starts over once a child has stayed up ``stable_after`` seconds: a crash-
looping child costs a few restarts a minute, not a storm.

``poll_once()`` does one round (reap exits, start due restarts) and is what
tests drive; ``run()`` is the loop. Log events: ``fleet_process_started``,
``fleet_process_exited``, ``fleet_stopping``, ``fleet_process_killed``,
``fleet_stopped``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from workers.log import get_logger

log = get_logger("workers.fleet")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One supervised process: its name (``enrich.1``), command and extra environment."""

    name: str
    process_type: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_failures: int = 0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Starts, restarts and stops a fixed set of children."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        base_env: Mapping[str, str] | None = None,
        stop_timeout: float = 45.0,
        min_backoff: float = 1.0,
        max_backoff: float = 30.0,
        stable_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.children = [Child(spec) for spec in specs]
        self._pass_fds = tuple(pass_fds)
        self._base_env = dict(os.environ if base_env is None else base_env)
        self.stop_timeout = stop_timeout
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self._clock = clock
        self.stop_requested = threading.Event()
        self.force = threading.Event()

    # -- lifecycle of one child ---------------------------------------------

    def _spawn(self, child: Child) -> None:
        env = {**self._base_env, **child.spec.env}
        child.proc = subprocess.Popen(
            list(child.spec.argv),
            env=env,
            process_group=0,
            preexec_fn=_die_with_parent,
            pass_fds=self._pass_fds,
        )
        child.started_at = self._clock()
        child.restart_at = None
        log.info(
            "fleet_process_started",
            name=child.spec.name,
            pid=child.proc.pid,
            restarts=child.restarts,
        )

    def _backoff(self, child: Child, ran_for: float) -> float:
        if ran_for >= self.stable_after:
            child.quick_failures = 0
        delay = min(self.max_backoff, self.min_backoff * 2**child.quick_failures)
        child.quick_failures += 1
        return float(delay)

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def poll_once(self) -> None:
        """Reap children that exited and schedule or perform their restarts."""
        now = self._clock()
        for child in self.children:
            if child.proc is not None:
                code = child.proc.poll()
                if code is None:
                    continue
                ran_for = now - child.started_at
                delay = self._backoff(child, ran_for)
                log.warning(
                    "fleet_process_exited",
                    name=child.spec.name,
                    pid=child.proc.pid,
                    returncode=code,
                    ran_for_s=round(ran_for, 1),
                    restart_in_s=delay,
                )
                child.proc = None
                child.restart_at = now + delay
            if child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)

    # -- the whole fleet -----------------------------------------------------

    def request_stop(self) -> None:
        """First call: stop gracefully. Second call: kill at once."""
        if self.stop_requested.is_set():
            self.force.set()
        self.stop_requested.set()

    def _signal_all(self, sig: signal.Signals) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, sig)

    def shutdown(self) -> None:
        """SIGTERM every child's group, wait up to ``stop_timeout``, then SIGKILL."""
        live = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        log.info("fleet_stopping", children=len(live), timeout_s=self.stop_timeout)
        self._signal_all(signal.SIGTERM)
        deadline = self._clock() + self.stop_timeout
        while self._clock() < deadline and not self.force.is_set():
            if all(c.proc is None or c.proc.poll() is not None for c in self.children):
                break
            self.force.wait(0.05)
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                log.warning("fleet_process_killed", name=child.spec.name, pid=child.proc.pid)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()
        # Any grandchild left in a child's group goes with it.
        self._signal_all(signal.SIGKILL)
        log.info(
            "fleet_stopped",
            exit_codes={c.spec.name: c.proc.returncode if c.proc else None for c in self.children},
        )

    def run(self, poll_interval: float = 0.2) -> None:
        """Start every child, keep them running until asked to stop, then stop them."""
        try:
            self.start()
            while not self.stop_requested.is_set():
                self.poll_once()
                self.stop_requested.wait(poll_interval)
        finally:
            self.shutdown()
