"""dead_letter_job()'s bounds: the size limit and its setting, the stand-in's fields, and the
error and traceback kept (each test in its rolled-back transaction)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def dead_letter(
    db: Conn,
    message: Any,
    *,
    error: str = "PermanentError: no",
    traceback: str | None = None,
) -> dict[str, Any]:
    """Send, read and dead-letter ``message`` on the enrich queue; the dead letter's row."""
    msg_id = db.execute("select pgmq.send('enrich', %s)", (Jsonb(message),)).fetchone()[0]  # type: ignore[index]
    db.execute("select * from pgmq.read('enrich', 30, 10)")
    dead_id = db.execute(
        "select dragonfly.dead_letter_job('enrich', %s, 1, 'permanent', %s, %s)",
        (msg_id, error, traceback),
    ).fetchone()[0]  # type: ignore[index]
    row = db.execute(
        "select message, truncated_from_bytes, last_error, traceback"
        " from dragonfly.dead_letters where id = %s",
        (dead_id,),
    ).fetchone()
    assert row is not None
    return dict(zip(("message", "truncated", "error", "traceback"), row, strict=True))


def job(pad: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "enrich", "idempotency_key": "k-1", "payload": {"pad": "x" * pad}, **extra}


def test_the_limit_is_a_setting_of_its_own(db: Conn) -> None:
    db.execute("set local dragonfly.dead_letter_max_bytes = '20000'")
    assert dead_letter(db, job(19_000))["truncated"] is None
    over = dead_letter(db, job(21_000) | {"idempotency_key": "k-2"})
    assert over["truncated"] is not None
    assert over["truncated"] > 20_000
    assert over["message"]["truncated"]["limit_bytes"] == 20_000


@pytest.mark.parametrize("value", ["abc", "100", "-5", "99999999999"])
def test_an_invalid_setting_warns_and_the_default_applies(db: Conn, value: str) -> None:
    notices: list[str] = []
    db.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    db.execute("select set_config('dragonfly.dead_letter_max_bytes', %s, true)", (value,))
    kept = dead_letter(db, job(200_000))  # under the default 1 MiB
    assert kept["truncated"] is None
    assert any("dragonfly.dead_letter_max_bytes must be an integer" in n for n in notices)


def test_the_stand_in_keeps_only_small_envelope_fields(db: Conn) -> None:
    stand_in = dead_letter(db, job(1_200_000, requested_by="r" * 2000, provenance={"level": "x"}))[
        "message"
    ]
    assert set(stand_in) == {"kind", "idempotency_key", "provenance", "truncated"}
    assert stand_in["provenance"] == {"level": "x"}


def test_a_message_that_is_not_an_object_is_cut_too(db: Conn) -> None:
    stand_in = dead_letter(db, ["x" * 1_200_000])["message"]
    assert set(stand_in) == {"truncated"}
    assert stand_in["truncated"]["prefix"].startswith('["xxx')


def test_the_error_keeps_its_start_and_the_traceback_its_end(db: Conn) -> None:
    error = "ValueError: " + "e" * 20_000
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 20_000 + "ValueError: end"
    kept = dead_letter(db, job(10), error=error, traceback=traceback)
    assert kept["error"] == error[:8192] + f" [{len(error) - 8192} more characters cut]"
    assert kept["traceback"] == (
        f"[{len(traceback) - 65536} characters cut]\n" + traceback[-65536:]
    )
    assert kept["traceback"].endswith("ValueError: end")
    short = dead_letter(db, job(10) | {"idempotency_key": "k-2"}, traceback="tb")
    assert (short["error"], short["traceback"]) == ("PermanentError: no", "tb")
