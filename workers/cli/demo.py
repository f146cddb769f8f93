"""``dragonfly demo``: generate a synthetic book, run the fleet on it, print a summary."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import psycopg

from workers.cli.argtypes import integer, non_negative_int, positive_int, positive_number
from workers.cli.common import CommandError, settings_and_url
from workers.db.migrate import MigrationError
from workers.demo.drain import DrainTimeout
from workers.demo.runner import DemoOptions, run_demo
from workers.intake.simplicity import ImportFileError
from workers.log import configure_logging


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate a synthetic book, run the fleet on it and print what happened",
        description="Generate a synthetic judgment book (Faker, seeded), import it through the"
        " Simplicity path, open enforcement cases, enqueue enrich/outreach/enforce work, run"
        " the fleet until it has drained, ask Case Copilot about the largest cases, and print"
        " a summary. See docs/demo.md.",
    )
    p.add_argument("--cases", type=positive_int, default=40, help="judgments to generate (40)")
    p.add_argument(
        "--seed", type=integer, default=7, help="generator seed; same seed, same book (7)"
    )
    p.add_argument(
        "--timeout", type=positive_number, default=300.0, help="seconds to wait for the fleet (300)"
    )
    p.add_argument(
        "--workers", type=positive_int, default=1, help="worker processes per job kind (1)"
    )
    p.add_argument(
        "--copilot",
        type=non_negative_int,
        default=5,
        help="largest cases to ask Case Copilot about (5)",
    )
    p.add_argument("--csv", type=Path, help="where to write the generated Simplicity CSV")
    p.add_argument(
        "--no-fleet",
        action="store_true",
        help="do not start workers; use a fleet that is already running (dragonfly up)",
    )
    p.add_argument("--no-listener", action="store_true", help="do not run the alert listener")
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    settings, url = settings_and_url()
    if "DRAGONFLY_LOG_LEVEL" not in os.environ:
        # The report is the output; the fleet's own info logs would drown it.
        settings = settings.model_copy(update={"log_level": "WARNING"})
    configure_logging(settings, process="demo")
    opts = DemoOptions(
        cases=args.cases,
        seed=args.seed,
        timeout=args.timeout,
        fleet=not args.no_fleet,
        listener=not args.no_listener,
        workers_per_kind=args.workers,
        copilot=max(args.copilot, 0),
        csv_path=args.csv,
        migrate=not args.no_migrate,
    )
    try:
        run_demo(settings, url, opts, out=lambda line: print(line, flush=True))
    except DrainTimeout as exc:
        raise CommandError(str(exc)) from None
    except (MigrationError, ImportFileError) as exc:
        raise CommandError(str(exc)) from None
    except psycopg.Error as exc:
        raise CommandError(" ".join(str(exc).split())) from None
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    return 0
