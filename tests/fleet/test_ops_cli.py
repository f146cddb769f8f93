"""On-call commands through the real CLI (``run_cli``) on a database of the test's own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.harness import run_cli
from tests.sql.job_payloads import valid_jobs
from workers.job_kinds import KINDS

Conn = psycopg.Connection[Any]


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


def cli(url: str, *args: str) -> Any:
    return run_cli(*args, env={"DATABASE_URL": url})


def dead_letter(
    conn: Conn,
    *,
    queue: str = "enrich",
    kind: str | None = "enrich",
    key: str | None = "k",
    error: str = "boom",
    reason: str = "max_attempts",
    age: str = "1 minute",
    headers: dict[str, Any] | None = None,
) -> int:
    """A dead letter as the runtime writes it, plus queue_job()'s dedupe record."""
    row = conn.execute("select coalesce(max(msg_id), 0) + 1 from dragonfly.dead_letters")
    msg_id = int(row.fetchone()[0])  # type: ignore[index]
    message = {"kind": kind, "idempotency_key": key, "payload": {"case": key}}
    if kind and key:
        conn.execute(
            "insert into dragonfly.enqueued_jobs (kind, idempotency_key, msg_id)"
            " values (%s, %s, %s) on conflict do nothing",
            (kind, key, msg_id),
        )
    inserted = conn.execute(
        "insert into dragonfly.dead_letters (queue, msg_id, kind, idempotency_key, message,"
        " headers, attempts, reason, last_error, traceback, dead_at)"
        " values (%s, %s, %s, %s, %s, %s, 5, %s, %s, 'Traceback (most recent call last): ...',"
        " now() - %s::interval) returning id",
        (
            queue,
            msg_id,
            kind,
            key,
            json.dumps(message),
            json.dumps(headers) if headers else None,
            reason,
            error,
            age,
        ),
    ).fetchone()
    assert inserted is not None
    return int(inserted[0])


def listed_ids(stdout: str) -> list[int]:
    return [json.loads(line)["id"] for line in stdout.splitlines() if line.strip()]


def test_dlq_list_filters_by_queue_kind_error_and_time(conn: Conn, fresh_db_url: str) -> None:
    a = dead_letter(conn, key="a", error="VendorError: 503 Service Unavailable", age="3 hours")
    b = dead_letter(conn, key="b", error="ValueError: bad phone", age="10 minutes")
    c = dead_letter(conn, queue="outreach", kind="outreach", key="c", error="SMTP 503")
    d = dead_letter(conn, key=None, kind=None, reason="malformed", error="kind: field required")

    def ids(*args: str) -> list[int]:
        result = cli(fresh_db_url, "dlq", "list", "--json", *args)
        assert result.returncode == 0, result.stderr
        return listed_ids(result.stdout)

    assert ids() == [a, b, c, d]
    assert ids("--queue", "outreach") == [c]
    assert ids("--kind", "enrich") == [a, b]
    assert ids("--error", "503") == [a, c]
    assert ids("--error", "503", "--queue", "enrich") == [a]
    assert ids("--since", "1h") == [b, c, d]
    assert ids("--until", "1h") == [a]
    assert ids("--limit", "2") == [a, b]

    table = cli(fresh_db_url, "dlq", "list", "--error", "phone")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "QUEUE", "KIND"]
    assert len(lines) == 2
    assert "ValueError: bad phone" in lines[1]

    bad = cli(fresh_db_url, "dlq", "list", "--since", "last tuesday")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1


def test_dlq_show_prints_everything_and_fails_cleanly_for_an_unknown_id(
    conn: Conn, fresh_db_url: str
) -> None:
    dl = dead_letter(conn, key="show-me", error="RuntimeError: nope", headers={"trace": "t-1"})
    result = cli(fresh_db_url, "dlq", "show", str(dl))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "show-me",
        "RuntimeError: nope",
        "max_attempts",
        '"trace": "t-1"',
        "Traceback",
    ):
        assert expected in out
    as_json = json.loads(cli(fresh_db_url, "dlq", "show", str(dl), "--json").stdout)
    assert as_json["message"]["idempotency_key"] == "show-me"

    missing = cli(fresh_db_url, "dlq", "show", "999999")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "dragonfly: dead letter 999999 does not exist"


