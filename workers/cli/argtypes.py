"""Argument types of the CLI, each failing with a message a person can act on.

argparse reports a type that raises ``ValueError`` as ``invalid <function name>
value``; these raise ``ArgumentTypeError`` with what was expected instead.
"""

from __future__ import annotations

import argparse
import re
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


_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_UUID_SHAPE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def tenant_slug(text: str) -> str:
    """A new tenant's slug: lowercase letters, digits and hyphens, not an id's shape."""
    value = text.strip()
    if not _SLUG.match(value) or _UUID_SHAPE.match(value):
        raise argparse.ArgumentTypeError(
            "expected a slug of 1 to 63 lowercase letters, digits and hyphens (like north),"
            f" got {text!r}"
        )
    return value


def tenant_ref(text: str) -> str:
    """A tenant named by its slug (any case) or its id; whether it exists is checked later."""
    value = text.strip()
    if not (_UUID_SHAPE.match(value) or _SLUG.match(value.lower())):
        raise argparse.ArgumentTypeError(
            f"expected a tenant slug (like north) or id (a UUID), got {text!r}"
        )
    return value


def email_address(text: str) -> str:
    """An email address (local@domain); whether a user has it is checked later."""
    value = text.strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise argparse.ArgumentTypeError(f"expected an email address, got {text!r}")
    return value
