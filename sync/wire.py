"""Checking what the cloud answers before the edge acts on it.

Every reply is validated field by field; anything else (a missing
``block``, a string where a number belongs, a list where an object belongs)
is a :class:`~sync.errors.CloudFault`, retried like an outage.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sync.apply import Change
from sync.errors import CloudFault

T = TypeVar("T")


def field(obj: Any, name: str, kind: type[T], where: str) -> T:
    """``obj[name]`` when ``obj`` is an object and the value is a ``kind`` (bool is no int)."""
    if not isinstance(obj, dict):
        raise CloudFault(f"{where}: expected a JSON object, got {type(obj).__name__}")
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CloudFault(f"{where}: {name!r} missing or not {kind.__name__} ({value!r:.60})")
    return value


def acks(result: Any, keys: list[str]) -> list[dict[str, Any]]:
    """The push acknowledgements, one per key in order, each with status and cloud_seq."""
    items = field(result, "acks", list, "push")
    for i, a in enumerate(items):
        field(a, "key", str, f"push acks[{i}]")
        field(a, "cloud_seq", int, f"push acks[{i}]")
        if field(a, "status", str, f"push acks[{i}]") not in ("applied", "duplicate", "rejected"):
            raise CloudFault(f"push acks[{i}]: unknown status {a['status']!r:.40}")
    if [a["key"] for a in items] != keys:
        raise CloudFault("push: acknowledgements do not match the batch")
    return items


def refused(changes: list[Change], acks: list[dict[str, Any]]) -> list[tuple[Change, str]]:
    """Changes the cloud refused for good (also when a retry hears "duplicate" of one)."""
    out = []
    for c, a in zip(changes, acks, strict=True):
        why = a.get("reason")
        if a["status"] == "rejected" or (a["status"] == "duplicate" and why):
            out.append((c, str(why or "refused by the cloud")))
    return out


def page(result: Any, where: str) -> tuple[list[Change], int, bool]:
    """A feed page (pull or recover): changes, next cursor, whether more follow."""
    rows = field(result, "changes", list, where)
    changes = []
    for i, r in enumerate(rows):
        at = f"{where} changes[{i}]"
        incarnation = r.get("incarnation", "") if isinstance(r, dict) else ""
        if not isinstance(incarnation, str):
            raise CloudFault(f"{at}: 'incarnation' is not str")
        changes.append(
            Change(field(r, "origin", str, at), field(r, "origin_seq", int, at),
                   field(r, "entity", str, at), field(r, "entity_id", str, at),
                   field(r, "op", str, at), field(r, "payload", dict, at),
                   field(r, "created_at", str, at), incarnation)
        )  # fmt: skip
    return changes, field(result, "next_cursor", int, where), field(result, "more", bool, where)


def lease_block(result: Any) -> int:
    return field(result, "block", int, "lease")


def hello(result: Any) -> tuple[str, list[dict[str, Any]]]:
    """The verdict on this disk and the blocks the cloud leased to this node."""
    verdict = field(result, "verdict", str, "hello")
    if verdict not in ("ok", "rolled_back"):
        raise CloudFault(f"hello: unknown verdict {verdict!r:.40}")
    leases = field(result, "leases", list, "hello")
    for i, lease in enumerate(leases):
        at = f"hello leases[{i}]"
        if field(lease, "kind", str, at) not in ("PO", "CR"):
            raise CloudFault(f"{at}: unknown kind")
        field(lease, "year", int, at)
        field(lease, "block", int, at)
        field(lease, "incarnation", str, at)
        field(lease, "request_key", str, at)
    return verdict, leases