def test_dlq_replay_sends_the_envelope_again_and_records_who_and_when(
    conn: Conn, fresh_db_url: str
) -> None:
    dl = dead_letter(conn, key="again", headers={"trace": "t-9"})
    other = dead_letter(conn, key="untouched")
    before = conn.execute("select message from dragonfly.dead_letters where id = %s", (dl,))
    envelope = before.fetchone()[0]  # type: ignore[index]

    result = cli(fresh_db_url, "dlq", "replay", str(dl), "--by", "alice")
    assert result.returncode == 0, result.stderr
    assert f"replayed dead letter {dl}" in result.stdout

    row = conn.execute(
        "select status, resolved_by, resolved_at is not null, replay_msg_id"
        " from dragonfly.dead_letters where id = %s",
        (dl,),
    ).fetchone()
    assert row is not None
    status, by, resolved, new_msg = row
    assert (status, by, resolved) == ("replayed", "alice", True)
    assert f"as message {new_msg} on enrich" in result.stdout
    msg = conn.execute(
        "select message, headers, read_ct from pgmq.q_enrich where msg_id = %s", (new_msg,)
    ).fetchone()
    assert msg == (envelope, {"trace": "t-9"}, 0)
    pointer = conn.execute(
        "select msg_id from dragonfly.enqueued_jobs where kind = 'enrich'"
        " and idempotency_key = 'again'"
    ).fetchone()
    assert pointer == (new_msg,)
    still = conn.execute("select status from dragonfly.dead_letters where id = %s", (other,))
    assert still.fetchone() == ("dead",)

    twice = cli(fresh_db_url, "dlq", "replay", str(dl))
    assert twice.returncode == 1
    assert f"dead letter {dl} is already replayed" in twice.stderr
    depth = conn.execute("select count(*) from pgmq.q_enrich").fetchone()
    assert depth == (1,)


@pytest.mark.parametrize("command", [["replay"], ["purge", "--yes"]])
def test_replaying_or_purging_an_unknown_id_prints_one_message(
    fresh_db_url: str, command: list[str]
) -> None:
    result = cli(fresh_db_url, "dlq", *command, "999999")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "dead letter 999999 does not exist"


def test_dlq_replay_by_filter_skips_malformed_and_needs_a_selection(
    conn: Conn, fresh_db_url: str
) -> None:
    a = dead_letter(conn, key="a", error="VendorError: 503")
    dead_letter(conn, key="b", error="ValueError")
    bad = dead_letter(conn, key=None, kind=None, reason="malformed", error="VendorError: 503?")

    nothing = cli(fresh_db_url, "dlq", "replay")
    assert nothing.returncode == 2
    assert len(nothing.stderr.strip().splitlines()) == 1

    dry = cli(fresh_db_url, "dlq", "replay", "--error", "vendorerror", "--dry-run")
    assert dry.returncode == 0
    assert f"would replay dead letter {a} " in dry.stdout
    assert conn.execute("select count(*) from pgmq.q_enrich").fetchone() == (0,)

    result = cli(fresh_db_url, "dlq", "replay", "--error", "VendorError")
    assert result.returncode == 1  # the malformed one could not be replayed
    assert f"replayed dead letter {a} " in result.stdout
    assert f"dead letter {bad} has a malformed envelope" in result.stderr
    assert conn.execute("select count(*) from pgmq.q_enrich").fetchone() == (1,)


