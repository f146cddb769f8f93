"""Benchmark: how long every console page takes to render at size.

    .venv/bin/python bench/bench_console.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The URL is an admin URL: the benchmark creates and migrates a scratch database on that
server and fills it with 10,000 dead letters (across queues, three tenants and none, with
errors and case ids to search by), 100,000 completed jobs (a fifth of them for the cases),
a day of per-minute queue history, 2,000 alert deliveries, 200 cases with timelines, audit
rows and heartbeats. It serves the console in this process (uvicorn on loopback, the real
application and database) and times each page over HTTP, signed in as the static admin
(every tenant) and as an operator of one tenant (row-level security and tenant filters
apply): ``--rounds`` requests per page after two warm-up ones. It prints p50, p90 and max in
milliseconds per page and drops the database. The goal is every page under 300 ms.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._scratch import scratch_database
from bench._stats import percentile
from workers.console.app import ConsoleConfig, build_app
from workers.console.auth import TokenVerifier
from workers.console.db import ConsoleDatabase

SECRET = "bench-console-jwt-secret-0123456789abcdef"
ADMIN = "bench-admin-token"

FILL = """
insert into auth.users (id, email) values (%(user)s, 'op@acme.test');
insert into public.tenant_members (tenant_id, user_id, role) values (%(a)s, %(user)s, 'operator');

insert into dragonfly.dead_letters
    (queue, msg_id, kind, idempotency_key, message, attempts, reason, last_error, traceback,
     enqueued_at, dead_at)
select q, g, q, 'bench-' || g,
       jsonb_build_object(
           'kind', q, 'idempotency_key', 'bench-' || g,
           'payload', jsonb_build_object('case_id', (%(cases)s::uuid[])[1 + g %% 200], 'n', g),
           'requested_by', 'bench')
       || case g %% 4 when 0 then '{}'::jsonb
                      when 1 then jsonb_build_object('tenant', %(b)s::text)
                      else jsonb_build_object('tenant', %(a)s::text) end,
       1 + g %% 5, case when g %% 7 = 0 then 'permanent' else 'max_attempts' end,
       case g %% 5 when 0 then 'VendorError: 503 Service Unavailable'
                   when 1 then 'TransientError: timeout after 10s'
                   when 2 then 'PermanentError: the vendor rejected the request (422)'
                   when 3 then 'OperationalError: 40P01 deadlock detected'
                   else 'ValueError: no phone number for plaintiff ' || g end,
       repeat('  File "workers/enrich/handler.py", line 42, in handle' || chr(10), 20),
       now() - make_interval(mins => g), now() - make_interval(mins => g) + interval '5 minutes'
  from generate_series(1, 10000) as g,
       lateral (select (array['enrich', 'outreach', 'enforce', 'case_copilot'])[1 + g %% 4] as q)
           as k;

insert into dragonfly.completed_jobs
    (kind, idempotency_key, queue, msg_id, attempts, duration_ms, worker, completed_at, case_id,
     tenant)
select q, 'done-' || g, q, 100000 + g, 1, 20, 'bench:1', now() - make_interval(secs => g),
       case when g %% 5 = 0 then (%(cases)s::uuid[])[1 + g %% 200] end,
       case when g %% 2 = 0 then %(a)s::uuid end
  from generate_series(1, 100000) as g,
       lateral (select (array['enrich', 'outreach', 'enforce', 'case_copilot'])[1 + g %% 4] as q)
           as k;

insert into dragonfly.queue_samples
    (queue, sampled_at, depth, visible, in_flight, deferred, oldest_age_sec, dead_letters, done,
     dead_lettered)
select q, date_trunc('minute', now()) - make_interval(mins => m), (m * 7) %% 500, (m * 7) %% 400,
       m %% 8, 0, m %% 300, 2500, 50 + m %% 30, m %% 3
  from generate_series(0, 1439) as m,
       unnest(array['enrich', 'outreach', 'enforce', 'case_copilot']) as q;

insert into dragonfly.alert_deliveries
    (event_id, case_id, event_kind, event_created_at, rule, sink, context, status, attempts,
     last_error, delivered_at, dead_at)
select gen_random_uuid(), (%(cases)s::uuid[])[1 + g %% 200], 'payment_received',
       now() - make_interval(mins => g), 'payment_received', 'slack', '{}',
       case when g %% 10 = 0 then 'dead' else 'delivered' end, 1 + g %% 8,
       case when g %% 10 = 0 then 'HTTP 404 from https://hooks.slack.com/***' end,
       case when g %% 10 <> 0 then now() end, case when g %% 10 = 0 then now() end
  from generate_series(1, 2000) as g;

insert into dragonfly.console_audit
    (actor, action, dry_run, batch, target_id, queue, kind, tenant, outcome)
select 'op@acme.test', 'replay', g %% 2 = 0, gen_random_uuid(), g, 'enrich', 'enrich', %(a)s::uuid,
       case when g %% 2 = 0 then 'would_replay' else 'replayed' end
  from generate_series(1, 1000) as g;

select dragonfly.fleet_heartbeat('bench-host', p, n, now(), true)
  from (values (1001, 'worker:enrich'), (1002, 'worker:outreach'), (1003, 'worker:enforce'),
               (1004, 'worker:case_copilot'), (1005, 'scheduler'), (1006, 'listener'),
               (1007, 'console')) as v (p, n);
