"""A full disk under a real ``coresync-edge run`` (a real, small tmpfs): the
daemon starts and runs degraded, refuses writes with 503 and a clear reason,
alerts, and recovers when space returns, without a restart."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import Broker
from tests.daemon_process import Daemon, simulator_for, start_daemon, wait_for, write_site
from tests.test_ops_durability import tiny_filesystem
from tests.test_supervision import scene_reaches_mqtt


def _fill(where: Path) -> None:
    # dd stops at ENOSPC: the filesystem is then full to the last block.
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={where}", "bs=64k"], capture_output=True, check=False
    )


async def _login(daemon: Daemon, password: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            daemon.url + "/api/v1/auth/login", json={"username": "admin", "password": password}
        ) as resp,
    ):
        return resp.status, await resp.json()


async def test_full_disk_start_runs_degraded_and_recovers(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    config, cfg = write_site(tmp_path, mqtt_broker)
    zigbee = simulator_for(cfg)
    await zigbee.start()
    try:
        with tiny_filesystem(tmp_path / "fs", 4096) as fs:
            data = fs / "data"
            first = await start_daemon(config, cfg, data)  # creates the databases
            assert (await first.terminate())[0] == 0
            password = (data / "initial-admin-password").read_text().strip()
            filler = fs / "filler"
            await asyncio.to_thread(_fill, filler)

            daemon = await start_daemon(config, cfg, data)  # used to exit 1: "disk I/O error"
            seen: dict[str, Any] = {}
            try:

                async def degraded() -> bool:
                    status, body = await daemon.health()
                    seen.update(status=status, body=body)
                    return (
                        status == 503
                        and "disk: full" in body["problems"]
                        and body["databases"]["edge.db"]["state"] == "disk_full"
                    )

                await wait_for(degraded, 20, "/healthz naming the full disk", lambda: seen)
                body = seen["body"]
                # The safety part and the rooms run; nothing crashed.
                guard = body["components"]["heater-guard:sauna/heater"]
                assert guard["state"] == "running", guard
                assert all(c["state"] == "running" for c in body["components"].values()), body
                result = await scene_reaches_mqtt(daemon, mqtt_broker, cfg.site.id)
                assert result["ok"] is True, result
                # A write is refused with 503 and a reason, not a 500.
                status, answer = await _login(daemon, password)
                assert status == 503, answer
                assert answer["error"]["code"] == "storage_unavailable"
                assert "disk" in answer["error"]["message"], answer
                # The operator hears about it.
                await wait_for(
                    _async(lambda: "disk full" in daemon.output),
                    10,
                    "the disk-full alert in the log",
                    lambda: daemon.output[-2000:],
                )

                filler.unlink()  # space returns

                async def recovered() -> bool:
                    status, body = await daemon.health()
                    seen.update(status=status, body=body)
                    return status == 200

                await wait_for(recovered, 30, "/healthz 200 after space returned", lambda: seen)
                status, answer = await _login(daemon, password)
                assert status == 200, answer  # edge.db writes again, same process
                free = await daemon.metric("coresync_disk_free_bytes")
                assert free is not None and free > 1 << 20
                await wait_for(
                    _async(lambda: "disk space back" in daemon.output),
                    10,
                    "the recovery in the log",
                    lambda: daemon.output[-2000:],
                )
                code, _ = await daemon.terminate()
                assert code == 0, daemon.output[-3000:]
            finally:
                await daemon.kill()
    finally:
        await zigbee.stop()


def _async(check: Any) -> Any:
    async def run() -> bool:
        return bool(check())

    return run
