"""A kind only the tests know, end to end in a real worker process, and the start-up checks.

Nothing outside this package and its migration knows ``tally``: the migration registers
it (row and queue) on a fresh clone of the test database, ``DRAGONFLY_HANDLERS`` names
its ``JOB``, and ``queue_job``, the worker, ``dragonfly queues`` and ``dragonfly dlq``
take it from there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.harness import run_cli
from tests.runtime.support import WorkerProcess, wait_until
from workers.db.migrate import migrate

MIGRATIONS = Path(__file__).parent / "migrations"
HANDLERS = json.dumps({"tally": "tests.tally_kind:JOB"})

Conn = psycopg.Connection[Any]


@pytest.fixture
def tally_db_url(fresh_db_url: str) -> str:
    """A migrated database with the tally kind's migration applied by the migrator."""
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert migrate(conn, MIGRATIONS) == ["20261202104900_tally_kind.sql"]
    return fresh_db_url


@pytest.fixture
def worker(tally_db_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        tally_db_url, tmp_path, kind="tally", handler=None, env={"DRAGONFLY_HANDLERS": HANDLERS}
    )
    try:
        yield process
    finally:
        process.close()


def queue_job(conn: Conn, key: str, payload: dict[str, Any]) -> int:
    row = conn.execute(
        "select public.queue_job(%s)",
        (Jsonb({"kind": "tally", "idempotency_key": key, "payload": payload}),),
    ).fetchone()
    assert row is not None
    return int(row[0])


def cli(url: str, *args: str, handlers: str | None = None) -> Any:
    env = {"DATABASE_URL": url} | ({"DRAGONFLY_HANDLERS": handlers} if handlers else {})
    return run_cli(*args, env=env)


def test_a_kind_only_the_tests_know_runs_end_to_end(
    tally_db_url: str, worker: WorkerProcess
) -> None:
    worker.wait_ready()
    with psycopg.connect(tally_db_url, autocommit=True) as conn:
        ok = queue_job(conn, "tally-ok", {"count": 3})
        bad = queue_job(conn, "tally-bad", {"count": 4, "fail": True})
        assert queue_job(conn, "tally-ok", {"count": 3}) == ok  # deduplicated as any kind

        marks = wait_until(
            lambda: conn.execute(
                "select idempotency_key, count from dragonfly.tally_marks"
            ).fetchall(),
            what="the tally mark",
        )
        assert marks == [("tally-ok", 3)]
        dead = wait_until(
            lambda: conn.execute(
                "select id, msg_id, reason, last_error from dragonfly.dead_letters"
                " where kind = 'tally'"
            ).fetchone(),
            what="the dead letter",
        )
        dead_id, dead_msg, reason, error = dead
        assert (dead_msg, reason) == (bad, "permanent")
        assert "tally of 4 was asked to fail" in error
        done = conn.execute(
            "select kind, idempotency_key, queue, msg_id from dragonfly.completed_jobs"
        ).fetchall()
        assert done == [("tally", "tally-ok", "tally", ok)]
        wait_until(
            lambda: conn.execute("select count(*) from pgmq.q_tally").fetchone() == (0,),
            what="an empty tally queue",
        )

    queues = cli(tally_db_url, "queues", "--json")
    assert queues.returncode == 0, queues.stderr
    tally = next(q for q in json.loads(queues.stdout) if q["queue"] == "tally")
    assert (tally["depth"], tally["dead_letters"], tally["total_messages"]) == (0, 1, 2)
    table = cli(tally_db_url, "queues")
    assert any(line.split()[0] == "tally" for line in table.stdout.splitlines()[1:]), table.stdout

    listed = cli(tally_db_url, "dlq", "list", "--kind", "tally", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["queue"], r["idempotency_key"]) for r in rows] == [
        (dead_id, "tally", "tally-bad")
    ]
    shown = cli(tally_db_url, "dlq", "show", str(dead_id))
    assert shown.returncode == 0, shown.stderr
    assert "kind:            tally" in shown.stdout
    assert "reason:          permanent" in shown.stdout
    assert '"fail": true' in shown.stdout

    worker.terminate()
    assert worker.wait() == 0


