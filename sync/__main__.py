"""``python -m sync --db edge.db --url URL --node ID [--loop]``: the sync client alone.

For operators and for tests that kill the client mid-batch; the daemon runs
:func:`sync.client.run_sync_job` instead.  The secret comes from
``$CORESYNC_NODE_SECRET`` (or a systemd credential), never from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from dataclasses import asdict

from edge.shop import Shop, ShopConfig, open_database
from sync.client import SyncClient, sync_once
from sync.config import CloudSyncConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sync")
    p.add_argument("--db", required=True, help="the edge's shop SQLite file")
    p.add_argument("--url", required=True, help="cloud base URL")
    p.add_argument("--node", required=True, help="this edge's node id")
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--loop", action="store_true", help="keep syncing until killed")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = CloudSyncConfig(base_url=args.url, node_id=args.node, batch_size=args.batch_size,
                          interval_s=0.2, backoff_min_s=0.05, backoff_max_s=0.5)  # fmt: skip
    db = open_database(args.db)
    shop = Shop(db, ShopConfig(node_id=args.node, number_authority=False))
    shop.migrate()
    try:
        if args.loop:
            asyncio.run(SyncClient(shop, cfg).run())
        else:
            print(json.dumps(asdict(asyncio.run(sync_once(shop, cfg)))))
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