"""


def seed_cases(conn: psycopg.Connection[Any], tenant: str, count: int) -> list[str]:
    """``count`` open cases of ``tenant`` with a few timeline events each (through the RPCs)."""
    cases: list[str] = []
    for n in range(count):
        plaintiff = conn.execute(
            "insert into public.plaintiffs (name, status, tenant_id) values (%s, 'new', %s)"
            " returning id",
            (f"Plaintiff {n}", tenant),
        ).fetchone()
        assert plaintiff is not None
        judgment = conn.execute(
            "insert into public.judgments (plaintiff_id, debtor_name, judgment_amount,"
            " balance_due, status, county, state) values (%s, %s, 5000, 5000, 'active', 'Kings',"
            " 'NY') returning id",
            (plaintiff[0], f"Debtor {n}"),
        ).fetchone()
        assert judgment is not None
        conn.execute(
            "insert into judgments.cases (judgment_id, case_number) values (%s, %s)",
            (judgment[0], f"BENCH-{tenant[:8]}-{n:05d}"),
        )
        case = conn.execute(
            "select public.open_enforcement_case(%s)",
            (json.dumps({"judgment_id": str(judgment[0]), "created_by": "bench"}),),
        ).fetchone()
        assert case is not None
        case_id = str(case[0])
        for event in range(5):
            conn.execute(
                "select public.log_enforcement_event(%s)",
                (
                    json.dumps(
                        {
                            "case_id": case_id,
                            "event_kind": "note_added",
                            "actor": "bench",
                            "payload": {"n": event},
                        }
                    ),
                ),
            )
        cases.append(case_id)
    return cases


def serve(url: str) -> tuple[str, uvicorn.Server, threading.Thread, ConsoleDatabase]:
    database = ConsoleDatabase(url, max_size=4)
    database.open()
    app = build_app(
        ConsoleConfig(
            database=database,
            verifier=TokenVerifier(jwt_secret=SECRET, admin_token=ADMIN),
            session_secret="bench",
        )
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread, database


def sign_in(base: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    page = client.get("/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    answer = client.post("/sign-in", data={"csrf": csrf[1], "token": token}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="admin URL of the server")
    parser.add_argument("--rounds", type=int, default=30, help="timed requests per page")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    acme, bolt, user = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    with scratch_database(args.database_url, "bench_console", keep=args.keep) as url:
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "insert into public.tenants (id, slug, name) values (%s, 'acme', 'Acme'),"
                " (%s, 'bolt', 'Bolt')",
                (acme, bolt),
            )
            cases = seed_cases(conn, acme, 150) + seed_cases(conn, bolt, 50)
            params = {"a": acme, "b": bolt, "user": user, "cases": cases}
            for statement in FILL.split(";\n"):
                if statement.strip():
                    conn.execute(
                        statement, {k: v for k, v in params.items() if f"%({k})s" in statement}
                    )
            conn.execute("vacuum analyze")
            counts = conn.execute(
                "select (select count(*) from dragonfly.dead_letters),"
                " (select count(*) from dragonfly.completed_jobs),"
                " (select count(*) from dragonfly.queue_samples),"
                " (select count(*) from dragonfly.alert_deliveries)"
            ).fetchone()
            dead_id = conn.execute(
                "select max(id) from dragonfly.dead_letters where message ->> 'tenant' = %s",
                (acme,),
            ).fetchone()
        assert counts is not None
        assert dead_id is not None
        print(
            f"filled in {time.perf_counter() - started:.1f}s: {counts[0]} dead letters,"
            f" {counts[1]} completed jobs, {counts[2]} queue samples, {counts[3]} alert"
            " deliveries, 200 cases"
        )
        now = int(time.time())
        operator_token = jwt.encode(
            {
                "sub": user,
                "email": "op@acme.test",
                "role": "authenticated",
                "aud": "authenticated",
                "exp": now + 3600,
                "tenant_roles": {acme: "operator"},
            },
            SECRET,
            algorithm="HS256",
        )
        base, server, thread, database = serve(url)
        case = cases[0]
        pages = [
            "/queues",
            "/queues?window=day",
            "/queues?partial=table",
            "/dead-letters",
            "/dead-letters?error=deadlock&since=7d",
            f"/dead-letters?case={case}",
            "/dead-letters?status=all&offset=5000",
            f"/dead-letters/{dead_id[0]}",
            "/audit",
            "/alerts",
            "/alerts?status=dead",
            "/cases",
            f"/cases/{case}",
            "/fleet",
        ]
        worst = 0.0
        try:
            for who, token in (("admin token", ADMIN), ("operator of one tenant", operator_token)):
                client = sign_in(base, token)
                print(f"\n{who}: {args.rounds} requests per page (ms)")
                print(f"{'page':<58} {'p50':>8} {'p90':>8} {'max':>8}")
                for path in pages:
                    for _ in range(2):
                        answer = client.get(path)
                        assert answer.status_code == 200, (path, answer.status_code)
                    times = []
                    for _ in range(args.rounds):
                        t0 = time.perf_counter()
                        answer = client.get(path)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert answer.status_code == 200
                    worst = max(worst, max(times))
                    print(
                        f"{path[:58]:<58} {statistics.median(times):8.1f}"
                        f" {percentile(times, 90):8.1f} {max(times):8.1f}"
                    )
                client.close()
        finally:
            server.should_exit = True
            thread.join(10)
            database.close()
        print(f"\nslowest request: {worst:.1f} ms (goal: every page under 300 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
