"""A fleet child that logs a lot, through workers.log, then waits to be stopped.

Run by tests/fleet/test_log_lines.py from a Procfile under ``dragonfly up``:
``python -m tests.fleet.log_chatter LINES``. It logs LINES structlog events of
varying length and, in between, standard-library records (the way httpx logs),
then ``chatter_done`` and waits for SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from workers.log import configure_logging, get_logger
from workers.settings import load_settings


def main(lines: int) -> None:
    configure_logging(load_settings(), process="chatter")
    log = get_logger("tests.chatter")
    library = logging.getLogger("httpx")
    for n in range(lines):
        log.info("chatter", n=n, pid=os.getpid(), filler="x" * (n % 300))
        if n % 10 == 0:
            library.info('HTTP Request: %s %s "%s"', "POST", "http://127.0.0.1:9/x", "HTTP/1.1 200")
    log.info("chatter_done", pid=os.getpid())
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main(int(sys.argv[1]))
