"""Load a Simplicity CSV export into staging with COPY and process it.

The file is read once, streamed into ``intake.simplicity_import_rows`` with COPY
under a new ``intake.simplicity_import_runs`` row, and the run is handed to
``public.process_simplicity_imports()``, which validates the rows and materializes
plaintiffs, judgments and cases set-based. All of it happens in one transaction:
a file that cannot be read leaves nothing behind.

Problems with the *file* (missing, not UTF-8, no or malformed header, a CSV syntax
error) raise :class:`ImportFileError` before anything is committed. Problems with a
*row* are the database's to judge: a record with the wrong number of fields is
staged as failed with the reason, every other row is staged as-is and validated by
the RPC. Each staged row keeps the line number where its record starts, so bad rows
can be reported against the file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

# The Simplicity export's columns, in the export's order (docs/import.md).
COLUMNS: tuple[str, ...] = (
    "plaintiff_name",
    "plaintiff_email",
    "plaintiff_phone",
    "plaintiff_address",
    "plaintiff_city",
    "plaintiff_state",
    "plaintiff_zip",
    "debtor_name",
    "debtor_type",
    "case_number",
    "court",
    "county",
    "state",
    "judgment_amount",
    "judgment_date",
    "priority",
)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "plaintiff_name",
    "debtor_name",
    "case_number",
    "judgment_amount",
)

# Named queries (the only SQL this module runs).
CREATE_RUN = """
insert into intake.simplicity_import_runs (source_file, created_by, tenant_id)
values (%(source_file)s, %(created_by)s, coalesce(%(tenant_id)s, tenancy.default_tenant_id()))
returning id, tenant_id
"""
PROCESS_RUN = "select public.process_simplicity_imports(%(run_id)s)"
BAD_ROWS = """
select line_number, error
  from intake.simplicity_import_rows
 where run_id = %(run_id)s and status = 'failed'
 order by line_number
"""


class ImportFileError(Exception):
    """The file cannot be imported at all; the message is one line."""


@dataclass(frozen=True, slots=True)
class BadRow:
    line_number: int
    error: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    run_id: UUID
    tenant_id: UUID
    status: str
    total_rows: int
    imported_rows: int
    duplicate_rows: int
    failed_rows: int
    error: str | None
    bad_rows: tuple[BadRow, ...]


def read_header(raw: list[str], path: Path) -> list[str]:
    """Validate the header record; return the column names in file order."""
    names = [name.strip().lower() for name in raw]
    if not names or all(not n for n in names):
        raise ImportFileError(f"{path}: the header line is empty")
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5])
        raise ImportFileError(f"{path}: unknown column(s) in header: {shown} (see docs/import.md)")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ImportFileError(f"{path}: column(s) repeated in header: {', '.join(duplicates)}")
    missing = [n for n in REQUIRED_COLUMNS if n not in names]
    if missing:
        shown = ", ".join(missing)
        raise ImportFileError(f"{path}: required column(s) missing from header: {shown}")
    return names


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) of every record, header included; blank lines skipped."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise ImportFileError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path}: is a directory, not a CSV file") from None
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle, strict=True)
        next_line = 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(
                    f"{path}: malformed CSV at line {reader.line_num}: {exc}"
                ) from None
            except UnicodeDecodeError as exc:
                raise ImportFileError(
                    f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded)"
                ) from None
            start, next_line = next_line, reader.line_num + 1
            if fields:
                yield start, fields


def load_and_process(
    conn: psycopg.Connection[Any],
    path: Path,
    *,
    created_by: str | None = None,
    tenant_id: UUID | None = None,
) -> ImportResult:
    """Stage ``path`` under a new run, process it, and commit; return the outcome.

    The run imports into ``tenant_id`` (default: the default tenant): its plaintiffs,
    judgments and court cases are created there, and rows already known are matched
    there only. ``conn`` must not be in autocommit mode: everything runs in one
    transaction, which is rolled back if the file turns out to be unreadable.
    """
    records = _records(path)
    try:
        _line, header_fields = next(records)
    except StopIteration:
        raise ImportFileError(f"{path}: the file is empty; expected a header line") from None
    names = read_header(header_fields, path)
    creator = created_by or os.environ.get("USER") or "dragonfly import"

    with conn.transaction():
        row = conn.execute(
            CREATE_RUN,
            {"source_file": path.name, "created_by": creator, "tenant_id": tenant_id},
        ).fetchone()
        assert row is not None
        run_id: UUID = row[0]
        run_tenant: UUID = row[1]
        copy_columns = ["run_id", "line_number", *names, "status", "error"]
        statement = sql.SQL("copy intake.simplicity_import_rows ({}) from stdin").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in copy_columns)
        )
        blanks: list[str | None] = [None] * len(names)
        with conn.cursor().copy(statement) as copy:
            for line_number, fields in records:
                if len(fields) == len(names):
                    values: list[str | None] = [f if f != "" else None for f in fields]
                    copy.write_row([run_id, line_number, *values, "pending", None])
                else:
                    reason = f"expected {len(names)} fields, found {len(fields)}"
                    copy.write_row([run_id, line_number, *blanks, "failed", reason])
        result = conn.execute(PROCESS_RUN, {"run_id": run_id}).fetchone()
        assert result is not None
        outcome: dict[str, Any] = result[0]
        bad = tuple(BadRow(int(n), str(e)) for n, e in conn.execute(BAD_ROWS, {"run_id": run_id}))
    return ImportResult(
        run_id=run_id,
        tenant_id=run_tenant,
        status=str(outcome["status"]),
        total_rows=int(outcome["total_rows"]),
        imported_rows=int(outcome["imported_rows"]),
        duplicate_rows=int(outcome["duplicate_rows"]),
        failed_rows=int(outcome["failed_rows"]),
        error=outcome.get("error"),
        bad_rows=bad,
    )
