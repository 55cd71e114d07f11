"""/metrics: door decisions, command durations, vision worker and sync
figures, on a real site (Mosquitto, SQLite) with a real door service, read
back with prometheus_client's own parser (which rejects what the text format
does not allow)."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.api.keys import METRICS
from edge.door.service import DoorService
from sync import sync_status
from tests.test_api_support import ApiSite, api, wait_until
from tests.test_door_service import door_config, door_with

__all__ = ["api"]


def parse(text: str) -> dict[str, float]:
    """Samples by ``name{labels}`` (labels sorted); fails on a malformed text,
    a family declared twice, a duplicate sample or NaN."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"family declared twice: {family.name}"
        families.add(family.name)
        assert family.documentation, f"{family.name} has no HELP"
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            key = sample.name + (f"{{{labels}}}" if labels else "")
            assert key not in samples, f"duplicate sample {key}"
            assert not math.isnan(sample.value), key
            samples[key] = sample.value
    return samples


@pytest.fixture
async def door(api: ApiSite, tmp_path: Path) -> AsyncIterator[DoorService]:
    d = await door_with(api, tmp_path, door_config())
    try:
        yield d
    finally:
        await d.stop()


async def test_door_decisions_command_latency_and_vision(api: ApiSite, door: DoorService) -> None:
    metrics = api.client.app[METRICS]
    resp = await api.client.post(
        "/api/v1/rooms/room-a/devices/ceiling/command", json={"on": True}, headers=api.auth("admin")
    )
    assert resp.status == 200, await resp.text()
    resp = await api.client.post(
        "/api/v1/door/unlock", json={"reason": "metrics test"}, headers=api.auth("manager1")
    )
    assert resp.status == 200, await resp.text()
    await wait_until(
        lambda: (
            metrics.value("coresync_door_decisions_total", decision="unlock", method="remote") == 1
        )
    )

    samples = parse(await (await api.client.get("/metrics")).text())
    assert samples['coresync_door_decisions_total{decision="unlock",method="remote"}'] == 1
    # The ceiling command and the door's unlock (and maybe its relock) were timed.
    count = samples["coresync_device_command_seconds_count"]
    assert count >= 2
    assert samples['coresync_device_command_seconds_bucket{le="+Inf"}'] == count
    assert samples["coresync_device_command_seconds_sum"] > 0
    buckets = [v for k, v in samples.items() if k.startswith("coresync_device_command_seconds_b")]
    assert buckets == sorted(buckets), "histogram buckets must be cumulative"
    assert samples['coresync_vision_worker_up{door="entrance/door"}'] == 1
    assert samples['coresync_vision_worker_restarts_total{door="entrance/door"}'] == 0
    assert samples['coresync_device_available{device="room-a/ceiling",room="room-a"}'] == 1
    # The process, from prometheus_client's collector, in its standard names.
    assert samples["process_resident_memory_bytes"] > 0
    assert "coresync_api_requests_created" not in "".join(samples)
    # This site has no [cloud]: no sync figures rather than made-up ones.
    assert not any(k.startswith("coresync_sync_") for k in samples)


async def test_without_a_door_there_are_no_vision_figures(api: ApiSite) -> None:
    samples = parse(await (await api.client.get("/metrics")).text())
    assert not any(k.startswith("coresync_vision_") for k in samples)
    assert samples["coresync_device_command_seconds_count"] == 0


async def test_sync_figures_from_the_real_sync_status(api: ApiSite) -> None:
    metrics = api.client.app[METRICS]
    status = await api.core.run_shop(sync_status)
    samples = parse((await metrics.exposition(api.core, status, None)).decode())
    assert samples["coresync_sync_queue_depth"] == status["queue_depth"]
    assert "coresync_sync_last_success_timestamp_seconds" not in samples  # never synced

    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    with_success = {**status, "last_success": an_hour_ago.isoformat()}
    samples = parse((await metrics.exposition(api.core, with_success, None)).decode())
    stamp = samples["coresync_sync_last_success_timestamp_seconds"]
    assert stamp == pytest.approx(an_hour_ago.timestamp(), abs=0.001)
    assert stamp < time.time()
