"""The daemon's databases (edge.db and shop.db): opened and migrated at start,
and watched while it runs.  On a full or broken disk the daemon runs degraded
(heater guards, door relock and rooms live in memory): the monitor alerts
while the data dir is full and finishes opening the databases once space
returns, without a restart (docs/faults.md)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from edge.attendance import init_cursor
from edge.events import EventBus
from edge.health import MIN_FREE_BYTES, disk_free
from edge.ops.layout import DOOR_DB, EDGE_DB, SHOP_DB
from edge.outage import is_storage_outage, storage_reason
from edge.shop.service import Shop
from edge.store import Store
from sync.schema import migrate_sync

log = logging.getLogger(__name__)

STORAGE_CHECK_S = 2.0


class StorageKeeper:
    def __init__(self, data_dir: Path, store: Store, shop: Shop, events: EventBus) -> None:
        self.data_dir = data_dir
        self.store = store
        self.shop = shop
        self.events = events  # where the disk alerts go (dashboard, alert channels)
        self.ready = False

    async def open(self) -> bool:
        """True once edge.db and shop.db are open and migrated.  On a full or
        broken disk False, logged; :meth:`monitor` retries."""
        try:
            await self.store.open()
            await asyncio.get_running_loop().run_in_executor(None, self._migrate_shop)
        except Exception as exc:
            if not is_storage_outage(exc):
                raise
            log.error("storage unavailable, running degraded: %s", storage_reason(exc))
            self.ready = False
            return False
        self.ready = True
        return True

    async def monitor(self) -> None:
        """Alert when the data dir fills up or the databases cannot be opened,
        and finish opening them once space returns, without a restart."""
        full = False
        while True:
            try:
                free = await asyncio.to_thread(disk_free, self.data_dir)
            except OSError as exc:
                log.error("cannot read free space of %s: %s", self.data_dir, exc)
                free = 0
            if (free < MIN_FREE_BYTES) != full:
                full = not full
                self._alert(full, free)
            if not self.ready and not full and await self.open():
                log.info("storage recovered: edge.db and shop.db open again")
            await asyncio.sleep(STORAGE_CHECK_S)

    def _alert(self, full: bool, free: int) -> None:
        if full:
            message = (
                f"disk full ({free} bytes free in {self.data_dir}): running degraded, "
                "nothing is saved until space is freed"
            )
            log.error("%s", message)
        else:
            message = f"disk space back ({free} bytes free): saving again"
            log.warning("%s", message)
        severity = "critical" if full else "info"
        alert = {"severity": severity, "kind": "disk_full", "message": message}
        self.events.publish("alert", alert)

    def _migrate_shop(self) -> None:
        self.shop.migrate()
        # The sync tables exist on a stand-alone spa too: its status page and
        # the outbox of attendance work before a cloud is configured.
        migrate_sync(self.shop.db)
        init_cursor(self.shop, self.data_dir / DOOR_DB)
        for db in (EDGE_DB, SHOP_DB):
            (self.data_dir / db).chmod(0o600)
