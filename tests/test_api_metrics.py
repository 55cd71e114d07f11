"""/metrics: door decisions, command durations, vision worker and sync
figures, on a real site (Mosquitto, SQLite) with a real door service, and a
line-by-line check that the text is valid Prometheus exposition format."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.api.keys import METRICS
from edge.door.service import DoorService
from sync import sync_status
from tests.test_api_support import ApiSite, api, wait_until
from tests.test_door_service import door_config, door_with

__all__ = ["api"]

PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
SAMPLE = re.compile(
    rf"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{(?P<labels>{PAIR}(?:,{PAIR})*)\}})? (?P<value>\S+)$"
)
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse(text: str) -> dict[str, float]:
    """Samples by ``name{labels}``; fails on anything the format does not allow."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    families: dict[str, str] = {}
    current: str | None = None
    pending_help: str | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            pending_help = line.split()[2]
            assert pending_help not in families, f"family declared twice: {line}"
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == pending_help, f"TYPE without its HELP: {line}"
            assert kind in TYPES, line
            families[name], current, pending_help = kind, name, None
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name = match["name"]
        assert current is not None, f"sample before any TYPE: {line}"
        allowed = {current}
        if families[current] == "histogram":
            allowed = {f"{current}_bucket", f"{current}_sum", f"{current}_count"}
        assert name in allowed, f"{name} outside its family {current}"
        value = float(match["value"])
        assert not math.isnan(value), line
        key = name + (f"{{{match['labels']}}}" if match["labels"] else "")
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = value
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
    await wait_until(lambda: metrics.door_decisions[("unlock", "remote")] == 1)

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
    assert samples['coresync_device_available{room="room-a",device="room-a/ceiling"}'] == 1
    # This site has no [cloud]: no sync figures rather than made-up ones.
    assert not any(k.startswith("coresync_sync_") for k in samples)


async def test_without_a_door_there_are_no_vision_figures(api: ApiSite) -> None:
    samples = parse(await (await api.client.get("/metrics")).text())
    assert not any(k.startswith("coresync_vision_") for k in samples)
    assert samples["coresync_device_command_seconds_count"] == 0


async def test_sync_figures_from_the_real_sync_status(api: ApiSite) -> None:
    metrics = api.client.app[METRICS]
    status = await api.core.run_shop(sync_status)
    samples = parse(metrics.render(api.core, status, None))
    assert samples["coresync_sync_queue_depth"] == status["queue_depth"]
    assert "coresync_sync_last_success_age_seconds" not in samples  # never synced

    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    samples = parse(metrics.render(api.core, {**status, "last_success": an_hour_ago}, None))
    assert 3590 < samples["coresync_sync_last_success_age_seconds"] < 3700
