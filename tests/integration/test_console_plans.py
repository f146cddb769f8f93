"""The console's ordered reads are index scans that stop after the rows asked for, on a book
large enough (20,000 judgments, vacuumed and analyzed) for the planner to have a real
choice. Plans are read with EXPLAIN on a database of the test's own, as enforcement_operator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bench.bench_enforcement import GENERATE, MIRROR, as_operator
from bench.bench_scale import RESCORE
from tests.harness import Backend

Conn = psycopg.Connection[Any]

pytestmark = pytest.mark.slow

BOOK = 20_000
ORDERED = " order by collectability_tier, priority_level, judgment_amount desc, judgment_id"
PIPELINE = "select * from public.v_priority_pipeline"


@pytest.fixture(scope="module")
def book_url(backend: Backend, template_db: str) -> Iterator[str]:
    """A database of this module's own (a clone, like ``fresh_db_url``) holding the book."""
    name = backend.clone(template_db)
    url = backend.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("set local session_replication_role = replica")
            sql = GENERATE.replace("{n}", str(BOOK)).replace("{spare}", "100")
            conn.execute(sql.encode())
            conn.execute(MIRROR)
        conn.execute("vacuum analyze")
    yield url
    backend.drop(name)


def plan_nodes(conn: Conn, query: str) -> list[dict[str, Any]]:
    with conn.transaction(force_rollback=True):
        as_operator(conn)
        row = conn.execute(f"explain (format json) {query}").fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    nodes: list[dict[str, Any]] = []
    todo = [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (f"{PIPELINE}{ORDERED} limit 50", "judgments_pipeline_order_idx"),
        (
            f"{PIPELINE} where collectability_tier = 'tier2'{ORDERED} limit 50",
            "judgments_pipeline_order_idx",
        ),
        (f"{PIPELINE} where stage = 'bank_levy'{ORDERED} limit 50", "judgments_pipeline_order_idx"),
        (
            f"{PIPELINE} order by collectability_tier, priority_level, judgment_amount desc"
            " limit 50",
            "judgments_pipeline_order_idx",
        ),
        (f"{PIPELINE} limit 50", "judgments_pipeline_order_idx"),
    ],
    ids=["ordered", "tier", "stage", "prefix", "unordered"],
)
def test_an_ordered_console_read_is_an_index_scan_without_a_sort(
    book_url: str, query: str, index: str
) -> None:
    with psycopg.connect(book_url) as conn:
        nodes = plan_nodes(conn, query)
    kinds = [n["Node Type"] for n in nodes]
    assert "Sort" not in kinds, kinds
    assert "Incremental Sort" not in kinds, kinds
    assert "Hash Join" not in kinds, kinds
    assert "Gather Merge" not in kinds, kinds  # no workers started for a 50-row read
    assert index in {n.get("Index Name") for n in nodes}, kinds
    assert nodes[0]["Node Type"] == "Limit"


def test_the_priority_order_column_sorts_in_the_documented_order(book_url: str) -> None:
    with psycopg.connect(book_url) as conn:
        rows = conn.execute(
            f"select priority_level::text, tier_rank from ({PIPELINE}{ORDERED}) v "
            "where collectability_tier = 'tier0'"
        ).fetchall()
    order = ["urgent", "high", "normal", "low", "on_hold"]
    levels = [order.index(r[0]) for r in rows]
    assert levels == sorted(levels)
    assert len(set(levels)) == 5
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1))


def test_the_pipeline_keeps_its_index_after_a_night_rewrote_judgments(book_url: str) -> None:
    """Last in this module (it rewrites the book): re-scoring moves every judgment's tier
    (the mirror rewrites the row), so no page is all-visible until vacuum, and ANALYZE
    tells the planner so. The ranking must still come from the index, not a sort."""
    with psycopg.connect(book_url, autocommit=True) as conn:
        conn.execute(RESCORE.format(where="true"))
        conn.execute("analyze public.judgments")
        row = conn.execute(
            "select relallvisible from pg_class where oid = 'public.judgments'::regclass"
        ).fetchone()
        assert row is not None
        assert row[0] == 0
        nodes = plan_nodes(conn, f"{PIPELINE}{ORDERED} limit 50")
    kinds = [n["Node Type"] for n in nodes]
    assert "Sort" not in kinds, kinds
    assert "Gather Merge" not in kinds, kinds
    assert "judgments_pipeline_order_idx" in {n.get("Index Name") for n in nodes}, kinds
