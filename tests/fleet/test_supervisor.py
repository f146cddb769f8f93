"""The supervisor with plain Python children: restart, backoff, clean and forced stop."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator

import pytest

from tests.fleet.helpers import wait_for
from workers.fleet.supervisor import ChildSpec, Supervisor

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "while True: time.sleep(1)",
]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def supervisors() -> Iterator[list[Supervisor]]:
    made: list[Supervisor] = []
    yield made
    for sup in made:
        sup.force.set()
        sup.shutdown()


def pid_of(sup: Supervisor, index: int = 0) -> int | None:
    proc = sup.children[index].proc
    return proc.pid if proc is not None and proc.poll() is None else None


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_killed_child_is_restarted_after_the_backoff(supervisors: list[Supervisor]) -> None:
    clock = FakeClock()
    sup = Supervisor([ChildSpec("sleep.1", "sleep", SLEEPER)], min_backoff=1, clock=clock)
    supervisors.append(sup)
    sup.start()
    first = pid_of(sup)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: sup.children[0].proc.poll() is not None, what="the child to die")  # type: ignore[union-attr]
    sup.poll_once()
    assert sup.children[0].proc is None
    assert sup.children[0].restart_at == clock.now + 1
    clock.now += 1
    sup.poll_once()
    second = pid_of(sup)
    assert second is not None
    assert second != first
    assert sup.children[0].restarts == 1


def test_a_crash_looping_child_backs_off_up_to_the_cap(supervisors: list[Supervisor]) -> None:
    clock = FakeClock()
    crash = [sys.executable, "-c", "raise SystemExit(3)"]
    sup = Supervisor(
        [ChildSpec("crash.1", "crash", crash)],
        min_backoff=1,
        max_backoff=8,
        stable_after=30,
        clock=clock,
    )
    supervisors.append(sup)
    sup.start()
    delays = []
    for _ in range(6):
        child = sup.children[0]
        assert child.proc is not None
        child.proc.wait(timeout=30)
        sup.poll_once()
        assert child.restart_at is not None
        delays.append(child.restart_at - clock.now)
        clock.now = child.restart_at
        sup.poll_once()  # restarts it
    assert delays == [1, 2, 4, 8, 8, 8]

    # A child that stayed up long enough starts over at the shortest delay.
    child = sup.children[0]
    assert child.proc is not None
    child.proc.wait(timeout=30)
    clock.now += 31
    sup.poll_once()
    assert child.restart_at == clock.now + 1


def test_shutdown_terms_then_kills_a_child_that_ignores_sigterm(
    supervisors: list[Supervisor],
) -> None:
    sup = Supervisor(
        [
            ChildSpec("sleep.1", "sleep", SLEEPER),
            ChildSpec("stubborn.1", "stubborn", STUBBORN),
        ],
        stop_timeout=1.0,
    )
    supervisors.append(sup)
    sup.start()
    pids = [pid_of(sup, 0), pid_of(sup, 1)]
    assert all(pids)
    # Let the stubborn child install its SIGTERM handler before we stop.
    wait_for(lambda: pid_of(sup, 1) and _sigterm_ignored(pid_of(sup, 1)), what="stubborn child")
    sup.shutdown()
    codes = [c.proc.returncode for c in sup.children]  # type: ignore[union-attr]
    assert codes == [-signal.SIGTERM, -signal.SIGKILL]
    assert all(gone(p) for p in pids if p)


def _sigterm_ignored(pid: int | None) -> bool:
    if pid is None:
        return False
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False
