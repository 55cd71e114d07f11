"""Telling a change that can never apply from a failure that a retry may fix.

A *poison* change (a NUL character PostgreSQL cannot store, an unknown
member, a broken payload) is refused for good: the cloud records it as
``rejected`` with the reason and the edge moves it to its quarantine, so the
rest of the queue keeps flowing.  A storage failure (disk, lost connection,
lock timeout) is not the change's fault: it propagates, the request answers
5xx and the edge retries the same batch later.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edge.shop.errors import ShopError, StorageFailure, ValidationFailed
from sync.apply import Change

MAX_REASON = 500


def find_nul(value: Any, path: str = "payload") -> str | None:
    """The dotted path of the first string holding a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            hit = find_nul(str(k), f"{path or 'body'} (a key)") or find_nul(v, sub)
            if hit:
                return hit
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            hit = find_nul(v, f"{path}[{i}]")
            if hit:
                return hit
    return None


def refuse_nul(*values: tuple[str, Any]) -> None:
    """Raise ``ValidationFailed`` naming the field when any value holds a NUL."""
    for path, value in values:
        hit = find_nul(value, path)
        if hit:
            raise ValidationFailed(hit, "NUL characters are not allowed")


def is_poison(exc: BaseException) -> bool:
    """True when applying again will fail again: reject and move on."""
    if isinstance(exc, StorageFailure):
        return False
    if isinstance(exc, ShopError | KeyError | TypeError | ValueError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    # A value PostgreSQL refuses (bad encoding, out of range) stays refused.
    return isinstance(exc, psycopg.DataError)


def reason(exc: BaseException) -> str:
    field = getattr(exc, "field", None)
    text = f"{type(exc).__name__}: {exc}" + (f" (field {field})" if field else "")
    return text.replace("\x00", "\\0")[:MAX_REASON]


def _clean(text: str) -> str:
    return text.replace("\x00", "\\0")


def storable(c: Change) -> Change:
    """``c`` with NULs spelled out in its text columns, so a rejected change can be kept.

    (The payload is stored as JSON text, where ``json.dumps`` escapes NUL.)
    """
    return replace(c, entity=_clean(c.entity), entity_id=_clean(c.entity_id), op=_clean(c.op),
                   created_at=_clean(c.created_at))  # fmt: skip
