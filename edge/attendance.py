"""Door attendance up to the cloud, without any biometric data.

Every door event that let a known member in becomes a sync
:class:`sync.AttendanceEvent` (member, door, direction, time) queued in the
shop's outbox; the sync job carries it up.  Only those four fields leave the
building: no score, no liveness detail, no template, no image.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime
from typing import Any

from edge.core import EdgeCore
from edge.shop.service import Shop
from sync import AttendanceEvent, EdgeSync

log = logging.getLogger(__name__)


def attendance_of(event: dict[str, Any]) -> AttendanceEvent | None:
    """The attendance record for a door event, or None if it is not one."""
    member = event.get("member_id")
    if event.get("decision") != "unlock" or not member:
        return None
    return AttendanceEvent(
        member_id=str(member),
        door=str(event.get("door") or "door"),
        direction="in",
        at=datetime.fromtimestamp(float(event.get("ts") or 0), UTC),
    )


def _queue(record: AttendanceEvent, shop: Shop) -> str:
    return EdgeSync(shop).record_attendance(record)


async def forward_attendance(core: EdgeCore) -> None:
    """Queue attendance for every member let in, until cancelled."""
    with core.events.subscribe(types={"door"}, maxsize=10_000) as sub:
        async for event in sub:
            record = attendance_of(event.data)
            if record is None:
                continue
            try:
                await core.run_shop(functools.partial(_queue, record))
            except Exception:
                # The door event itself is stored durably on the edge; only its
                # copy for the cloud is lost, and the log says so.
                log.exception("attendance for member %s not queued for the cloud", record.member_id)
