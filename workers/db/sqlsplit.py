"""Split a migration file into statements, the way `supabase db push` records them.

The splitter understands everything our migrations use: single-quoted and
E'' strings, quoted identifiers, dollar-quoted bodies ($$ and $tag$), line and
(nested) block comments. SQL-standard ``BEGIN ATOMIC`` bodies are not supported:
write function bodies with dollar quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a file and the line it starts on (1-based)."""

    text: str
    line: int


def split_statements(sql: str) -> list[Statement]:
    """Return the non-empty statements of ``sql``, without their trailing semicolons."""
    statements: list[Statement] = []
    start = 0
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
        elif ch == "/" and nxt == "*":
            i = _skip_block_comment(sql, i)
        elif ch == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and not _is_ident_char(sql, i - 2)
            i = _skip_quoted(sql, i, "'", backslash=escapes)
        elif ch == '"':
            i = _skip_quoted(sql, i, '"', backslash=False)
        elif ch == "$" and not _is_ident_char(sql, i - 1):
            match = _DOLLAR_TAG.match(sql, i)
            if match:
                close = sql.find(match.group(0), match.end())
                if close == -1:
                    raise ValueError(f"unterminated dollar quote {match.group(0)}")
                i = close + len(match.group(0))
            else:
                i += 1
        elif ch == ";":
            _append(statements, sql, start, i)
            i += 1
            start = i
        else:
            i += 1
    _append(statements, sql, start, n)
    return statements


def _is_ident_char(sql: str, index: int) -> bool:
    return index >= 0 and (sql[index].isalnum() or sql[index] == "_")


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 0
    n = len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise ValueError("unterminated block comment")


def _skip_quoted(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    i += 1
    n = len(sql)
    while i < n:
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    raise ValueError(f"unterminated quoted text starting with {quote}")


def _append(statements: list[Statement], sql: str, start: int, end: int) -> None:
    chunk = sql[start:end]
    if not _has_code(chunk):
        return
    leading = len(chunk) - len(chunk.lstrip())
    line = sql.count("\n", 0, start + leading) + 1
    statements.append(Statement(text=chunk.strip(), line=line))


def _has_code(chunk: str) -> bool:
    """True when the chunk holds more than whitespace and comments."""
    stripped = re.sub(r"--[^\n]*", "", chunk)
    stripped = re.sub(r"/\*.*?\*/", "", stripped, flags=re.S)
    return bool(stripped.strip())
