"""The console's ordered reads are index scans that stop after the rows asked for, on a book
large enough (20,000 judgments of the default tenant and 5,000 of another, vacuumed and
analyzed) for the planner to have a real choice. Plans are read with EXPLAIN on a database of
the test's own, as enforcement_operator and as a signed-in operator of the default tenant
(whose tenant policy, ``tenant_id = any ($0)``, must not cost the index order).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from bench.bench_enforcement import (
    DEFAULT_TENANT,
    MEMBER_EMAIL,
    MEMBER_SUB,
    MIRROR,
    OTHER_TENANT,
    as_member,
    as_operator,
    book_sql,
)
from bench.bench_scale import RESCORE
from tests.harness import Backend

Conn = psycopg.Connection[Any]

pytestmark = pytest.mark.slow

BOOK = 20_000
OTHER_BOOK = 5_000
# The documented order: per tenant (docs/rpc.md, "Views"), or within one tenant's filter.
ORDERED = (
    " order by tenant_id, collectability_tier, priority_level, judgment_amount desc, judgment_id"
)
IN_TENANT = " order by collectability_tier, priority_level, judgment_amount desc, judgment_id"
PIPELINE = "select * from public.v_priority_pipeline"
READERS = {"operator": as_operator, "member": as_member}


@pytest.fixture(scope="module")
def book_url(backend: Backend, template_db: str) -> Iterator[str]:
    """A database of this module's own (a clone, like ``fresh_db_url``) holding the book."""
    name = backend.clone(template_db)
    url = backend.url(name)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute(
                "insert into public.tenants (id, slug, name) values (%s, 'other', 'Other')",
                (OTHER_TENANT,),
            )
            conn.execute(
                "insert into auth.users (id, email) values (%s, %s)", (MEMBER_SUB, MEMBER_EMAIL)
            )
            conn.execute(
                "insert into public.tenant_members (tenant_id, user_id, role) "
                "values (%s, %s, 'operator')",
                (DEFAULT_TENANT, MEMBER_SUB),
            )
            conn.execute("set local session_replication_role = replica")
            conn.execute(book_sql(BOOK, 100))
            conn.execute(book_sql(OTHER_BOOK, 100, tenant=OTHER_TENANT, block=1))
            conn.execute(MIRROR)
        conn.execute("vacuum analyze")
    yield url
    backend.drop(name)


def plan_nodes(conn: Conn, query: str, reader: str = "operator") -> list[dict[str, Any]]:
    with conn.transaction(force_rollback=True):
        READERS[reader](conn)
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
            f"{PIPELINE} where tenant_id = '{DEFAULT_TENANT}'{IN_TENANT} limit 50",
            "judgments_pipeline_order_idx",
        ),
        (
            f"{PIPELINE} where collectability_tier = 'tier2'{ORDERED} limit 50",
            "judgments_pipeline_order_idx",
        ),
        (f"{PIPELINE} where stage = 'bank_levy'{ORDERED} limit 50", "judgments_pipeline_order_idx"),
        (
            f"{PIPELINE} order by tenant_id, collectability_tier, priority_level,"
            " judgment_amount desc limit 50",
            "judgments_pipeline_order_idx",
        ),
        (f"{PIPELINE} limit 50", "judgments_pipeline_order_idx"),
    ],
    ids=["ordered", "one-tenant", "tier", "stage", "prefix", "unordered"],
)
@pytest.mark.parametrize("reader", sorted(READERS))
def test_an_ordered_console_read_is_an_index_scan_without_a_sort(
    book_url: str, query: str, index: str, reader: str
) -> None:
    with psycopg.connect(book_url) as conn:
        nodes = plan_nodes(conn, query, reader)
    kinds = [n["Node Type"] for n in nodes]
    assert "Sort" not in kinds, kinds
    assert "Incremental Sort" not in kinds, kinds
    assert "Hash Join" not in kinds, kinds
    assert "Gather Merge" not in kinds, kinds  # no workers started for a 50-row read
    assert index in {n.get("Index Name") for n in nodes}, kinds
    assert nodes[0]["Node Type"] == "Limit"
    # The ranking reads the caller's tenants from the index: their policy is an index
    # condition, not a filter over the other tenant's entries.
    ranking = next(n for n in nodes if n.get("Index Name") == index)
    assert ranking["Node Type"] == "Index Only Scan", ranking["Node Type"]
    assert "tenant_id = ANY" in ranking.get("Index Cond", ""), ranking


def test_a_member_reads_the_ranking_of_their_tenant_only(book_url: str) -> None:
    """The member's first page is the default tenant's own ranking, read from its index range
    (50 or 51 entries for 50 rows), and the same as the operator's page for that tenant."""
    query = f"{PIPELINE}{ORDERED} limit 50"
    with psycopg.connect(book_url) as conn:
        with conn.transaction(force_rollback=True):
            as_member(conn)
            mine = conn.execute(query).fetchall()
            row = conn.execute(f"explain (analyze, format json) {query}").fetchone()
        with conn.transaction(force_rollback=True):
            as_operator(conn)
            theirs = conn.execute(
                f"{PIPELINE} where tenant_id = %s{IN_TENANT} limit 50", (DEFAULT_TENANT,)
            ).fetchall()
    assert mine == theirs
    assert len(mine) == 50
    assert row is not None
    todo = [row[0][0]["Plan"]]
    scanned = None
    while todo:
        node = todo.pop()
        if node.get("Index Name") == "judgments_pipeline_order_idx":
            scanned = node["Actual Rows"]
        todo.extend(node.get("Plans", []))
    # The LIMIT stops the index scan at the page: 50 entries, or 51 where the executor reads
    # one ahead.
    assert scanned in (50, 51)


def test_the_priority_order_column_sorts_in_the_documented_order(book_url: str) -> None:
    with psycopg.connect(book_url) as conn:
        rows = conn.execute(
            f"select priority_level::text, tier_rank from ({PIPELINE}{ORDERED}) v "
            f"where collectability_tier = 'tier0' and tenant_id = '{DEFAULT_TENANT}'"
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
