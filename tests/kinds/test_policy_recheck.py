"""The shipped workers re-check the envelope's provenance before acting: a message that did
not come through queue_job() (sent straight with pgmq.send) and asks for more than its
sender's level may is dead-lettered as forbidden and changes nothing; the same message from
the fleet is handled. Real `dragonfly worker enrich|enforce` processes, logged in as the
fleet is."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.kinds.enforce_copilot_support import (
    actions,
    add_asset,
    case_row,
    completed,
    dead_letter,
    queue_empty,
    worker_process,
)
from tests.kinds.enrich_outreach_support import (
    RICH_BUNDLE,
    make_case,
    open_enforcement_case,
    wait_for,
)
from tests.runtime.support import INTERNAL

pytestmark = pytest.mark.slow

Conn = psycopg.Connection[Any]

PUBLIC = {"level": "public", "role": "anon", "sub": None, "email": None}


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


def _send(conn: Conn, kind: str, key: str, payload: dict[str, Any], provenance: Any) -> int:
    envelope: dict[str, Any] = {"kind": kind, "idempotency_key": key, "payload": payload}
    if provenance is not None:
        envelope["provenance"] = provenance
    row = conn.execute("select pgmq.send(%s, %s)", (kind, Jsonb(envelope))).fetchone()
    assert row is not None
    return int(row[0])


def _enrichment(conn: Conn, case_id: uuid.UUID) -> tuple[Any, ...]:
    row = conn.execute(
        "select c.collectability_score, c.last_scored_at,"
        " (select count(*) from enrichment.contacts k where k.case_id = c.id),"
        " (select count(*) from enrichment.assets a where a.case_id = c.id)"
        " from judgments.cases c where c.id = %s",
        (case_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_pushed_bundle_from_a_public_sender_is_forbidden_and_from_the_fleet_scores(
    fresh_db_url: str, conn: Conn
) -> None:
    ids = make_case(conn)
    open_enforcement_case(conn, ids)
    payload = {"case_id": str(ids["case_id"]), "bundle": RICH_BUNDLE}
    with worker_process("enrich", fresh_db_url):
        public = _send(conn, "enrich", "pushed-public", payload, PUBLIC)
        unknown = _send(conn, "enrich", "pushed-unknown", payload, None)  # counts as public
        for msg_id in (public, unknown):
            assert wait_for(lambda m=msg_id: dead_letter(conn, "enrich", m), what="forbidden") == (
                "forbidden",
                "forbidden: public callers may not set payload.bundle of enrich jobs",
            )
        assert _enrichment(conn, ids["case_id"]) == (None, None, 0, 0)
        assert not completed(conn, "enrich", "pushed-public")
        assert not completed(conn, "enrich", "pushed-unknown")
        assert queue_empty(conn, "enforce")  # no plan job either

        fleet = "pushed-internal"
        _send(conn, "enrich", fleet, payload, INTERNAL)
        wait_for(lambda: completed(conn, "enrich", fleet), what="the fleet's enrich job")
    score, scored_at, contacts, assets = _enrichment(conn, ids["case_id"])
    assert score is not None
    assert scored_at is not None
    assert (contacts, assets) == (3, 2)


def test_a_requested_action_from_a_public_sender_is_forbidden_and_opens_nothing(
    fresh_db_url: str, conn: Conn
) -> None:
    ids = make_case(conn)
    case_id = open_enforcement_case(conn, ids)
    add_asset(conn, ids["case_id"], "bank", "Chase")
    conn.execute("update public.enforcement_cases set tier = 'tier1' where id = %s", (case_id,))
    before = case_row(conn, case_id)
    payload = {"case_id": str(case_id), "requested_action": "marshal"}
    with worker_process("enforce", fresh_db_url):
        public = _send(conn, "enforce", "marshal-public", payload, PUBLIC)
        unknown = _send(conn, "enforce", "marshal-unknown", payload, None)
        for msg_id in (public, unknown):
            assert wait_for(lambda m=msg_id: dead_letter(conn, "enforce", m), what="forbidden") == (
                "forbidden",
                "forbidden: public callers may not set payload.requested_action of enforce jobs",
            )
        assert actions(conn, case_id) == []
        assert case_row(conn, case_id) == before
        # What a public caller may ask for, it still may: a plan of the case by id.
        _send(conn, "enforce", "plan-public", {"case_id": str(case_id)}, PUBLIC)
        wait_for(lambda: completed(conn, "enforce", "plan-public"), what="the public plan job")
    assert actions(conn, case_id) == [("bank_levy", "queued")]
