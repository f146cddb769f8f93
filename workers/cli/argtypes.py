"""Argument types of the CLI, each failing with a message a person can act on.

argparse reports a type that raises ``ValueError`` as ``invalid <function name>
value``; these raise ``ArgumentTypeError`` with what was expected instead.
"""

from __future__ import annotations

import argparse
from uuid import UUID

from workers.job_kinds import check_kind_name


def integer(text: str) -> int:
    """A whole number (negative allowed)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def non_negative_int(text: str) -> int:
    """A whole number, 0 or more."""
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number, 1 or more."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def positive_number(text: str) -> float:
    """A number above 0 (seconds, say)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def uuid(text: str) -> UUID:
    """A UUID such as 3f2b8c1e-0d4a-4e57-9b6e-2f1c0a9d8e7b."""
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a UUID (like 3f2b8c1e-0d4a-4e57-9b6e-2f1c0a9d8e7b), got {text!r}"
        ) from None


def kind_name(text: str) -> str:
    """A job kind's name (the registry's rule); whether it is registered is checked later."""
    try:
        return check_kind_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
