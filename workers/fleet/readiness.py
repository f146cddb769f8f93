"""Watch a starting fleet's ``/readyz`` endpoints and say once when all answer 200."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping


def is_ready(url: str, timeout: float = 1.0) -> bool:
    """Whether ``url`` answers 200 now (anything else, or no answer, is not ready)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def watch(
    urls: Mapping[str, str],
    *,
    stop: threading.Event,
    on_ready: Callable[[float], None],
    interval: float = 0.25,
) -> threading.Thread:
    """A daemon thread calling ``on_ready(seconds)`` once every URL has been ready.

    A child counts once it has answered 200; it need not answer again (a
    restart later does not hold the announcement back). Gives up when ``stop``
    is set.
    """

    def run() -> None:
        started = time.monotonic()
        waiting = dict(urls)
        while waiting and not stop.is_set():
            for name, url in list(waiting.items()):
                if is_ready(url):
                    del waiting[name]
            if waiting:
                stop.wait(interval)
        if not waiting and not stop.is_set():
            on_ready(time.monotonic() - started)

    thread = threading.Thread(target=run, name="fleet-readiness", daemon=True)
    thread.start()
    return thread