def test_dlq_refuses_to_replay_a_truncated_dead_letter_and_replays_the_rest(
    conn: Conn, fresh_db_url: str
) -> None:
    # Dead-lettered by the runtime's function: 2 MB of payload is over the 1 MiB limit.
    big = {"kind": "enrich", "idempotency_key": "big", "payload": {"pad": "x" * 2_000_000}}
    msg_id = conn.execute("select pgmq.send('enrich', %s::jsonb)", (json.dumps(big),))
    msg_id = msg_id.fetchone()[0]  # type: ignore[index]
    conn.execute("select * from pgmq.read('enrich', 30, 1)")
    cut = conn.execute(
        "select dragonfly.dead_letter_job('enrich', %s, 1, 'permanent', 'ValueError: huge')",
        (msg_id,),
    ).fetchone()[0]  # type: ignore[index]
    whole = dead_letter(conn, key="whole", error="ValueError: small")

    show = cli(fresh_db_url, "dlq", "show", str(cut))
    assert show.returncode == 0, show.stderr
    assert "truncated:       yes: the message was 2000" in show.stdout
    assert '"idempotency_key": "big"' in show.stdout
    assert "x" * 5000 not in show.stdout

    dry = cli(fresh_db_url, "dlq", "replay", "--error", "ValueError", "--dry-run")
    assert f"would not replay dead letter {cut} (enrich/enrich key=big): truncated" in dry.stdout
    assert f"would replay dead letter {whole} " in dry.stdout

    result = cli(fresh_db_url, "dlq", "replay", "--error", "ValueError")
    assert result.returncode == 1
    assert f"replayed dead letter {whole} " in result.stdout
    assert (
        f"dead letter {cut} (enrich/enrich key=big): not replayed: dead letter {cut} cannot be"
        " replayed: its message (2000" in result.stderr
    )
    assert "truncated stand-in was kept" in result.stderr
    statuses = conn.execute(
        "select id, status from dragonfly.dead_letters where id = any(%s) order by id",
        ([cut, whole],),
    ).fetchall()
    assert statuses == [(cut, "dead"), (whole, "replayed")]
    assert conn.execute("select count(*) from pgmq.q_enrich").fetchone() == (1,)


def test_dlq_purge_asks_for_confirmation_and_marks_rows_purged(
    conn: Conn, fresh_db_url: str
) -> None:
    a = dead_letter(conn, queue="outreach", kind="outreach", key="a")
    b = dead_letter(conn, queue="outreach", kind="outreach", key="b")
    keep = dead_letter(conn, key="keep")

    refused = cli(fresh_db_url, "dlq", "purge", "--queue", "outreach")  # stdin is not a TTY
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "refusing to purge 2 dead letter(s)" in lines[0]
    assert "--yes" in lines[0]
    open_count = conn.execute("select count(*) from dragonfly.dead_letters where status = 'dead'")
    assert open_count.fetchone() == (3,)

    unselected = cli(fresh_db_url, "dlq", "purge", "--yes")
    assert unselected.returncode == 2

    done = cli(fresh_db_url, "dlq", "purge", "--queue", "outreach", "--yes", "--by", "bob")
    assert done.returncode == 0, done.stderr
    assert "purged 2 dead letter(s) by bob" in done.stdout
    rows = conn.execute(
        "select id, status, resolved_by from dragonfly.dead_letters order by id"
    ).fetchall()
    assert rows == [(a, "purged", "bob"), (b, "purged", "bob"), (keep, "dead", None)]

    purged_list = cli(fresh_db_url, "dlq", "list", "--status", "purged", "--json")
    assert listed_ids(purged_list.stdout) == [a, b]


