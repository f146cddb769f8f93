"""``dragonfly import``: load vendor exports (Simplicity CSV) into the database."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workers.cli.argtypes import non_negative_int, tenant_ref
from workers.cli.common import CommandError, open_connection
from workers.intake.simplicity import ImportFileError, ImportResult, load_and_process
from workers.ops.tenants import Tenant, TenantAdminError, find_tenant


def register(subparsers: Any) -> None:
    imp = subparsers.add_parser("import", help="load vendor exports: simplicity")
    commands = imp.add_subparsers(dest="import_command", required=True)

    p = commands.add_parser(
        "simplicity",
        help="import a Simplicity CSV export",
        description=(
            "Stage a Simplicity CSV export with COPY, turn it into plaintiffs, judgments and "
            "cases with process_simplicity_imports(), and print the counts and the bad rows "
            "with their line numbers. Everything lands in one tenant (--tenant; default: the "
            "default tenant), and rows already known are matched in that tenant only. Exit 0 "
            "when the run completed (bad rows included), 1 when it failed, 2 when the file "
            "cannot be read or the tenant does not exist. Columns: docs/import.md."
        ),
    )
    p.add_argument("file", type=Path, help="the CSV export (UTF-8, header line first)")
    p.add_argument(
        "--show-bad",
        type=non_negative_int,
        default=50,
        metavar="N",
        help="print at most N bad rows (default 50; 0 prints none)",
    )
    p.add_argument("--created-by", default=None, help="who ran the import (default: $USER)")
    p.add_argument(
        "--tenant",
        type=tenant_ref,
        default="default",
        metavar="T",
        help="the tenant to import into, by slug or id (default: the default tenant)",
    )
    p.set_defaults(func=cmd_simplicity)


def cmd_simplicity(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        what = "is not a file" if path.exists() else "no such file"
        raise CommandError(f"{path}: {what}", exit_code=2)
    with open_connection(autocommit=False) as conn:
        try:
            tenant = find_tenant(conn, args.tenant)
        except TenantAdminError as exc:
            raise CommandError(
                f"{exc} (dragonfly tenants list shows them)" if exc.bad_input else str(exc),
                exit_code=2 if exc.bad_input else 1,
            ) from None
        try:
            result = load_and_process(conn, path, created_by=args.created_by, tenant_id=tenant.id)
        except ImportFileError as exc:
            raise CommandError(str(exc), exit_code=2) from None
    _report(path, tenant, result, args.show_bad)
    return 0 if result.status == "completed" else 1


def _report(path: Path, tenant: Tenant, result: ImportResult, show_bad: int) -> None:
    print(f"run {result.run_id} ({path.name}, tenant {tenant.slug}): {result.status}")
    print(
        f"rows: {result.total_rows} total, {result.imported_rows} imported, "
        f"{result.duplicate_rows} duplicate, {result.failed_rows} failed"
    )
    if result.error:
        print(f"error: {result.error}")
    if result.bad_rows and show_bad:
        print("bad rows:")
        for bad in result.bad_rows[:show_bad]:
            print(f"  line {bad.line_number}: {bad.error}")
        hidden = len(result.bad_rows) - show_bad
        if hidden > 0:
            print(f"  ... and {hidden} more (see intake.simplicity_import_rows)")
