"""The waker: one notification wakes one idle slot; nothing is lost for busy ones."""

from __future__ import annotations

import threading
import time

from workers.runtime.listener import Waker


def _waiters(waker: Waker, count: int) -> tuple[list[threading.Thread], list[int]]:
    seen = waker.generation
    woken: list[int] = []

    def wait(index: int) -> None:
        waker.wait(seen, timeout=5.0)
        woken.append(index)

    threads = [threading.Thread(target=wait, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # let them all block in wait()
    return threads, woken


def test_a_wake_releases_one_waiting_slot() -> None:
    waker = Waker()
    threads, woken = _waiters(waker, 3)
    waker.wake()
    deadline = time.monotonic() + 2.0
    while not woken and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # would the others follow?
    assert len(woken) == 1
    waker.wake(everyone=True)
    for thread in threads:
        thread.join(2.0)
    assert sorted(woken) == [0, 1, 2]


def test_wake_everyone_releases_every_waiting_slot() -> None:
    waker = Waker()
    threads, woken = _waiters(waker, 3)
    started = time.monotonic()
    waker.wake(everyone=True)
    for thread in threads:
        thread.join(2.0)
    assert sorted(woken) == [0, 1, 2]
    assert time.monotonic() - started < 2.0


def test_a_slot_busy_during_the_wake_does_not_wait_afterwards() -> None:
    waker = Waker()
    seen = waker.generation  # the slot starts a batch...
    waker.wake()  # ...a job arrives meanwhile, and nobody is waiting
    started = time.monotonic()
    waker.wait(seen, timeout=5.0)  # back from the batch: it reads again at once
    assert time.monotonic() - started < 1.0
