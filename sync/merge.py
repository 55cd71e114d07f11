"""Conflict rules, pure functions (no I/O): how two nodes' views of a record meet.

Each rule is a join: commutative, associative and idempotent, so every node
reaches the same result whatever order changes arrive in (docs/sync.md).

Status: states are ranked along the allowed paths and the furthest wins.
Terminal states outrank the open ones they can be reached from, and
``completed`` outranks everything: a pickup that happened is a fact, and a
cancel or decline that raced it is flagged for staff rather than undone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.shop.statuses import OrderStatus as O
from edge.shop.statuses import RequestStatus as R

ORDER_RANK: dict[str, int] = {
    O.PENDING: 0,
    O.PROCESSING: 1,
    O.READY: 2,
    O.CANCELLED: 3,
    O.COMPLETED: 4,
}
REQUEST_RANK: dict[str, int] = {
    R.PENDING: 0,
    R.APPROVED: 1,
    R.PROCESSING: 2,
    R.READY: 3,
    R.DECLINED: 4,
    R.CANCELLED: 5,
    R.COMPLETED: 6,
}
_TERMINAL_LOSERS = {R.CANCELLED, R.DECLINED}


@dataclass(frozen=True)
class StatusOutcome:
    status: str
    flag: str | None  # a conflict staff should see, or None


def merge_status(ranks: Mapping[str, int], local: str, remote: str) -> StatusOutcome:
    """The furthest legitimate state, and whether the meeting needs staff."""
    winner = local if ranks[local] >= ranks[remote] else remote
    pair = {local, remote}
    flag = None
    if R.COMPLETED in pair and pair & _TERMINAL_LOSERS:
        loser = (pair & _TERMINAL_LOSERS).pop()
        flag = f"{loser}_vs_completed"
    elif R.READY in pair and pair & _TERMINAL_LOSERS:
        loser = (pair & _TERMINAL_LOSERS).pop()
        flag = f"{loser}_after_ready"
    elif pair == {R.DECLINED, R.CANCELLED}:
        flag = "declined_vs_cancelled"
    elif R.DECLINED in pair and pair & {R.APPROVED, R.PROCESSING}:
        flag = "declined_vs_approved"
    return StatusOutcome(winner, flag)


def merge_set_once(local: Any, remote: Any) -> tuple[Any, bool]:
    """Fields written once (payment, verification, invoice): keep the one value.

    Two different values mean two people did the thing twice (two payments):
    the smaller value is kept on every node, and the clash is reported.
    """
    if local is None:
        return remote, False
    if remote is None or local == remote:
        return local, False
    return min(str(local), str(remote)), True


def merge_text(local: Any, remote: Any) -> Any:
    """Free text edited on two nodes: a deterministic pick (the longer, then the larger).

    Notes only grow in practice, so the longer text is usually the newer one;
    no wall clock is trusted because edge clocks drift.
    """
    if local is None or local == remote:
        return remote if local is None else local
    if remote is None:
        return local
    return max((len(str(local)), str(local)), (len(str(remote)), str(remote)))[1]


# Fields of each record and how they merge.
ORDER_SET_ONCE = ("payment_ref", "paid_at", "invoice_id")
ORDER_TEXT = ("staff_notes", "accounting_error")
REQUEST_SET_ONCE = (
    "actual_cost",
    "age_verified_at",
    "age_verified_by",
    "reviewed_at",
    "completed_at",
    "decline_reason",
)
REQUEST_TEXT = ("staff_notes",)


@dataclass(frozen=True)
class RecordOutcome:
    values: dict[str, Any]
    flags: tuple[str, ...]


def merge_record(
    ranks: Mapping[str, int],
    local: Mapping[str, Any],
    remote: Mapping[str, Any],
    set_once: tuple[str, ...],
    text: tuple[str, ...],
) -> RecordOutcome:
    """Merged status and mutable fields of one order or request."""
    status = merge_status(ranks, local["status"], remote["status"])
    values: dict[str, Any] = {"status": status.status}
    flags = [status.flag] if status.flag else []
    for name in set_once:
        values[name], clash = merge_set_once(local.get(name), remote.get(name))
        if clash:
            flags.append(f"conflicting_{name}")
    for name in text:
        values[name] = merge_text(local.get(name), remote.get(name))
    return RecordOutcome(values, tuple(flags))
