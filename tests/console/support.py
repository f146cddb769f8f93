"""Helpers of the console tests: tenants and members, their tokens, dead letters, the
console's login role, and a real ``dragonfly console`` process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.harness import PREFIX, REPO, with_params
from tests.security.tenants import User, hook, issued_claims

Conn = psycopg.Connection[Any]

JWT_SECRET = "console-test-jwt-secret-of-at-least-32-bytes"
ADMIN_TOKEN = "console-test-admin-token"
CONSOLE_LOGIN = f"{PREFIX}{os.getpid()}_console"
"""The console's login role in the tests: a member of authenticator (so it may take the
API roles, as PostgREST's login does) and of dragonfly_worker (its heartbeat and metrics)."""
_CONSOLE_PASSWORD = uuid.uuid4().hex


def ensure_console_login(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("select 1 from pg_roles where rolname = %s", (CONSOLE_LOGIN,)).fetchone():
            return
        conn.execute(
            sql.SQL(
                "create role {} login password {} in role authenticator, dragonfly_worker"
            ).format(sql.Identifier(CONSOLE_LOGIN), sql.Literal(_CONSOLE_PASSWORD))
        )


def drop_console_login(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(CONSOLE_LOGIN)))


def console_url(url: str) -> str:
    """``url`` (a test database's admin URL) logged in as the console's login role."""
    return with_params(url, user=CONSOLE_LOGIN, password=_CONSOLE_PASSWORD)


def claims_of(conn: Conn, user: User) -> dict[str, Any]:
    """The claims Supabase Auth issues ``user``, with the access token hook's."""
    return hook(conn, user.id, issued_claims(user))["claims"]


def token_for(claims: dict[str, Any], *, secret: str = JWT_SECRET, **changes: Any) -> str:
    """An HS256 access token of ``claims`` (expiring in an hour unless changed)."""
    body = {**claims, "exp": int(time.time()) + 3600, "iat": int(time.time())}
    body.update(changes)
    return jwt.encode(body, secret, algorithm="HS256")


def add_dead_letter(
    conn: Conn,
    *,
    tenant: str | None,
    queue: str = "enrich",
    key: str | None = None,
    error: str = "TransientError: vendor 503",
    payload: dict[str, Any] | None = None,
    truncated: bool = False,
) -> int:
    """A dead letter (as dead_letter_job would store it) whose envelope names ``tenant``."""
    key = key or f"dl-{uuid.uuid4().hex[:10]}"
    message: dict[str, Any] = {"kind": queue, "idempotency_key": key, "payload": payload or {}}
    if tenant is not None:
        message["tenant"] = tenant
    row = conn.execute(
        "insert into dragonfly.dead_letters (queue, msg_id, kind, idempotency_key, message,"
        " attempts, reason, last_error, truncated_from_bytes)"
        " values (%s, (select coalesce(max(msg_id), 0) + 1000 from dragonfly.dead_letters),"
        " %s, %s, %s, 3, 'max_attempts', %s, %s) returning id",
        (queue, queue, key, Jsonb(message), error, 5_000_000 if truncated else None),
    ).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def acting_as(conn: Conn, role: str, claims: dict[str, Any] | None = None) -> Iterator[Conn]:
    """Run statements as PostgREST would for ``role`` (and ``claims``), then go back."""
    conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
    conn.execute(
        "select set_config('request.jwt.claims', %s, true)",
        (json.dumps(claims) if claims else "",),
    )
    try:
        yield conn
    finally:
        conn.execute("reset role")
        conn.execute("select set_config('request.jwt.claims', '', true)")


class ConsoleProcess:
    """``python -m workers.cli console`` in a subprocess, its output in a file."""

    def __init__(self, database_url: str, log_dir: Path, port: int, env: dict[str, str]) -> None:
        full = {
            **{
                k: v for k, v in os.environ.items() if not k.startswith(("DRAGONFLY_", "SUPABASE_"))
            },
            **({"DATABASE_URL": database_url} if database_url else {}),
            "DRAGONFLY_CONSOLE_PORT": str(port),
            "DRAGONFLY_METRICS_PORT": "0",
            "DRAGONFLY_LOG_FORMAT": "json",
            **env,
        }
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"console-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "console"],
            env=full,
            cwd=str(REPO),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_started(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(r"^console on http://", self.output(), re.M):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"console exited {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"console did not start:\n{self.output()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
