"""The enrich batch path (workers/enrich/batch.py; enrichment.prepare_scoring_batch,
record_case_scores_batch and merge_bundles): it leaves the database exactly as the single
path does, job for job, and leaves alone (with nothing written) what it cannot take.

Both paths run in the ``db`` fixture's transaction, each in a savepoint rolled back
afterwards, from the same starting state; ``now()`` is the transaction's start, so even the
timestamps they write must match. The runtime's part is emulated as it is specified
(``JobKind.handle_batch``): the batch under a savepoint, then the jobs it did not return
through ``handle``'s code, each under its own savepoint, in their order.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from tests.kinds.enrich_outreach_support import (
    RICH_BUNDLE,
    make_case,
    open_enforcement_case,
)
from workers.enrich.batch import handle_batch, select_items
from workers.enrich.handler import run
from workers.enrich.payload import EnrichPayload
from workers.runtime import BatchContext, BatchItem, Envelope, PermanentError

Conn = psycopg.Connection[Any]
Items = list[BatchItem[EnrichPayload]]


def _item(msg_id: int, case_id: uuid.UUID, bundle: dict[str, Any] | None = None) -> Any:
    payload: dict[str, Any] = {"case_id": str(case_id)}
    if bundle is not None:
        payload["bundle"] = bundle
    envelope = Envelope(kind="enrich", idempotency_key=f"enrich-{msg_id}", payload=payload)
    return BatchItem(msg_id, envelope, EnrichPayload.model_validate(payload))


def _context(conn: Conn, vendor: Any = None) -> BatchContext:
    return BatchContext(
        conn,
        queue="enrich",
        log=structlog.get_logger(),
        adapters={"enrich_vendor": vendor},
        stop=threading.Event(),
    )


def run_single(conn: Conn, items: Sequence[BatchItem[EnrichPayload]]) -> dict[int, str]:
    """Each job through the single path, under its own savepoint; the errors by msg_id."""
    failed: dict[int, str] = {}
    for item in items:
        try:
            with conn.transaction():
                run(
                    conn,
                    item.payload,
                    idempotency_key=item.envelope.idempotency_key,
                )
        except (psycopg.Error, PermanentError) as exc:
            failed[item.msg_id] = str(exc).splitlines()[0]
    return failed


def run_batched(conn: Conn, items: Items) -> tuple[set[int], dict[int, str]]:
    """handle_batch under a savepoint, then the jobs it left through the single path."""
    done: set[int] = set()
    try:
        with conn.transaction():
            done = set(handle_batch(_context(conn), items))
    except Exception:  # noqa: BLE001 - the runtime runs every job singly then
        done = set()
    return done, run_single(conn, [i for i in items if i.msg_id not in done])


def snapshot(conn: Conn) -> dict[str, list[tuple[Any, ...]]]:
    """Everything an enrich job writes, without surrogate ids and queue message ids."""
    queries = {
        "contacts": "select case_id, contact_type, value, normalized_value, source, confidence,"
        " is_verified, metadata, first_seen_at, updated_at"
        " from enrichment.contacts order by 1, 2, 4",
        "assets": "select case_id, asset_type, asset_key, description, institution,"
        " estimated_value, details, source, confidence, first_seen_at, updated_at"
        " from enrichment.assets order by 1, 2, 3",
        "signals": "select * from enrichment.case_signals order by 1, 2",
        "cases": "select id, collectability_score, collectability_tier, identity_score,"
        " contactability_score, asset_score, recency_amount_score, adverse_penalty,"
        " enrichment_summary, last_enriched_at, last_scored_at, updated_at"
        " from judgments.cases order by id",
        "mirror": "select id, collectability_tier, updated_at from public.judgments order by id",
        "enforcement": "select id, tier, tier_reason, tier_as_of, collectability_score, updated_at"
        " from public.enforcement_cases order by id",
        "overview": "select tier, current_stage, sum(case_count), sum(balance) from ("
        " select tier, current_stage, case_count, balance from public.enforcement_overview_rollup"
        " union all select tier, current_stage, case_count, balance"
        " from public.enforcement_overview_rollup_deltas) as t group by 1, 2 order by 1, 2",
        "plans": "select message ->> 'idempotency_key', message -> 'payload'"
        " from pgmq.q_enforce order by 1",
    }
    return {name: conn.execute(query).fetchall() for name, query in queries.items()}


def both_paths(
    conn: Conn, items: Items
) -> tuple[dict[str, Any], dict[int, str], dict[str, Any], set[int], dict[int, str]]:
    """(state, errors) after the single path; (state, completed, errors) after the batch path;
    both from the current state, which is left as it was."""
    with conn.transaction(force_rollback=True):
        single_failed = run_single(conn, items)
        single = snapshot(conn)
    with conn.transaction(force_rollback=True):
        done, batch_failed = run_batched(conn, items)
        batched = snapshot(conn)
    return single, single_failed, batched, done, batch_failed


# --- batch == single ----------------------------------------------------------------------


def test_the_batch_path_leaves_the_same_state_as_the_single_path(db: Conn) -> None:
    cases = [make_case(db) for _ in range(5)]
    for ids in cases[:2]:
        open_enforcement_case(db, ids)
    # One case enriched before, so the batch merges into existing rows.
    run_single(db, [_item(1, cases[0]["case_id"], RICH_BUNDLE)])
    changed = {
        "source": "acme-skiptrace",
        "contacts": [
            {"contact_type": "phone", "value": "212.555.0199", "confidence": 0.95},
            {"contact_type": "phone", "value": "+1 718 555 0000"},
            {"contact_type": "email", "value": "debtor@example.test", "is_verified": True},
        ],
        "assets": [
            {"asset_type": "employer", "institution": "GLOBEX  corp", "estimated_value": 60000},
            {"asset_type": "vehicle", "details": {"vin": "1HGCM82633A004352"}, "source": "dmv"},
        ],
        "signals": {"identity_confidence": 0.5, "bankruptcy": True},
    }
    items = [
        _item(10, cases[0]["case_id"], changed),
        _item(11, cases[1]["case_id"], RICH_BUNDLE),
        _item(12, cases[2]["case_id"]),  # no bundle, no vendor: scored from what is stored
        _item(13, cases[3]["case_id"], {"source": "v", "contacts": [], "assets": []}),
        _item(14, cases[4]["case_id"], {"source": "v", "signals": {"deceased": True}}),
    ]
    single, single_failed, batched, done, batch_failed = both_paths(db, items)
    assert done == {10, 11, 12, 13, 14}
    assert single_failed == batch_failed == {}
    assert batched == single
    assert single["plans"]
    assert single["contacts"]
    assert single["assets"]
    assert single["signals"]


def test_a_bad_bundle_is_left_alone_and_the_others_complete(db: Conn) -> None:
    cases = [make_case(db) for _ in range(3)]
    bad = {"source": "v", "contacts": [{"contact_type": "phone", "value": "12"}]}
    items = [
        _item(1, cases[0]["case_id"], RICH_BUNDLE),
        _item(2, cases[1]["case_id"], bad),
        _item(3, cases[2]["case_id"], RICH_BUNDLE),
    ]
    with db.transaction(force_rollback=True):
        with db.transaction():
            done = set(handle_batch(_context(db), items))
        assert done == {1, 3}
        untouched = db.execute(
            "select c.collectability_score, (select count(*) from enrichment.contacts k"
            " where k.case_id = c.id), (select count(*) from enrichment.case_signals s"
            " where s.case_id = c.id) from judgments.cases c where c.id = %s",
            (cases[1]["case_id"],),
        ).fetchone()
        assert untouched == (None, 0, 0)
    # The single path then fails it with the usual message.
    single, single_failed, batched, done, batch_failed = both_paths(db, items)
    assert done == {1, 3}
    assert batched == single
    assert batch_failed == single_failed
    assert list(batch_failed) == [2]
    assert "contacts[0].value '12' is not a valid phone" in batch_failed[2]


def test_two_jobs_for_one_case_keep_their_order(db: Conn) -> None:
    ids = make_case(db)
    open_enforcement_case(db, ids)
    first = {"source": "v", "contacts": [{"contact_type": "phone", "value": "2125550100"}]}
    second = {
        "source": "w",
        "contacts": [{"contact_type": "phone", "value": "(212) 555-0100", "confidence": 0.4}],
        "signals": {"bankruptcy": True},
    }
    items = [_item(1, ids["case_id"], first), _item(2, ids["case_id"], second)]
    single, _, batched, done, failed = both_paths(db, items)
    assert done == {1}  # the second job of the case is left to the single path...
    assert failed == {}
    assert batched == single  # ...which runs it after the first, as the queue had them
    assert [row[4] for row in single["contacts"]] == ["w"]


def test_sending_the_same_batch_again_changes_no_enrichment_row(db: Conn) -> None:
    cases = [make_case(db) for _ in range(3)]
    open_enforcement_case(db, cases[0])
    items = [_item(n, ids["case_id"], RICH_BUNDLE) for n, ids in enumerate(cases)]
    versions = (
        "select 'contact', id::text, xmin::text from enrichment.contacts union all"
        " select 'asset', id::text, xmin::text from enrichment.assets union all"
        " select 'signal', case_id::text || source, xmin::text from enrichment.case_signals"
        " order by 1, 2"
    )
    jobs = [
        {"ref": i.msg_id, "case_id": str(i.payload.case_id), "bundle": RICH_BUNDLE} for i in items
    ]
    with db.transaction(force_rollback=True):
        with db.transaction():
            assert set(handle_batch(_context(db), items)) == {0, 1, 2}
        before = db.execute(versions).fetchall()
        state = snapshot(db)
        assert len(state["plans"]) == 1
        with db.transaction():
            for _ref, error, prepared in _prepare_batch(db, jobs):
                assert error is None
                stored = prepared["stored"]
                assert (stored["inserted"], stored["updated"], stored["unchanged"]) == (0, 0, 5)
        with db.transaction():
            assert set(handle_batch(_context(db), items)) == {0, 1, 2}
        assert db.execute(versions).fetchall() == before
        again = snapshot(db)
        assert again == state  # rescored to the same values; no new plan job


phones = st.sampled_from(["(212) 555-0100", "212.555.0100", "+44 20 7946 0958", "12", "x"])
emails = st.sampled_from(["a@b.example", "A@B.example ", "x@", "b@c.example"])
addresses = st.sampled_from(["1 Main St", "1  MAIN st", "2 Side Ave"])
contacts = st.one_of(
    st.fixed_dictionaries(
        {"contact_type": st.just("phone"), "value": phones},
        optional={"confidence": st.floats(0, 1), "is_verified": st.booleans()},
    ),
    st.fixed_dictionaries(
        {"contact_type": st.just("email"), "value": emails},
        optional={"source": st.sampled_from(["v1", "v2"]), "metadata": st.just({"a": 1})},
    ),
    st.fixed_dictionaries({"contact_type": st.just("address"), "value": addresses}),
)
assets = st.fixed_dictionaries(
    {"asset_type": st.sampled_from(["bank", "employer", "real_property", "vehicle", "other"])},
    optional={
        "asset_key": st.sampled_from(["k1", "K1 ", "k2"]),
        "institution": st.sampled_from(["Chase", "chase", "Widget Corp"]),
        "description": st.sampled_from(["checking", "a house"]),
        "estimated_value": st.sampled_from([0, 1500.5, 99999.999, 250000]),
        "confidence": st.floats(0, 1),
        "details": st.sampled_from(
            [{}, {"account_last4": "1234"}, {"vin": "VIN9"}, {"parcel_id": "P-1"}]
        ),
    },
)
signals = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "identity_confidence": st.floats(0, 1),
        "bankruptcy": st.booleans(),
        "deceased": st.booleans(),
    },
)
bundles = st.none() | st.fixed_dictionaries(
    {
        "source": st.sampled_from(["vendor-a", "vendor-b"]),
        "contacts": st.lists(contacts, max_size=4),
        "assets": st.lists(assets, max_size=3),
    },
    optional={"signals": signals},
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    jobs=st.lists(st.tuples(st.integers(0, 3), bundles), min_size=2, max_size=8),
    enforced=st.sets(st.integers(0, 3)),
)
def test_batch_equals_single_on_generated_jobs(
    db: Conn, jobs: list[tuple[int, dict[str, Any] | None]], enforced: set[int]
) -> None:
    with db.transaction(force_rollback=True):
        cases = [make_case(db) for _ in range(4)]
        for index in enforced:
            open_enforcement_case(db, cases[index])
        items: Items = []
        for msg_id, (index, bundle) in enumerate(jobs):
            try:
                items.append(_item(msg_id, cases[index]["case_id"], bundle))
            except ValidationError:  # the runtime dead-letters those before any handler
                continue
        single, single_failed, batched, done, batch_failed = both_paths(db, items)
        assert batched == single
        assert batch_failed == single_failed
        # The batch completed exactly the first job of each case, unless that job fails.
        firsts = {}
        for item in items:
            firsts.setdefault(item.payload.case_id, item.msg_id)
        assert done == set(firsts.values()) - set(single_failed)


# --- which jobs the batch takes -------------------------------------------------------------


def test_one_job_per_case_and_vendor_pulls_stay_on_the_single_path() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    items = [
        _item(1, a, RICH_BUNDLE),
        _item(2, b),  # no bundle
        _item(3, a, RICH_BUNDLE),  # a's second job
        _item(4, c, RICH_BUNDLE),
        _item(5, b, RICH_BUNDLE),  # after b's job that is left
    ]
    assert [i.msg_id for i in select_items(items, vendor=None)] == [1, 2, 4]
    assert [i.msg_id for i in select_items(items, vendor=object())] == [1, 4]  # type: ignore[arg-type]


# --- the SQL functions ------------------------------------------------------------------


def _prepare_batch(db: Conn, jobs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return db.execute(
        "select ref, error, prepared from enrichment.prepare_scoring_batch(%s)", (Jsonb(jobs),)
    ).fetchall()


def test_prepare_scoring_batch_answers_as_prepare_scoring_does(db: Conn) -> None:
    ids = make_case(db)
    bundle = EnrichPayload.model_validate(
        {"case_id": str(ids["case_id"]), "bundle": RICH_BUNDLE}
    ).bundle
    assert bundle is not None
    with db.transaction(force_rollback=True):
        single = db.execute(
            "select enrichment.prepare_scoring(%s, %s, true)",
            (ids["case_id"], Jsonb(bundle.to_rpc())),
        ).fetchone()
    assert single is not None
    rows = _prepare_batch(
        db, [{"ref": 7, "case_id": str(ids["case_id"]), "bundle": bundle.to_rpc()}]
    )
    assert rows == [(7, None, single[0])]


def test_prepare_scoring_batch_leaves_what_it_cannot_take(db: Conn) -> None:
    ids = [make_case(db)["case_id"] for _ in range(4)]
    unknown = uuid.uuid4()
    rows = _prepare_batch(
        db,
        [
            {"ref": 1, "case_id": str(unknown)},
            {"ref": 2, "case_id": str(ids[0]), "bundle": {"source": "v"}},
            {"ref": 3, "case_id": str(ids[0])},
            {"ref": 4, "case_id": str(ids[1]), "bundle": ["not", "an", "object"]},
            {"ref": 5, "case_id": str(ids[2]), "bundle": {"signals": {"bankruptcy": "yes"}}},
            {"ref": 6, "case_id": str(ids[3]), "bundle": {"source": "v", "colour": "red"}},
        ],
    )
    errors = {ref: error for ref, error, _ in rows}
    assert [ref for ref, _, _ in rows] == [1, 2, 3, 4, 5, 6]
    assert errors[2] is None
    assert "not found" in errors[1]
    assert "earlier job" in errors[3]
    assert "JSON object" in errors[4]
    assert "left to prepare_scoring" in errors[5]
    assert errors[6] == "upsert_enrichment_bundle: unknown field(s) colour"
    # Nothing was written for the refused jobs (only job 2's bundle had something to write).
    counts = db.execute(
        "select (select count(*) from enrichment.case_signals),"
        " (select count(*) from enrichment.contacts)"
    ).fetchone()
    assert counts == (0, 0)
    # prepare_scoring takes job 5's signals ("yes" is a boolean to PostgreSQL).
    out = db.execute(
        "select enrichment.prepare_scoring(%s, %s, true)",
        (ids[2], Jsonb({"signals": {"bankruptcy": "yes"}})),
    ).fetchone()
    assert out is not None
    assert out[0]["inputs"]["bankruptcy"] is True


def test_a_malformed_job_list_is_refused_whole(db: Conn) -> None:
    ids = make_case(db)
    for jobs in (
        {"ref": 1},
        [{"ref": 1, "case_id": str(ids["case_id"])}, {"ref": 1, "case_id": str(uuid.uuid4())}],
        [{"case_id": str(ids["case_id"])}],
    ):
        with pytest.raises(psycopg.errors.InvalidParameterValue), db.transaction():
            _prepare_batch(db, jobs)  # type: ignore[arg-type]


def _scores(case_id: Any, collectability: Any, **over: Any) -> dict[str, Any]:
    row = {
        "case_id": str(case_id) if case_id is not None else None,
        "identity_score": 10,
        "contactability_score": 20,
        "asset_score": 30,
        "recency_amount_score": 40,
        "adverse_penalty": 0,
        "collectability_score": collectability,
        "summary": "s",
    }
    return {**row, **over}


def test_record_case_scores_batch_is_all_or_nothing_with_the_single_messages(db: Conn) -> None:
    a, b = make_case(db)["case_id"], make_case(db)["case_id"]
    cases: list[tuple[list[dict[str, Any]], str]] = [
        ([_scores(a, 50), _scores(b, 101)], "p_collectability_score must be between 0 and 100"),
        ([_scores(a, 50), _scores(uuid.uuid4(), 5)], "not found in judgments.cases"),
        ([_scores(a, 50), _scores(b, 5, adverse_penalty=-1)], "p_adverse_penalty must be between"),
        ([_scores(a, 50), _scores(b, 5, summary="x" * 20001)], "at most 20000 characters"),
        ([_scores(a, 50), _scores(a, 60)], "more than once"),
        ([_scores(None, 50)], "p_case_id is required"),
    ]
    for scores, message in cases:
        with pytest.raises(psycopg.Error, match=message), db.transaction():
            db.execute("select * from enrichment.record_case_scores_batch(%s)", (Jsonb(scores),))
    assert db.execute(
        "select count(*) from judgments.cases where collectability_score is not null"
    ).fetchone() == (0,)
    rows = db.execute(
        "select case_id, recorded ->> 'tier' from enrichment.record_case_scores_batch(%s)",
        (Jsonb([_scores(b, "80.5"), _scores(a, 24.99)]),),
    ).fetchall()
    assert rows == [(b, "tier0"), (a, "tier3")]


def _merge_one(db: Conn, bundle: Any) -> tuple[str, Any]:
    try:
        with db.transaction():
            row = db.execute("select public.upsert_enrichment_bundle(%s)", (Jsonb(bundle),))
            return ("ok", row.fetchone()[0])  # type: ignore[index]
    except psycopg.Error as exc:
        return ("error", (exc.sqlstate, exc.diag.message_primary))


@pytest.fixture
def case_ids(db: Conn) -> list[str]:
    return [str(make_case(db)["case_id"]) for _ in range(3)]


# jsonb cannot hold NUL or lone surrogates, so no job payload can carry them.
json_text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=3
)
junk = st.none() | st.booleans() | st.integers(-2, 2) | json_text | st.just([1])
item_or_junk = (
    contacts
    | assets
    | st.dictionaries(
        st.sampled_from(["contact_type", "value", "asset_type", "colour"]), junk, max_size=3
    )
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    parts=st.lists(
        st.tuples(
            st.integers(0, 2),
            st.fixed_dictionaries(
                {},
                optional={
                    "source": st.sampled_from(["v", ""]) | junk,
                    "contacts": st.lists(item_or_junk, max_size=3) | junk,
                    "assets": st.lists(item_or_junk, max_size=3) | junk,
                    "extra": junk,
                },
            ),
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda p: p[0],
    )
)
def test_merge_bundles_at_once_equals_upsert_enrichment_bundle_one_by_one(
    db: Conn, case_ids: list[str], parts: list[tuple[int, dict[str, Any]]]
) -> None:
    bundles = [{**bundle, "case_id": case_ids[index]} for index, bundle in parts]
    tables = (
        "select case_id, contact_type, normalized_value, value, source, confidence, is_verified,"
        " metadata from enrichment.contacts union all select case_id, asset_type, asset_key,"
        " description, source, confidence, null, details from enrichment.assets order by 1, 2, 3"
    )
    with db.transaction(force_rollback=True):
        one_by_one = [_merge_one(db, bundle) for bundle in bundles]
        expected = db.execute(tables).fetchall()
    with db.transaction(force_rollback=True):
        rows = db.execute(
            "select ref, errcode, error, stored from enrichment.merge_bundles(%s)",
            (Jsonb([{"ref": n, "bundle": b} for n, b in enumerate(bundles)]),),
        ).fetchall()
        at_once = [
            ("ok", stored) if errcode is None else ("error", (errcode, error))
            for _, errcode, error, stored in rows
        ]
        assert [ref for ref, *_ in rows] == list(range(len(bundles)))
        assert at_once == one_by_one
        assert db.execute(tables).fetchall() == expected


def test_only_service_role_and_the_fleet_may_execute_the_batch_functions(db: Conn) -> None:
    names = (
        "merge_bundles",
        "merge_case_signals",
        "scoring_inputs",
        "prepare_scoring_batch",
        "record_case_scores_batch",
    )
    rows = db.execute(
        """
        select p.proname, r.rolname, has_function_privilege(r.rolname, p.oid, 'execute'),
               p.prosecdef, p.proconfig
          from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace
          cross join (values ('anon'), ('authenticated'), ('service_role'), ('dragonfly_worker'),
                             ('enforcement_operator')) as r(rolname)
         where n.nspname = 'enrichment' and p.proname = any(%s)
        """,
        (list(names),),
    ).fetchall()
    assert {name for name, *_ in rows} == set(names)
    allowed = {(name, role) for name, role, ok, _, _ in rows if ok}
    assert allowed == {(n, r) for n in names for r in ("service_role", "dragonfly_worker")}
    assert all(secdef and 'search_path=""' in config for _, _, _, secdef, config in rows)
