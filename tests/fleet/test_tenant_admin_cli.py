"""``dragonfly tenants`` and ``dragonfly members`` through the real CLI (``run_cli``) on a
database of the test's own."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.harness import run_cli

Conn = psycopg.Connection[Any]
DEFAULT = "00000000-0000-4000-8000-000000000001"


@pytest.fixture
def conn(fresh_db_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_db_url, autocommit=True) as c:
        yield c


def cli(url: str, *args: str) -> Any:
    return run_cli(*args, env={"DATABASE_URL": url})


def one_line_error(result: Any, code: int = 2) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dragonfly: ")
    return str(lines[0].removeprefix("dragonfly: "))


def memberships(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(
        "select t.slug, m.user_id, m.role from public.tenant_members m"
        " join public.tenants t on t.id = m.tenant_id order by 1, 2"
    ).fetchall()


def test_tenants_are_created_and_listed(conn: Conn, fresh_db_url: str) -> None:
    created = cli(fresh_db_url, "tenants", "create", "north", "--name", "North Collections")
    assert created.returncode == 0, created.stderr
    north_id = conn.execute("select id from public.tenants where slug = 'north'").fetchone()
    assert north_id is not None
    assert created.stdout.strip() == f"created tenant north (North Collections): {north_id[0]}"

    listed = cli(fresh_db_url, "tenants", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["SLUG", "ID", "NAME", "MEMBERS", "CASES", "CREATED"]
    assert lines[1].split()[:2] == ["default", DEFAULT]
    assert lines[2].split()[:2] == ["north", str(north_id[0])]
    as_json = json.loads(cli(fresh_db_url, "tenants", "list", "--json").stdout)
    assert [(t["slug"], t["name"], t["members"], t["cases"]) for t in as_json] == [
        ("default", "Default tenant", 0, 0),
        ("north", "North Collections", 0, 0),
    ]

    again = one_line_error(cli(fresh_db_url, "tenants", "create", "north"))
    assert again == "tenant 'north' already exists"
    assert conn.execute("select count(*) from public.tenants").fetchone() == (2,)


def test_members_are_added_listed_changed_and_removed(conn: Conn, fresh_db_url: str) -> None:
    ann, bob = uuid.uuid4(), uuid.uuid4()
    conn.execute(
        "insert into auth.users (id, email) values (%s, 'ann@example.com'), (%s, null)",
        (ann, bob),
    )
    assert cli(fresh_db_url, "tenants", "create", "north").returncode == 0

    added = cli(
        fresh_db_url, "members", "add", "--tenant", "north", "--email", "ANN@example.com",
        "--role", "viewer",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added ANN@example.com to tenant north as viewer"
    by_id = cli(
        fresh_db_url, "members", "add", "--tenant", "north", "--user-id", str(bob),
        "--role", "operator",
    )  # fmt: skip
    assert by_id.stdout.strip() == f"added {bob} to tenant north as operator"
    changed = cli(
        fresh_db_url, "members", "add", "--tenant", "north", "--email", "ann@example.com",
        "--role", "admin",
    )  # fmt: skip
    assert changed.stdout.strip() == "ann@example.com is now admin of tenant north (was viewer)"

    listed = cli(fresh_db_url, "members", "list", "--tenant", "north")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:3] for line in listed.stdout.splitlines()]
    assert rows == [
        ["USER_ID", "EMAIL", "ROLE"],
        [str(ann), "ann@example.com", "admin"],
        [str(bob), "-", "operator"],
    ]
    as_json = json.loads(cli(fresh_db_url, "members", "list", "--tenant", "north", "--json").stdout)
    assert [(m["user_id"], m["email"], m["role"]) for m in as_json] == [
        (str(ann), "ann@example.com", "admin"),
        (str(bob), None, "operator"),
    ]

    removed = cli(fresh_db_url, "members", "remove", "--tenant", "north", "--user-id", str(bob))
    assert removed.stdout.strip() == f"removed {bob} (operator) from tenant north"
    assert [(s, u) for s, u, _r in memberships(conn)] == [("north", ann)]
    gone = one_line_error(
        cli(fresh_db_url, "members", "remove", "--tenant", "north", "--user-id", str(bob)), code=1
    )
    assert gone == f"{bob} is not a member of tenant north; nothing removed"
    empty = cli(fresh_db_url, "members", "list", "--tenant", "default")
    assert empty.stdout.strip() == "tenant default has no members"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["members", "add", "--tenant", "north", "--email", "nobody@example.com", "--role",
             "viewer"],
            "no user has email 'nobody@example.com'",
        ),
        (
            ["members", "remove", "--tenant", "north", "--email", "nobody@example.com"],
            "no user has email 'nobody@example.com'",
        ),
        (
            ["members", "add", "--tenant", "south", "--email", "ann@example.com", "--role",
             "viewer"],
            "tenant 'south' does not exist",
        ),
        (
            ["members", "list", "--tenant", "00000000-0000-4000-8000-00000000beef"],
            "tenant '00000000-0000-4000-8000-00000000beef' does not exist",
        ),
        (
            ["members", "add", "--tenant", "north", "--user-id",
             "00000000-0000-4000-8000-0000000000aa", "--role", "viewer"],
            "user 00000000-0000-4000-8000-0000000000aa does not exist",
        ),
        (
            ["tenants", "create", "north", "--name", " "],
            "a name is 1 to 200 characters (got ' ')",
        ),
    ],
)  # fmt: skip
def test_unknown_names_are_one_line_and_exit_2(
    conn: Conn, fresh_db_url: str, args: list[str], expected: str
) -> None:
    conn.execute(
        "insert into auth.users (id, email) values (%s, 'ann@example.com')", (uuid.uuid4(),)
    )
    conn.execute("insert into public.tenants (slug, name) values ('north', 'North')")
    assert one_line_error(cli(fresh_db_url, *args)) == expected
    assert memberships(conn) == []
    assert conn.execute("select count(*) from public.tenants").fetchone() == (2,)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["members", "add", "--tenant", "north", "--role", "viewer"],
         "one of the arguments --user-id --email is required"),
        (["members", "add", "--tenant", "north", "--email", "a@b.example", "--user-id",
          str(uuid.UUID(int=1)), "--role", "viewer"],
         "argument --user-id: not allowed with argument --email"),
        (["members", "add", "--tenant", "north", "--email", "a@b.example", "--role", "owner"],
         "argument --role: invalid choice: 'owner'"),
        (["members", "add", "--tenant", "north", "--email", "a@b.example"],
         "the following arguments are required: --role"),
        (["members", "list"], "the following arguments are required: --tenant"),
        (["members", "list", "--tenant", "North!"], "expected a tenant slug"),
        (["members", "remove", "--tenant", "north", "--email", "ann"],
         "expected an email address, got 'ann'"),
        (["tenants", "create", "-north"], "the following arguments are required: SLUG"),
        (["tenants", "create", "North"], "expected a slug of 1 to 63 lowercase letters"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], expected: str) -> None:
    result = run_cli(*args, env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0], lines[0]