def one_line_error(result: Any) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return str(lines[0])


def test_a_worker_refuses_a_python_kind_that_has_no_row(fresh_db_url: str) -> None:
    # DRAGONFLY_HANDLERS defines tally, but its migration was never applied.
    result = cli(fresh_db_url, "worker", "tally", handlers=HANDLERS)
    assert "job kind(s) tally not registered in dragonfly.job_kinds" in one_line_error(result)


def test_a_worker_refuses_a_registered_kind_without_a_python_definition(
    tally_db_url: str,
) -> None:
    result = cli(tally_db_url, "worker", "tally")
    assert "cannot import workers.tally" in one_line_error(result)


def fleet_up(url: str, tmp_path: Path, procfile: str, handlers: str | None = None) -> Any:
    path = tmp_path / "Procfile"
    path.write_text(procfile, encoding="utf-8")
    return cli(url, "up", "--procfile", str(path), "--no-migrate", handlers=handlers)


def test_the_fleet_refuses_to_run_a_kind_without_a_python_definition(
    tally_db_url: str, tmp_path: Path
) -> None:
    undefined = fleet_up(tally_db_url, tmp_path, "tally: dragonfly worker tally\n")
    assert "job kind tally: cannot import workers.tally" in one_line_error(undefined)


def test_the_fleet_refuses_python_kinds_without_a_row(fresh_db_url: str, tmp_path: Path) -> None:
    run = fleet_up(fresh_db_url, tmp_path, "tally: dragonfly worker tally\n", HANDLERS)
    assert "job kind(s) tally not registered" in one_line_error(run)
    # A kind Python defines needs its row even when this fleet does not run it.
    idle = fleet_up(fresh_db_url, tmp_path, "scheduler: dragonfly scheduler\n", HANDLERS)
    assert "job kind(s) tally not registered" in one_line_error(idle)


def send(conn: Conn, key: str, payload: dict[str, Any], provenance: Any) -> int:
    """pgmq.send a tally envelope straight to the queue (provenance None: left out)."""
    envelope = {"kind": "tally", "idempotency_key": key, "payload": payload}
    if provenance is not None:
        envelope["provenance"] = provenance
    row = conn.execute("select pgmq.send('tally', %s)", (Jsonb(envelope),)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_kind_without_a_shape_is_the_fleets_and_operators_only(
    tally_db_url: str, worker: WorkerProcess
) -> None:
    worker.wait_ready()
    with psycopg.connect(tally_db_url, autocommit=True) as conn:
        # At the door: a public caller may not enqueue a kind registered without a shape.
        with conn.transaction():
            conn.execute("set local role anon")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="public callers"):
                queue_job(conn, "tally-anon", {"count": 1})
        # Sent straight to the queue, with public provenance or none: the worker refuses it.
        refused = [
            send(conn, "tally-raw", {"count": 1}, {"level": "public", "role": "anon"}),
            send(conn, "tally-raw", {"count": 1}, None),
        ]
        send(conn, "tally-op", {"count": 2}, {"level": "operator", "role": "enforcement_operator"})

        def dead_letters() -> list[tuple[Any, ...]]:
            return conn.execute(
                "select msg_id, reason, last_error from dragonfly.dead_letters"
                " where kind = 'tally' order by msg_id"
            ).fetchall()

        wait_until(lambda: len(dead_letters()) == 2, what="two dead letters")
        forbidden = "forbidden: public callers may not enqueue tally jobs"
        assert dead_letters() == [(m, "forbidden", forbidden) for m in refused]
        marks = wait_until(
            lambda: conn.execute(
                "select idempotency_key, count from dragonfly.tally_marks"
            ).fetchall(),
            what="the operator's tally mark",
        )
        assert marks == [("tally-op", 2)]
    assert worker.events("job_dead_lettered", reason="forbidden")
    [loaded] = worker.events("job_policy_loaded")
    assert loaded["levels"] == {"internal": "*", "operator": "*"}
    assert loaded["shape"] is False
    worker.terminate()
    assert worker.wait() == 0
