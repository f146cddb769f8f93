"""``dragonfly enqueue KIND --file jobs.jsonl`` through the real CLI on a database of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.harness import run_cli
from tests.sql.job_payloads import valid_jobs

Conn = psycopg.Connection[Any]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


def cli(url: str, *args: str) -> Any:
    return run_cli(*args, env={"DATABASE_URL": url})


def queued(conn: Conn) -> list[tuple[str, Any, str | None]]:
    return [
        (r[0]["idempotency_key"], r[0]["payload"], r[0]["requested_by"])
        for r in conn.execute("select message from pgmq.q_enrich order by msg_id")
    ]


def write(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_every_line_is_enqueued_once(conn: Conn, fresh_db_url: str, tmp_path: Path) -> None:
    payload = valid_jobs(conn)["enrich"]
    lines = [json.dumps({"idempotency_key": f"f{n}", "payload": payload}) for n in range(1500)]
    lines.insert(3, "")  # blank lines are skipped
    lines.append(json.dumps({"kind": "enrich", "idempotency_key": "f0", "payload": payload}))
    path = write(tmp_path, lines)
    result = cli(fresh_db_url, "enqueue", "enrich", "--file", path, "--by", "ops@example.test")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"enqueued 1501 of 1501 enrich jobs from {path} (1500 new, 1 enqueued before)"
    )
    got = queued(conn)
    assert [key for key, _, _ in got] == [f"f{n}" for n in range(1500)]
    assert {by for _, _, by in got} == {"ops@example.test"}
    # Again: every key is known, nothing is sent twice.
    again = cli(fresh_db_url, "enqueue", "enrich", "--file", path)
    assert again.returncode == 0, again.stderr
    assert "(0 new, 1501 enqueued before)" in again.stdout
    assert len(queued(conn)) == 1500


def test_a_bad_line_refuses_the_whole_file(conn: Conn, fresh_db_url: str, tmp_path: Path) -> None:
    payload = valid_jobs(conn)["enrich"]
    good = json.dumps({"idempotency_key": "ok", "payload": payload})
    path = write(
        tmp_path,
        [
            good,
            "{not json",
            "[1, 2]",
            json.dumps({"kind": "enforce", "idempotency_key": "x", "payload": {}}),
            json.dumps({"idempotency_key": "", "payload": payload}),
            json.dumps({"idempotency_key": "y", "paylod": payload}),
        ],
    )
    result = cli(fresh_db_url, "enqueue", "enrich", "--file", path)
    assert result.returncode == 2
    assert result.stdout == ""
    errors = result.stderr.splitlines()
    assert [line.split(": ", 2)[1] for line in errors[:-1]] == [f"{path}:{n}" for n in range(2, 7)]
    assert "not valid JSON" in errors[0]
    assert "must be a JSON object, got list" in errors[1]
    assert "kind 'enforce' is not enrich" in errors[2]
    assert "idempotency_key must be a non-empty string" in errors[3]
    assert "unknown field(s) paylod" in errors[4]
    assert errors[-1] == f"dragonfly: {path}: 5 bad line(s); nothing was enqueued"
    assert queued(conn) == []


def test_jobs_the_database_refuses_are_reported_per_line(
    conn: Conn, fresh_db_url: str, tmp_path: Path
) -> None:
    payload = valid_jobs(conn)["enrich"]
    path = write(
        tmp_path,
        [
            json.dumps({"idempotency_key": "a", "payload": payload}),
            json.dumps({"idempotency_key": "b", "payload": {"case_id": "not-a-uuid"}}),
            json.dumps({"idempotency_key": "c", "payload": payload, "delay_seconds": 90000}),
            json.dumps({"idempotency_key": "d", "payload": payload}),
        ],
    )
    result = cli(fresh_db_url, "enqueue", "enrich", "--file", path)
    assert result.returncode == 1
    assert result.stdout.strip() == (
        f"enqueued 2 of 4 enrich jobs from {path} (2 new, 0 enqueued before)"
    )
    assert result.stderr.splitlines() == [
        f"dragonfly: {path}:2: 22023 queue_job: payload.case_id must be a uuid (got 'not-a-uuid')",
        f"dragonfly: {path}:3: 22023 queue_job: delay_seconds must be an integer between 0 and"
        " 86400 for internal callers (got 90000)",
    ]
    assert [key for key, _, _ in queued(conn)] == ["a", "d"]


def test_file_and_single_job_options_do_not_mix(fresh_db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, [])
    mixed = cli(fresh_db_url, "enqueue", "enrich", "--file", path, "--key", "k")
    assert mixed.returncode == 2
    assert "drop --key, --payload, --delay and --tenant" in mixed.stderr
    neither = cli(fresh_db_url, "enqueue", "enrich")
    assert neither.returncode == 2
    assert "enqueue needs --key and --payload, or --file" in neither.stderr
    missing = cli(fresh_db_url, "enqueue", "enrich", "--file", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


def test_a_job_names_its_tenant(conn: Conn, fresh_db_url: str, tmp_path: Path) -> None:
    payload = valid_jobs(conn)["enrich"]
    default = "00000000-0000-4000-8000-000000000001"
    other = conn.execute(
        "insert into public.tenants (slug, name) values ('other', 'Other') returning id::text"
    ).fetchone()
    assert other is not None
    path = write(
        tmp_path,
        [
            json.dumps({"idempotency_key": "t1", "payload": payload, "tenant": default}),
            json.dumps({"idempotency_key": "t2", "payload": payload, "tenant": other[0]}),
        ],
    )
    result = cli(fresh_db_url, "enqueue", "enrich", "--file", path)
    # The case is the default tenant's: naming another is the answer for a missing case.
    assert result.returncode == 1
    assert "no court case" in result.stderr
    single = cli(
        fresh_db_url, "enqueue", "enrich", "--key", "t3", "--payload", json.dumps(payload),
        "--tenant", default,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    tenants = {
        r[0]: r[1]
        for r in conn.execute(
            "select message ->> 'idempotency_key', message ->> 'tenant' from pgmq.q_enrich"
        )
    }
    assert tenants == {"t1": default, "t3": default}
    bad = cli(fresh_db_url, "enqueue", "enrich", "--key", "t4", "--payload", "{}", "--tenant", "x")
    assert bad.returncode == 2
    assert "expected a UUID" in bad.stderr
