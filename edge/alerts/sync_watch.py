"""``sync_stuck``: changes wait for the cloud and sync has not got anywhere
for ``[alerts] sync_stuck_after_s``.  :class:`SyncStuck` is the rule (fed
``sync_status`` dicts, no I/O); :func:`watch_sync` polls the shop and
publishes the alert once per stuck spell."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from edge.core import EdgeCore

POLL_S = 60.0


class SyncStuck:
    def __init__(self, after_s: float) -> None:
        self.after = timedelta(seconds=after_s)
        self._since: datetime | None = None  # backlog without progress since
        self._last_success: object = None
        self._alerted = False

    def feed(self, status: dict[str, Any], now: datetime) -> str | None:
        """The alert message when sync has just become stuck, else None."""
        backlog = int(status.get("queue_depth") or 0)
        success = status.get("last_success")
        progressed = success != self._last_success
        self._last_success = success
        if backlog == 0 or progressed:
            self._since = now if backlog else None
            self._alerted = False
            return None
        if self._since is None:
            self._since = now
        if self._alerted or now - self._since < self.after:
            return None
        self._alerted = True
        minutes = round((now - self._since).total_seconds() / 60)
        error = status.get("last_error") or "no error recorded"
        return (
            f"cloud sync stuck: {backlog} changes waiting, no progress for {minutes} min "
            f"(last success {success or 'never'}; last error: {error})"
        )


async def watch_sync(core: EdgeCore, after_s: float) -> None:
    from sync import sync_status

    rule = SyncStuck(after_s)
    while True:
        status = await core.run_shop(sync_status)
        message = rule.feed(status, datetime.now(UTC))
        if message is not None:
            core.events.publish(
                "alert", {"severity": "critical", "kind": "sync_stuck", "message": message}
            )
        await asyncio.sleep(POLL_S)
