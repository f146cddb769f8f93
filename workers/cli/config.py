"""``dragonfly config``: the effective settings, and their reference table."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import SecretStr

from workers.redact import mask_password
from workers.settings import Settings, env_name, load_settings


def register(subparsers: Any) -> None:
    config = subparsers.add_parser("config", help="show settings and their documentation")
    commands = config.add_subparsers(dest="config_command", required=True)
    p = commands.add_parser("show", help="the effective settings (secrets hidden)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_show)
    p = commands.add_parser("table", help="the Markdown reference table of every setting")
    p.set_defaults(func=cmd_table)


def _display(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else ""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else ""
    return str(value)


def _shown(settings: Settings, name: str) -> str:
    value = getattr(settings, name)
    # The database URL is shown (where the fleet points) but never with its password.
    if name == "database_url" and value:
        return mask_password(value)
    return _display(value)


def cmd_show(args: argparse.Namespace) -> int:
    settings = load_settings()
    values = {env_name(name): _shown(settings, name) for name in Settings.model_fields}
    if args.json:
        print(json.dumps(values, indent=2, sort_keys=True))
        return 0
    width = max(len(k) for k in values)
    for key, value in values.items():
        print(f"{key:<{width}}  {value}")
    return 0


def settings_table(prefixes: tuple[str, ...] = ()) -> str:
    """Every setting (or those whose field name starts with one of ``prefixes``) as a
    Markdown table row: variable, default, meaning."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        if prefixes and not name.startswith(prefixes):
            continue
        default = field.get_default(call_default_factory=True)
        shown = _display(default)
        lines.append(
            f"| `{env_name(name)}` | {f'`{shown}`' if shown else 'unset'} "
            f"| {(field.description or '').replace('|', '/')} |"
        )
    return "\n".join(lines)


def cmd_table(_args: argparse.Namespace) -> int:
    print(settings_table())
    return 0
