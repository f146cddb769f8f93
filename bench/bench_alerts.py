"""Benchmark the alert listener: event committed -> Slack webhook received.

Usage::

    .venv/bin/python bench/bench_alerts.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL must be able to create databases. The benchmark creates its own database
(``df_bench_alerts_<pid>``), applies the migrations, replaces the alert rules by one rule
sending every event to Slack, starts a loopback incoming-webhook server in this process and
one real ``dragonfly listen`` process (``--listeners`` for more), then logs ``--events``
events through ``public.log_enforcement_event()``, one transaction each, at ``--rate``
events per second (0: back to back).

Latency of one event = the webhook server's receive time minus the moment this process
called COMMIT (so the commit itself is included), both on this process's monotonic clock.
It prints p50, p90, p99 and max over the events, and checks that every event arrived exactly
once. Targets on a 2-core machine: p50 <= 20 ms, p99 <= 100 ms. The database is dropped at
the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._stats import percentile  # noqa: E402
from workers.db.migrate import default_migrations_dir, migrate  # noqa: E402

Conn = psycopg.Connection[Any]


class Webhook:
    """A minimal incoming-webhook server: records (event id, receive time) of every POST."""

    def __init__(self) -> None:
        self.received: list[tuple[str, float]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; with Nagle on, the body would wait
            # for the client's delayed ACK (40 ms) on a kept-alive connection.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.perf_counter()
                reference = json.loads(body)["blocks"][-1]["elements"][0]["text"]
                event_id = reference.split("event ")[1].split(" ")[0]
                with hook.arrived:
                    hook.received.append((event_id, now))
                    hook.arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/services/bench"

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.arrived.wait(left)
        return True

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def url_with_db(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))


def setup(conn: Conn) -> uuid.UUID:
    """One open case and a single rule: every event to Slack."""
    conn.execute("delete from dragonfly.alert_rules")
    conn.execute("insert into dragonfly.alert_rules (name, sinks) values ('bench', '{slack}')")
    plaintiff = conn.execute(
        "insert into public.plaintiffs (name) values ('Bench Capital') returning id"
    ).fetchone()
    assert plaintiff is not None
    judgment = conn.execute(
        "insert into public.judgments (plaintiff_id, debtor_name, judgment_amount, balance_due)"
        " values (%s, 'Bench Debtor', 25000, 25000) returning id",
        (plaintiff[0],),
    ).fetchone()
    assert judgment is not None
    conn.execute(
        "insert into judgments.cases (judgment_id, case_number) values (%s, 'BENCH-0001')",
        (judgment[0],),
    )
    case = conn.execute(
        "insert into public.enforcement_cases"
        " (judgment_id, plaintiff_id, tier, current_stage, current_balance, created_by)"
        " values (%s, %s, 'tier0', 'bank_levy', 25000, 'bench') returning id",
        (judgment[0], plaintiff[0]),
    ).fetchone()
    assert case is not None
    return uuid.UUID(str(case[0]))


def log_event(conn: Conn, case_id: uuid.UUID, n: int) -> tuple[str, float, float]:
    """Log one event in its own transaction; returns (event id, COMMIT called, COMMIT returned)."""
    row = conn.execute(
        "select public.log_enforcement_event(%s)",
        (
            Jsonb(
                {
                    "case_id": str(case_id),
                    "event_kind": "garnishment_remittance",
                    "payload": {"amount": 100 + n},
                    "actor": "bench",
                }
            ),
        ),
    ).fetchone()
    assert row is not None
    called = time.perf_counter()
    conn.commit()
    return str(row[0]), called, time.perf_counter()


def start_listeners(url: str, hook: Webhook, count: int) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRAGONFLY_", "DATABASE_"))}
    env.update(
        {
            "DATABASE_URL": url,
            "DRAGONFLY_SLACK_WEBHOOK_URL": hook.url,
            "DRAGONFLY_METRICS_PORT": "0",
            "DRAGONFLY_LOG_FORMAT": "json",
        }
    )
    return [
        subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "listen", "--name", f"bench-{n}"],
            env=env,
            cwd=str(REPO),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(count)
    ]


def run(args: argparse.Namespace) -> int:
    admin = args.database_url
    name = f"df_bench_alerts_{os.getpid()}"
    url = url_with_db(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    hook = Webhook()
    listeners: list[subprocess.Popen[bytes]] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn, default_migrations_dir())
            case_id = setup(conn)
        listeners = start_listeners(url, hook, args.listeners)

        with psycopg.connect(url) as conn:
            # Warm-up (not measured): the listener is up once an event comes back.
            for n in range(args.warmup):
                log_event(conn, case_id, n)
            if not hook.wait_for(args.warmup, timeout=60):
                print("listener did not deliver the warm-up events", file=sys.stderr)
                return 1
            baseline = len(hook.received)

            committed: dict[str, tuple[float, float]] = {}
            interval = 1.0 / args.rate if args.rate > 0 else 0.0
            started = time.perf_counter()
            for n in range(args.events):
                if interval:
                    pause = started + n * interval - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                event_id, called, returned = log_event(conn, case_id, n)
                committed[event_id] = (called, returned)
            sent_in = time.perf_counter() - started

        complete = hook.wait_for(baseline + args.events, timeout=args.timeout)
        with hook.lock:
            measured = hook.received[baseline:]
        counts = Counter(event_id for event_id, _ in measured)
        latencies = sorted(
            (at - committed[event_id][0]) * 1000
            for event_id, at in measured
            if event_id in committed
        )
        after_commit = sorted(
            (at - committed[event_id][1]) * 1000
            for event_id, at in measured
            if event_id in committed
        )
        commit_ms = sorted((r - c) * 1000 for c, r in committed.values())
        missing = len(set(committed) - set(counts))
        duplicates = sum(c - 1 for c in counts.values())

        print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
        print(
            f"events: {args.events} logged in {sent_in:.2f}s"
            f" ({args.events / sent_in:.0f}/s, target rate {args.rate or 'unpaced'}),"
            f" {args.listeners} listener process(es)"
        )
        print(f"received: {len(latencies)}, missing: {missing}, duplicates: {duplicates}")
        if latencies:
            p50, p90, p99 = (percentile(latencies, q) for q in (50, 90, 99))
            print(
                f"COMMIT called -> webhook received, ms: p50 {p50:.2f}  p90 {p90:.2f}"
                f"  p99 {p99:.2f}  max {latencies[-1]:.2f}"
            )
            print(
                "COMMIT returned -> webhook received, ms:"
                + "".join(f"  p{q} {percentile(after_commit, q):.2f}" for q in (50, 90, 99))
                + f"  max {after_commit[-1]:.2f}"
            )
            print(
                "the COMMIT itself, ms:"
                + "".join(f"  p{q} {percentile(commit_ms, q):.2f}" for q in (50, 90, 99))
            )
            ok = p50 <= 20 and p99 <= 100
            print(f"targets p50 <= 20 ms, p99 <= 100 ms: {'met' if ok else 'NOT met'}")
        return 0 if complete and not missing and not duplicates else 1
    finally:
        for proc in listeners:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in listeners:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        hook.close()
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'drop database if exists "{name}" with (force)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True, help="server URL that may create DBs")
    parser.add_argument("--events", type=int, default=1000, help="events measured (1000)")
    parser.add_argument("--rate", type=float, default=100.0, help="events/s; 0 = unpaced (100)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured events first (20)")
    parser.add_argument("--listeners", type=int, default=1, help="listener processes (1)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (120)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
