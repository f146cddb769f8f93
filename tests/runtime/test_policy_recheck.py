"""The worker's re-check of the envelope's provenance against the job-kind policy, driven
in-process: messages sent straight to the queue (not through queue_job) whose sender may
not ask for what they carry are dead-lettered as forbidden with no effect at all."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.runtime.handlers import ProbePayload, handle
from tests.runtime.support import (
    INTERNAL,
    RecordingMetrics,
    effects_by_key,
    make_runner,
    queue_length,
    send_raw,
)
from workers.runtime import FetchContext, JobContext, JobKind, queries
from workers.runtime.errors import Forbidden
from workers.runtime.watchdog import Slot

Conn = psycopg.Connection[Any]

PUBLIC = {"level": "public", "role": "anon", "sub": None, "email": None}


@pytest.fixture(autouse=True)
def shipped_enrich_shape(conn: Conn) -> None:
    """The enrich kind's shape as shipped (the runtime tests' database lifts it for their
    probe payloads): the policy checked here is the real one."""
    conn.execute(
        "update dragonfly.job_kinds k set payload_fields = s.payload_fields"
        " from runtime_test.shipped_shapes s where s.kind = k.kind and k.kind = 'enrich'"
    )


def _envelope(key: str, payload: dict[str, Any], provenance: Any = None) -> dict[str, Any]:
    envelope: dict[str, Any] = {"kind": "enrich", "idempotency_key": key, "payload": payload}
    if provenance is not None:
        envelope["provenance"] = provenance
    return envelope


def _dead(conn: Conn) -> dict[int, tuple[str, str, int, str | None]]:
    rows = conn.execute(
        "select msg_id, reason, last_error, attempts, traceback from dragonfly.dead_letters"
    ).fetchall()
    return {int(r[0]): (str(r[1]), str(r[2]), int(r[3]), r[4]) for r in rows}


def _run(conn: Conn, runner: Any) -> Any:
    return runner.run_deliveries(conn, Slot(0), queries.read(conn, "enrich", 30, 20))


def test_a_sender_that_may_not_set_a_field_gets_a_forbidden_dead_letter_and_no_effect(
    conn: Conn,
) -> None:
    fetched: list[str] = []

    def fetch(ctx: FetchContext, _payload: ProbePayload) -> None:
        fetched.append(ctx.envelope.idempotency_key)

    job = JobKind(kind="enrich", payload=ProbePayload, handle=handle, fetch=fetch)
    metrics = RecordingMetrics()
    runner = make_runner(metrics, job=job)
    # The enrich policy: internal and operator may set every field; public only case_id.
    anonymous = send_raw(conn, _envelope("no-provenance", {"fail": "permanent"}))
    public = send_raw(conn, _envelope("public-sleep", {"sleep": 0.5}, PUBLIC))
    ok = {
        send_raw(conn, _envelope("public-nothing", {}, PUBLIC)): "public-nothing",
        # An explicit null is the field left out, as queue_job() has it.
        send_raw(conn, _envelope("public-null", {"fail": None}, PUBLIC)): "public-null",
        send_raw(conn, _envelope("internal", {"sleep": 0.0}, INTERNAL)): "internal",
        send_raw(conn, _envelope("operator", {"sleep": 0.0}, {"level": "operator"})): "operator",
        # Fields the enqueueing RPC formed itself, named in the provenance.
        send_raw(
            conn, _envelope("derived", {"sleep": 0.0}, {**PUBLIC, "derived": ["sleep"]})
        ): "derived",
    }
    unknown_level = send_raw(conn, _envelope("root", {}, {"level": "root"}))

    report = _run(conn, runner)

    assert {j.delivery.msg_id for j, _ in report.done} == set(ok)
    assert effects_by_key(conn) == dict.fromkeys(ok.values(), 1)
    assert sorted(fetched) == sorted(ok.values())  # no outside phase for the refused
    dead = _dead(conn)
    assert dead[anonymous] == (
        "forbidden",
        "forbidden: public callers may not set payload.fail of enrich jobs",
        1,
        None,
    )
    assert dead[public] == (
        "forbidden",
        "forbidden: public callers may not set payload.sleep of enrich jobs",
        1,
        None,
    )
    assert dead[unknown_level][0] == "malformed"
    assert "provenance.level" in dead[unknown_level][1]
    assert set(dead) == {anonymous, public, unknown_level}
    assert queue_length(conn) == 0
    refused = [kw for name, kw in metrics.calls if name == "dead_lettered"]
    assert sorted(kw["reason"] for kw in refused) == ["forbidden", "forbidden", "malformed"]
    assert [name for name, _ in metrics.calls].count("failed") == 0  # never attempted


def test_a_level_without_a_policy_row_may_not_enqueue_and_the_policy_is_read_once(
    conn: Conn,
) -> None:
    conn.execute(
        "delete from dragonfly.job_kind_policies where kind = 'enrich' and level = 'public'"
    )
    runner = make_runner()
    first = send_raw(conn, _envelope("public-1", {}, PUBLIC))
    _run(conn, runner)
    assert runner.policy is not None
    assert set(runner.policy.levels) == {"internal", "operator"}
    assert runner.policy.shape == {"case_id", "bundle"}
    assert _dead(conn)[first][:2] == (
        "forbidden",
        "forbidden: public callers may not enqueue enrich jobs",
    )

    # A change of policy reaches a worker when it starts again, not mid-run.
    conn.execute(
        "insert into dragonfly.job_kind_policies (kind, level, fields)"
        " values ('enrich', 'public', array['case_id', 'sleep'])"
    )
    second = send_raw(conn, _envelope("public-2", {"sleep": 0.0}, PUBLIC))
    _run(conn, runner)
    assert _dead(conn)[second][0] == "forbidden"
    restarted = make_runner()
    third = send_raw(conn, _envelope("public-3", {"sleep": 0.0}, PUBLIC))
    report = _run(conn, restarted)
    assert [j.delivery.msg_id for j, _ in report.done] == [third]
    assert effects_by_key(conn) == {"public-3": 1}


def test_a_handler_raising_forbidden_is_dead_lettered_at_once_as_forbidden(conn: Conn) -> None:
    def refuse(_ctx: JobContext, _payload: ProbePayload) -> None:
        raise Forbidden("forbidden: this campaign is not open to public callers")

    metrics = RecordingMetrics()
    runner = make_runner(metrics, job=JobKind(kind="enrich", payload=ProbePayload, handle=refuse))
    msg_id = send_raw(conn, _envelope("refused", {}, INTERNAL))
    _run(conn, runner)
    reason, error, attempts, _tb = _dead(conn)[msg_id]
    assert (reason, error, attempts) == (
        "forbidden",
        "forbidden: this campaign is not open to public callers",
        1,
    )
    assert [name for name, _ in metrics.calls] == ["failed", "dead_lettered"]
    assert metrics.calls[0][1]["retrying"] is False


@pytest.mark.parametrize("field", ["x" * 200, "bad field\n"])
def test_a_strange_field_name_is_quoted_and_cut_in_the_reason(conn: Conn, field: str) -> None:
    msg_id = send_raw(conn, _envelope("odd", {field: 1}, PUBLIC))
    _run(conn, make_runner())
    _reason, error, _attempts, _tb = _dead(conn)[msg_id]
    assert error == (f"forbidden: public callers may not set payload.{field[:60]!r} of enrich jobs")
