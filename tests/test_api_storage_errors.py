"""A storage outage in any route is a 503 with the reason, never a 500."""

from __future__ import annotations

import sqlite3

import aiohttp
from aiohttp import web

from edge.api.errors import error_middleware
from edge.door.errors import DoorError
from edge.errors import StorageError
from tests.conftest import free_port


async def _raise_full(request: web.Request) -> web.Response:
    raise sqlite3.OperationalError("database or disk is full")


async def _raise_door(request: web.Request) -> web.Response:
    # How the door store reports a consent write that hit a full disk.
    try:
        raise sqlite3.OperationalError("disk I/O error")
    except sqlite3.OperationalError as exc:
        raise DoorError("cannot write consent") from exc


async def _raise_locked(request: web.Request) -> web.Response:
    raise StorageError("edge.db: database is locked")


async def _raise_bug(request: web.Request) -> web.Response:
    raise KeyError("block")


async def test_storage_outages_answer_503_with_a_reason_and_bugs_500() -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/full", _raise_full)
    app.router.add_post("/consent", _raise_door)
    app.router.add_post("/locked", _raise_locked)
    app.router.add_post("/bug", _raise_bug)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            answers = {}
            for path in ("full", "consent", "locked", "bug"):
                async with http.post(f"http://127.0.0.1:{port}/{path}") as resp:
                    answers[path] = (resp.status, (await resp.json())["error"])
    finally:
        await runner.cleanup()
    assert answers["full"][0] == 503 and answers["full"][1]["code"] == "storage_unavailable"
    assert "disk is full" in answers["full"][1]["message"]
    assert answers["consent"][0] == 503 and "disk" in answers["consent"][1]["message"]
    assert answers["locked"][0] == 503 and "locked" in answers["locked"][1]["message"]
    assert answers["bug"][0] == 500 and answers["bug"][1]["code"] == "internal"
