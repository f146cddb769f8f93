"""v_enforcement_overview's trigger-kept totals under concurrent, committed writers.

Writers append deltas (never waiting on each other) and whoever holds the fold lock folds
them; whatever the interleaving, the totals must equal a direct aggregate once the writers
are done. Each test has a database of its own (``fresh_db_url``).
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from tests.integration.test_enforcement_concurrency import DEADLINE, connect, seeded, wait_until
from tests.sql.enforcement_seed import one, rpc
from tests.sql.test_enforcement_overview import REFERENCE, overview

Conn = psycopg.Connection[Any]

pytestmark = pytest.mark.slow


def assert_exact(url: str) -> None:
    with connect(url) as conn:
        assert (
            conn.execute("select * from enforcement_private.overview_rollup_drift()").fetchall()
            == []
        )
        assert overview(conn) == conn.execute(REFERENCE).fetchall()


def test_concurrent_writers_keep_the_totals_exact(fresh_db_url: str) -> None:
    cases = [
        seeded(fresh_db_url, tier=tier, score=score, amount="5000.00").case_id
        for tier, score in [("tier0", "90"), ("tier1", "60"), ("tier2", "30")] * 4
    ]
    spare = [seeded(fresh_db_url, open_case=False, amount="300.00").judgment_id for _ in range(8)]
    stages = ["asset_search", "information_subpoena", "bank_levy", "payment_plan"]
    writers = 6
    barrier = threading.Barrier(writers)

    def work(seed: int) -> list[str]:
        rng = random.Random(seed)
        errors: list[str] = []
        with connect(fresh_db_url) as conn:
            barrier.wait(timeout=DEADLINE)
            for step in range(25):
                case = rng.choice(cases)
                try:
                    kind = rng.randrange(4)
                    if kind == 0:
                        rpc(conn, "record_enforcement_payment", {"case_id": case, "amount": "1.25"})
                    elif kind == 1:
                        rpc(
                            conn,
                            "set_enforcement_stage",
                            {"case_id": case, "stage": rng.choice(stages), "override": True},
                        )
                    elif kind == 2 and spare:
                        rpc(conn, "open_enforcement_case", {"judgment_id": spare.pop()})
                    else:
                        conn.execute(
                            "update public.enforcement_cases set tier = %s where id = %s",
                            (rng.choice(["tier0", "tier1", "tier3"]), case),
                        )
                    if step % 7 == 3:
                        conn.rollback()  # rolled-back writes must leave no trace
                    else:
                        conn.commit()
                except IndexError:
                    conn.rollback()
                except psycopg.Error as error:
                    conn.rollback()
                    errors.append(f"{error.sqlstate}: {error}")
        return errors

    with ThreadPoolExecutor(writers) as pool:
        outcomes = list(pool.map(work, range(writers)))
    # A judgment popped by two writers is opened once; the other gets 23505. Nothing else.
    assert {e[:5] for errors in outcomes for e in errors} <= {"23505"}
    assert_exact(fresh_db_url)


def test_a_writer_holding_the_fold_lock_blocks_nobody(fresh_db_url: str) -> None:
    first_case = seeded(fresh_db_url, tier="tier0", score="90").case_id
    second_case = seeded(fresh_db_url, tier="tier0", score="90").case_id  # same (tier, stage)
    with connect(fresh_db_url) as first, connect(fresh_db_url) as second:
        # Folds under the lock, keeps it (and the folded row) until it commits.
        rpc(first, "record_enforcement_payment", {"case_id": first_case, "amount": "10.00"})

        def pay_second() -> bool:
            rpc(second, "record_enforcement_payment", {"case_id": second_case, "amount": "20.00"})
            second.commit()
            return True

        with ThreadPoolExecutor(1) as pool:
            outcome = pool.submit(pay_second)
            assert wait_until(outcome.done, "the second payment to commit")
            assert outcome.result() is True
        # The second writer could not fold: its delta waits, and the view counts it.
        with connect(fresh_db_url) as reader:
            assert (
                one(reader, "select count(*) from public.enforcement_overview_rollup_deltas") >= 1
            )
        first.commit()
    assert_exact(fresh_db_url)

    # The next writer folds everything committed.
    with connect(fresh_db_url) as conn:
        rpc(conn, "record_enforcement_payment", {"case_id": first_case, "amount": "1.00"})
        conn.commit()
        assert one(conn, "select count(*) from public.enforcement_overview_rollup_deltas") == 0
    assert_exact(fresh_db_url)
