"""Hostile input checks that run before anything is parsed or queried.

* JSON nesting is bounded by a scan of the raw bytes (``MAX_DEPTH``), so a
  body of 60,000 ``[`` is a 400, not a ``RecursionError``.
* NUL characters are refused wherever they could reach a query (PostgreSQL
  text cannot hold them; SQLite refuses them too, so both clouds agree):
  path ids, query strings, JSON strings.
* Headers the API reads must be UTF-8 (aiohttp hands undecodable bytes on as
  surrogates, which used to fail deep inside hashing).

Every refusal is a ``ValidationFailed`` naming the field.
"""

from __future__ import annotations

import re

from edge.shop import ValidationFailed
from sync.poison import refuse_nul

__all__ = ["MAX_DEPTH", "check_depth", "header", "refuse_nul"]

MAX_DEPTH = 32
_TOKENS = re.compile(rb'\\.|"|[\[\]{}]', re.DOTALL)


def check_depth(raw: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (brackets inside strings do not count)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return  # cannot nest deeper than it has openers (most bodies: no scan needed)
    depth, in_string = 0, False
    for m in _TOKENS.finditer(raw):
        token = m.group()
        if token == b'"':
            in_string = not in_string
        elif in_string or token[:1] == b"\\":
            continue
        elif token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise ValidationFailed("body", f"JSON nested deeper than {limit} levels")
        else:
            depth -= 1


def header(value: str, name: str) -> str:
    """A header value the API uses, checked: UTF-8, no NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(name, "header is not valid UTF-8") from None
    if "\x00" in value:
        raise ValidationFailed(name, "NUL characters are not allowed")
    return value
