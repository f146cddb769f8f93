"""Helpers of the runtime tests: real worker processes, enqueueing, polling."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.harness import REPO, child_env, worker_url
from tests.runtime.handlers import JOB
from workers.runtime.batch import BatchConfig, BatchRunner
from workers.runtime.handlers import JobKind
from workers.runtime.retry import RetryPolicy

T = TypeVar("T")

# Short timeouts everywhere: the tests wait for visibility timeouts and backoffs.
TEST_ENV = {
    "DRAGONFLY_METRICS_PORT": "0",
    "DRAGONFLY_LOG_FORMAT": "json",
    "DRAGONFLY_LOG_LEVEL": "DEBUG",  # job_started is a debug event
    "DRAGONFLY_VISIBILITY_TIMEOUT": "2",
    "DRAGONFLY_POLL_INTERVAL": "0.2",
    "DRAGONFLY_RETRY_BASE_DELAY": "0.1",
    "DRAGONFLY_RETRY_MAX_DELAY": "0.4",
    "DRAGONFLY_MAX_ATTEMPTS": "3",
    "DRAGONFLY_SHUTDOWN_GRACE": "15",
    "DRAGONFLY_RECONNECT_MAX_DELAY": "1",
}


INTERNAL = {"level": "internal", "role": "postgres", "sub": None, "email": None}
"""The provenance queue_job() records for the tests' admin connection: for messages a test
sends with pgmq.send that set fields only the fleet may (the worker re-checks the policy)."""


class RecordingMetrics:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def job_done(self, **kw: Any) -> None:
        self.calls.append(("done", kw))

    def job_failed(self, **kw: Any) -> None:
        self.calls.append(("failed", kw))

    def job_dead_lettered(self, **kw: Any) -> None:
        self.calls.append(("dead_lettered", kw))


def make_runner(
    metrics: RecordingMetrics | None = None,
    batch_size: int = 10,
    *,
    job: JobKind[Any] = JOB,
    job_timeout: float = 30.0,
    stopping: threading.Event | None = None,
) -> BatchRunner:
    """A batch runner of ``job`` on the enrich queue, for in-process tests."""
    config = BatchConfig(
        queue="enrich",
        worker="test",
        batch_size=batch_size,
        batch_window=30.0,
        visibility_timeout=30,
        job_timeout=job_timeout,
        retry=RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=0.2),
    )
    return BatchRunner(
        job,
        config,
        adapters={},
        metrics=metrics or RecordingMetrics(),
        log=structlog.get_logger("test"),
        stopping=stopping or threading.Event(),
    )


def wait_until(
    probe: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(interval)


class WorkerProcess:
    """``python -m workers.cli worker KIND`` in a subprocess, its JSON log in a file,
    logged in to ``url``'s database as the session's worker login."""

    def __init__(
        self,
        url: str,
        log_dir: Path,
        *,
        kind: str = "enrich",
        handler: str | None = "tests.runtime.handlers:JOB",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
        name: str = "worker",
    ) -> None:
        # Logged in as a member of dragonfly_worker, as the fleet is deployed.
        full_env = child_env({**TEST_ENV, "DATABASE_URL": worker_url(url), **(env or {})})
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self._log_file = self.log_path.open("w")
        argv = [sys.executable, "-m", "workers.cli", "worker", kind]
        argv += ["--handler", handler] if handler else []  # None: DRAGONFLY_HANDLERS or default
        argv += ["--concurrency", str(concurrency)]
        self.proc = subprocess.Popen(
            argv, env=full_env, cwd=str(REPO), stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if event is not None and record.get("event") != event:
                continue
            if all(record.get(k) == v for k, v in match.items()):
                found.append(record)
        return found

    def wait_for(self, event: str, *, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            if self.proc.poll() is not None and not self.events(event, **match):
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.output()}")
            found = self.events(event, **match)
            return found[0] if found else None

        try:
            return wait_until(probe, timeout=timeout, what=f"{event} {match}")
        except AssertionError as exc:
            if self.proc.poll() is None:  # ask for every thread's stack (faulthandler)
                self.proc.send_signal(signal.SIGUSR1)
                time.sleep(0.5)
            tail = "\n".join(self.output().splitlines()[-200:])
            raise AssertionError(f"{exc}; the worker's log ends with:\n{tail}") from None

    def wait_ready(self, timeout: float = 20.0) -> None:
        self.wait_for("listener_connected", timeout=timeout)

    def output(self) -> str:
        return self.log_path.read_text()

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log_file.close()


def enqueue(conn: psycopg.Connection[Any], key: str, payload: dict[str, Any] | None = None) -> int:
    """queue_job() an enrich job (the test handler's payload); its msg_id."""
    row = conn.execute(
        "select public.queue_job(%s)",
        (Jsonb({"kind": "enrich", "idempotency_key": key, "payload": payload or {}}),),
    ).fetchone()
    assert row is not None
    return int(row[0])


def send_raw(conn: psycopg.Connection[Any], message: Any, queue: str = "enrich") -> int:
    """pgmq.send() a message as is (no envelope validation: for malformed ones)."""
    row = conn.execute("select pgmq.send(%s, %s)", (queue, Jsonb(message))).fetchone()
    assert row is not None
    return int(row[0])


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def effects_by_key(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute(
        "select idempotency_key, count(*) from runtime_test.effects group by 1"
    ).fetchall()
    return {str(k): int(n) for k, n in rows}


def completed(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """idempotency_key -> attempts of every completed job."""
    rows = conn.execute("select idempotency_key, attempts from dragonfly.completed_jobs").fetchall()
    return {str(k): int(a) for k, a in rows}


def queue_length(conn: psycopg.Connection[Any], queue: str = "enrich") -> int:
    query = sql.SQL("select count(*) from pgmq.{}").format(sql.Identifier("q_" + queue))
    return int(scalar(conn, query))
