"""Helpers of the enforce, case_copilot and demo tests: a loopback OpenAI-compatible
chat-completions server, a brief the fake model answers with, and small DB helpers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.harness import REPO, child_env, worker_url

GOOD_BRIEF: dict[str, Any] = {
    "summary": "The debtor owes the full balance; a bank account is known.",
    "risk_flags": [{"code": "stale_contact", "severity": "medium", "detail": "phone unverified"}],
    "recommended_actions": [
        {"action": "bank_levy", "reason": "a Chase account was found", "priority": 1}
    ],
}


def completion(content: str | dict[str, Any], model: str = "fake-model-1") -> dict[str, Any]:
    """A chat-completions response whose message content is ``content``."""
    text = content if isinstance(content, str) else json.dumps(content)
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


class FakeLLM:
    """An OpenAI-compatible server on 127.0.0.1 answering POST /v1/chat/completions from a
    script of (status, body) pairs (then ``default``), recording every request."""

    def __init__(self, script: list[tuple[int, Any]] | None = None) -> None:
        self.script: list[tuple[int, Any]] = list(script or [])
        self.default: tuple[int, Any] = (200, completion(GOOD_BRIEF))
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0
        """Seconds every request takes before it is answered (a slow model)."""
        self.entered = threading.Event()
        """Set when a request arrived (before the delay)."""
        self._lock = threading.Lock()
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                llm.entered.set()
                if llm.delay:
                    time.sleep(llm.delay)  # the model thinking, not a test waiting
                with llm._lock:
                    llm.requests.append(
                        {
                            "path": self.path,
                            "body": body,
                            "authorization": self.headers.get("Authorization"),
                        }
                    )
                    if self.path != "/v1/chat/completions":
                        status, answer = 404, {"error": {"message": "not found"}}
                    else:
                        status, answer = llm.script.pop(0) if llm.script else llm.default
                if callable(answer):  # a function of the request, to echo what it got
                    answer = answer(llm.requests[-1])
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


def call_rpc(conn: psycopg.Connection[Any], name: str, payload: dict[str, Any]) -> Any:
    row = conn.execute(f"select public.{name}(%s)", (Jsonb(payload),)).fetchone()
    assert row is not None
    return row[0]


def add_asset(
    conn: psycopg.Connection[Any],
    court_case_id: uuid.UUID,
    asset_type: str,
    institution: str | None = None,
) -> None:
    conn.execute(
        "insert into enrichment.assets (case_id, asset_type, asset_key, institution, source)"
        " values (%s, %s, %s, %s, 'test')",
        (court_case_id, asset_type, uuid.uuid4().hex, institution),
    )


def actions(conn: psycopg.Connection[Any], case_id: uuid.UUID) -> list[tuple[str, str]]:
    """(action_type, status) of every action of the case, oldest first."""
    rows = conn.execute(
        "select action_type, status from public.enforcement_actions"
        " where enforcement_case_id = %s order by opened_at, id",
        (case_id,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def case_row(conn: psycopg.Connection[Any], case_id: uuid.UUID) -> dict[str, Any]:
    cur = conn.execute(
        "select current_stage, next_action_at, stage_entered_at, tier, closed_at"
        " from public.enforcement_cases where id = %s",
        (case_id,),
    )
    row = cur.fetchone()
    assert row is not None
    assert cur.description is not None
    return {d.name: v for d, v in zip(cur.description, row, strict=True)}


# --- real worker processes ----------------------------------------------------------------


@contextmanager
def worker_process(
    kind: str, url: str, env: dict[str, str] | None = None, *, stderr: list[str] | None = None
) -> Iterator[Any]:
    """``python -m workers.cli worker KIND`` against ``url``'s database, logged in as the
    session's worker login (a member of dragonfly_worker); SIGTERM (then kill) on exit.

    ``stderr``, when given, receives the process's whole log once it has exited.
    """
    full_env = child_env(
        {
            "DATABASE_URL": worker_url(url),
            "DRAGONFLY_METRICS_PORT": "0",
            "DRAGONFLY_POLL_INTERVAL": "0.2",
            "DRAGONFLY_RETRY_BASE_DELAY": "0.2",
            "DRAGONFLY_RETRY_MAX_DELAY": "1",
            "DRAGONFLY_MAX_ATTEMPTS": "3",
            "DRAGONFLY_LOG_FORMAT": "json",
            **(env or {}),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", kind],
        env=full_env,
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        if stderr is not None:
            stderr.append(err.decode())
        if proc.returncode not in (0, -signal.SIGTERM):
            raise AssertionError(f"worker {kind} exited {proc.returncode}: {err.decode()[-2000:]}")


def enqueue(conn: psycopg.Connection[Any], kind: str, key: str, payload: dict[str, Any]) -> int:
    row = conn.execute(
        "select public.queue_job(%s)",
        (Jsonb({"kind": kind, "idempotency_key": key, "payload": payload}),),
    ).fetchone()
    assert row is not None
    return int(row[0])


def resend(conn: psycopg.Connection[Any], queue: str, envelope: dict[str, Any]) -> int:
    """Put a copy of an already-processed envelope back on the queue: a redelivery."""
    row = conn.execute("select pgmq.send(%s, %s)", (queue, Jsonb(envelope))).fetchone()
    assert row is not None
    return int(row[0])


def completed(conn: psycopg.Connection[Any], kind: str, key: str) -> bool:
    row = conn.execute(
        "select exists (select 1 from dragonfly.completed_jobs"
        " where kind = %s and idempotency_key = %s)",
        (kind, key),
    ).fetchone()
    return bool(row and row[0])


def dead_letter(conn: psycopg.Connection[Any], queue: str, msg_id: int) -> tuple[str, str] | None:
    row = conn.execute(
        "select reason, last_error from dragonfly.dead_letters where queue = %s and msg_id = %s",
        (queue, msg_id),
    ).fetchone()
    return (row[0], row[1]) if row else None


def queue_empty(conn: psycopg.Connection[Any], queue: str) -> bool:
    row = conn.execute(f"select count(*) = 0 from pgmq.q_{queue}").fetchone()
    return bool(row and row[0])