def test_queues_prints_depth_in_flight_deferred_age_and_dead_letters(
    conn: Conn, fresh_db_url: str
) -> None:
    for n in range(3):
        conn.execute("select pgmq.send('enforce', %s::jsonb)", (json.dumps({"n": n}),))
    conn.execute("select * from pgmq.read('enforce', 300, 2)")
    conn.execute("update pgmq.q_enforce set enqueued_at = now() - interval '2 hours 5 minutes'")
    dead_letter(conn, queue="enforce", kind="enforce", key="x")
    # Held back by its enqueuer, as outreach is until quiet hours end: deferred, not in
    # flight, due in about 10 and 20 minutes (the earlier one is shown).
    for delay in (600, 1200):
        conn.execute("select pgmq.send('outreach', '{}'::jsonb, %s)", (delay,))

    result = cli(fresh_db_url, "queues")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "QUEUE",
        "DEPTH",
        "VISIBLE",
        "IN_FLIGHT",
        "DEFERRED",
        "NEXT_DUE",
        "OLDEST",
        "DEAD_LETTERS",
        "SENT",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == set(KINDS)
    assert rows["enforce"] == ["3", "1", "2", "0", "-", "2h5m", "1", "3"]
    assert rows["enrich"] == ["0", "0", "0", "0", "-", "-", "0", "0"]
    outreach = rows["outreach"]
    assert outreach[:4] == ["2", "0", "0", "2"]
    assert outreach[4] == "in", outreach
    assert re.fullmatch(r"(9m\d+s|10m0s)", outreach[5]), outreach

    as_json = json.loads(cli(fresh_db_url, "queues", "--json").stdout)
    enforce = next(q for q in as_json if q["queue"] == "enforce")
    assert (enforce["in_flight"], enforce["deferred"], enforce["next_due_at"]) == (2, 0, None)
    assert enforce["oldest_age_sec"] >= 2 * 3600
    held = next(q for q in as_json if q["queue"] == "outreach")
    assert (held["in_flight"], held["deferred"]) == (0, 2)
    due_in = datetime.fromisoformat(held["next_due_at"]) - datetime.now(UTC)
    assert timedelta(minutes=9) < due_in <= timedelta(minutes=10)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [("{not json", "--payload is not valid JSON"), ("[1, 2]", "must be a JSON object")],
)
def test_enqueue_with_a_bad_payload_is_one_line_and_exit_2(
    fresh_db_url: str, payload: str, expected: str
) -> None:
    result = cli(fresh_db_url, "enqueue", "enrich", "--payload", payload, "--key", "k")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dragonfly: ")
    assert expected in lines[0]


def has_queue_job(conn: Conn) -> bool:
    row = conn.execute("select to_regprocedure('public.queue_job(jsonb)') is not null").fetchone()
    return bool(row and row[0])


def test_enqueue_calls_queue_job_and_deduplicates(conn: Conn, fresh_db_url: str) -> None:
    if not has_queue_job(conn):
        pytest.skip("public.queue_job(jsonb) is not in the migrations yet")
    case_id = valid_jobs(conn)["enrich"]["case_id"]
    payload = json.dumps({"case_id": case_id})
    args = ("enqueue", "enrich", "--payload", payload, "--key", "case-7", "--by", "ops")
    first = cli(fresh_db_url, *args)
    assert first.returncode == 0, first.stderr
    second = cli(fresh_db_url, *args)
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout  # the same message id: nothing sent twice
    rows = conn.execute("select message from pgmq.q_enrich").fetchall()
    assert len(rows) == 1
    message = rows[0][0]
    assert (message["kind"], message["idempotency_key"], message["payload"]) == (
        "enrich",
        "case-7",
        {"case_id": case_id},
    )
    assert message["requested_by"] == "ops"

    # A malformed job is refused at the door, not dead-lettered later.
    malformed = cli(fresh_db_url, "enqueue", "enrich", "--payload", "{}", "--key", "k")
    assert malformed.returncode == 2
    assert malformed.stderr == "dragonfly: queue_job: enrich jobs need payload.case_id\n"

    unknown = cli(fresh_db_url, "enqueue", "nosuchkind", "--payload", "{}", "--key", "k")
    assert unknown.returncode == 2
    assert len(unknown.stderr.strip().splitlines()) == 1
    assert "kind must be one of" in unknown.stderr
