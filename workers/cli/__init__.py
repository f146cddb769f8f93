"""The ``dragonfly`` command line.

Each command group lives in its own module of this package with a
``register(subparsers)`` function; this module finds and wires them together
and maps failures to exit codes: 0 success, 1 the command ran and failed
(drift, a broken migration), 2 bad input or configuration (one clear line on
stderr).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from workers.cli.common import CommandError
from workers.settings import ConfigError


def _command_modules() -> list[ModuleType]:
    """Every module of this package that defines ``register`` (sorted by name)."""
    modules: list[ModuleType] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            modules.append(module)
    return modules


_REQUIRED = "the following arguments are required: "


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line and exit code 2.

    Subcommand groups show as ``COMMAND`` (not their internal ``dest``), and a
    missing subcommand is reported with the choices.
    """

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("metavar", "COMMAND")
        return super().add_subparsers(**kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {self._readable(message)}\n")

    def _readable(self, message: str) -> str:
        if not message.startswith(_REQUIRED):
            return message
        missing = message.removeprefix(_REQUIRED).split(", ")
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and action.metavar in missing:
                return f"missing COMMAND: choose one of {', '.join(action.choices)}"
        return message


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dragonfly",
        description="Dragonfly enforcement engine: database, worker fleet and on-call tools.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in _command_modules():
        module.register(subparsers)
    return parser


def _name_connections(command: str) -> None:
    """Label this process's database connections ``dragonfly-<command>`` (PGAPPNAME).

    Operators see who is connected in pg_stat_activity, and ``dragonfly db stop``
    refuses while dragonfly processes use the embedded server. A PGAPPNAME of
    one's own is kept; one inherited from a parent dragonfly is replaced.
    """
    current = os.environ.get("PGAPPNAME", "")
    if not current or current.startswith("dragonfly-"):
        os.environ["PGAPPNAME"] = f"dragonfly-{command}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dragonfly`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _name_connections(args.command)
    try:
        code = args.func(args)
    except ConfigError as exc:
        print(f"dragonfly: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"dragonfly: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
