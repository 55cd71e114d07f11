"""The door is fail-secure whatever storage does: a real site (Mosquitto, the
simulated Zigbee lock, real SQLite files), the LAN API, and another process
holding the write lock of edge.db or door.db to inject the fault."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge.door.vault import DOOR_DB
from edge.service import DB_NAME
from tests.storage_faults import WriteLock
from tests.test_api_support import ApiSite
from tests.test_door_service import (
    door_config,
    door_with,
    enroll,
    folder_of,
    lock_state,
    new_member,
)
from tests.test_door_service import site as site
from vision.camera import ImageFolderSource

RELOCK_S = 1.0
SLACK_S = 2.0  # the bound: locked within relock + 2 s


async def _wait(cond: Any, within_s: float, what: str) -> float:
    """Seconds until ``cond()`` held; fails naming ``what`` if it never did."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not cond():
        if loop.time() - start > within_s:
            raise AssertionError(f"{what}: not within {within_s}s")
        await asyncio.sleep(0.02)
    return loop.time() - start


async def test_unlock_that_cannot_be_recorded_relocks_and_is_written_later(
    site: ApiSite, tmp_path: Path
) -> None:
    door = await door_with(site, tmp_path, door_config(relock_s=RELOCK_S))
    try:
        await _wait(lambda: lock_state(site).locked is True, 10, "the door locked at start")
        async with WriteLock(site.data_dir / DB_NAME):
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            request = asyncio.create_task(
                site.client.post(
                    "/api/v1/door/unlock", json={"reason": "courier"}, headers=site.auth("staff1")
                )
            )
            await _wait(lambda: lock_state(site).locked is False, 10, "the unlock reached the lock")
            # Relocked on time alone, while the command log still cannot be written.
            await _wait(
                lambda: lock_state(site).locked is True, RELOCK_S + SLACK_S, "relocked in time"
            )
            assert loop.time() - t0 <= RELOCK_S + SLACK_S + 1.0
            resp = await request
            assert resp.status == 503, await resp.text()
            assert (await resp.json())["error"]["code"] == "storage_unavailable"
            assert lock_state(site).locked is True
            assert site.core.command_spool.pending >= 2  # the unlock and the relock rows
        # The door event (door.db was free) names the fault; the command log rows
        # land once edge.db takes writes again.
        events = await door.vault.events(10)
        assert any(e.reason == "unlock_unrecorded" and e.decision == "error" for e in events)

        def logged() -> bool:
            return site.core.command_spool.pending == 0

        await _wait(logged, 15, "the spooled command log rows written after release")
        rows = await site.core.store.commands(device_id="entrance/door")
        sent = [(r["actor_id"], r["command"]["locked"]) for r in rows]
        assert ("staff1", False) in sent and ("relock", True) in sent, sent
        assert lock_state(site).locked is True
    finally:
        await door.stop()


async def test_lock_opened_outside_the_door_service_is_relocked(
    site: ApiSite, tmp_path: Path
) -> None:
    door = await door_with(site, tmp_path, door_config(relock_s=RELOCK_S))
    try:
        await _wait(lambda: lock_state(site).locked is True, 10, "the door locked at start")
        # Opened at the device itself (its own keypad, a Zigbee2MQTT dashboard).
        await site.zigbee.update("e_door", state="UNLOCKED", lock_state="unlocked")
        await _wait(lambda: lock_state(site).locked is False, 5, "the lock reported open")
        await _wait(lambda: lock_state(site).locked is True, RELOCK_S + SLACK_S, "relocked")
    finally:
        await door.stop()


async def test_camera_loop_survives_a_door_db_lock_and_resumes(
    site: ApiSite, tmp_path: Path, shared_faces: Path
) -> None:
    """An unknown face is denied again and again; door.db is write-locked for
    longer than the event write waits (twice over), then released."""
    obama = sorted((shared_faces / "dev" / "barack_obama").iterdir())
    biden = sorted((shared_faces / "dev" / "joe_biden").iterdir())
    member = await new_member(site, "Barack Obama")
    door = await door_with(site, tmp_path, door_config(unknown_frames=3, failure_limit=100))
    sub = site.core.events.subscribe(types={"door"})
    try:
        await enroll(door, member, obama[:3])
        door.source = ImageFolderSource(folder_of(tmp_path, biden[0]), fps=10, loop=True)
        await door.source.start()
        door._tasks.append(asyncio.create_task(door.camera_track().supervise(), name="door-camera"))

        async def next_event(within_s: float) -> dict[str, Any]:
            data: dict[str, Any] = (await asyncio.wait_for(sub.get(), within_s)).data
            return data

        first = await next_event(60)
        assert first["decision"] == "deny" and first["id"] is not None, first
        async with WriteLock(tmp_path / "door" / DOOR_DB):
            # Decisions go on while storage is down; the status says so.
            spooled = 0
            loop = asyncio.get_running_loop()
            until = loop.time() + 8
            while loop.time() < until:
                event = await next_event(20)
                spooled += event["spooled"]
            assert spooled >= 1, "no decision was taken while door.db was locked"
            status = door.status()
            assert status["storage"] != "ok" and status["spooled_events"] >= 1, status
            assert status["camera_loop"] == "ok", status
        released = loop.time()
        while True:
            event = await next_event(20)
            if not event["spooled"]:
                break
        assert loop.time() - released <= 5.0 + 1.0, "decisions did not resume within 5 s"
        await _wait(lambda: door.records.spool.pending == 0, 10, "spooled events written")
        assert door.status()["storage"] == "ok"
        stored = await door.vault.events(1000)
        assert sum(e.decision == "deny" for e in stored) >= spooled + 1
        assert lock_state(site).locked is not False
    finally:
        sub.close()
        await door.stop()
