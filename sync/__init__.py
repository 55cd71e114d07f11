"""Offline-first sync between each edge and the cloud (see docs/sync.md).

Edge daemon::

    from sync import CloudSyncConfig, run_sync_job, sync_once, sync_status
    task = asyncio.create_task(run_sync_job(shop, cfg, on_member_change=hook), name="cloud-sync")

Cloud: ``cloud_api.sync_routes`` registers the endpoints on the API app.
"""

from sync.client import SyncClient, SyncReport, run_sync_job, sync_once
from sync.config import CloudSyncConfig
from sync.edge import AttendanceEvent, EdgeSync, sync_status
from sync.errors import (
    BiometricDataRefused,
    CloudRefused,
    CloudUnreachable,
    ConfigError,
    SyncError,
)

__all__ = [
    "AttendanceEvent",
    "BiometricDataRefused",
    "CloudRefused",
    "CloudSyncConfig",
    "CloudUnreachable",
    "ConfigError",
    "EdgeSync",
    "SyncClient",
    "SyncError",
    "SyncReport",
    "run_sync_job",
    "sync_once",
    "sync_status",
]
