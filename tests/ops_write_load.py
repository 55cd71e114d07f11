"""Write load through the real code paths, for the crash, backup and bench tests.

    python tests/ops_write_load.py DATA_DIR [--sync FULL|NORMAL] [--seconds S]

Alternates a shop order (edge.shop on ``DATA_DIR/shop.db``) and a device
state write (edge.store.Store on ``DATA_DIR/edge.db``), printing one line per
acknowledged write: ``order <id>`` / ``state <n>``.  A line is printed only
after the write's commit returned, so every printed id must survive a kill.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from drivers.model import Availability, DeviceKind, DeviceSnapshot, LightState  # noqa: E402
from edge.shop import Shop, ShopConfig  # noqa: E402
from edge.shop.db import SqliteDatabase, SqliteSync  # noqa: E402
from edge.store import Store  # noqa: E402


def prepare_shop(shop: Shop) -> str:
    """Product and member, created once (a restarted child finds them)."""
    shop.migrate()
    try:
        member = shop.find_member_by_email("load@example.com")
    except Exception:
        shop.create_product(
            {"name": "Serum", "slug": "serum", "category": "skincare", "price": "10.00"},
            initial_stock=10_000_000,
        )
        member = shop.create_member(
            {"name": "Load", "email": "load@example.com", "phone": "+1 555 0100",
             "date_of_birth": "1980-01-01"}
        )  # fmt: skip
    return member.id


async def run(data_dir: Path, sync: SqliteSync, seconds: float | None) -> None:
    shop = Shop(SqliteDatabase(str(data_dir / "shop.db"), synchronous=sync), ShopConfig("edge-1"))
    member_id = prepare_shop(shop)
    store = Store(data_dir / "edge.db")
    await store.open()
    if sync != "NORMAL":
        await store.call(lambda conn: conn.execute(f"PRAGMA synchronous={sync}"))
    loop = asyncio.get_running_loop()
    order = {"items": [{"product": "serum", "quantity": 1}]}
    print("ready", flush=True)
    deadline = None if seconds is None else time.monotonic() + seconds
    n = 0
    while deadline is None or time.monotonic() < deadline:
        n += 1
        o = await loop.run_in_executor(None, shop.create_order, member_id, order)
        print(f"order {o.id}", flush=True)
        snap = DeviceSnapshot(
            "room/light", DeviceKind.LIGHT, Availability.ONLINE, datetime.now(UTC),
            LightState(on=True, brightness=n % 101),
        )  # fmt: skip
        await store.save_state(snap)
        print(f"state {n}", flush=True)
    await store.close()
    shop.db.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--sync", default="FULL", choices=["NORMAL", "FULL"])
    ap.add_argument("--seconds", type=float)
    args = ap.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args.data_dir, args.sync, args.seconds))
