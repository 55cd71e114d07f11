"""The edge sync job: push the outbox, pull the feed, keep numbers topped up.

Async on the outside (aiohttp client), every shop call in a one-thread
executor so the event loop never waits on SQLite.  One cycle
(:meth:`SyncClient.sync_once`) pushes until the outbox is drained, pulls
until caught up, then leases number blocks below the low-water mark.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from drivers.backoff import backoff_delay
from edge.shop import Shop
from edge.shop.numbering import Kind
from sync import wire
from sync.apply import Change
from sync.config import CloudSyncConfig
from sync.edge import EdgeSync
from sync.errors import CloudFault, CloudRefused, CloudUnreachable, SyncError
from sync.incarnation import RECOVER_CURSOR

log = logging.getLogger(__name__)
T = TypeVar("T")

MemberHook = Callable[[str, bool, bool], Awaitable[None] | None]


@dataclass
class SyncReport:
    pushed: int = 0
    duplicates: int = 0
    rejected_by_cloud: int = 0
    pulled: int = 0
    rejected_here: int = 0
    leased_blocks: int = 0
    requests: int = 0
    recovered: int = 0


def node_authorization(node_id: str, secret: str) -> str:
    """The Authorization header value a node sends (also used by ``doctor``)."""
    return f"Node {node_id}:{secret}"


class SyncClient:
    def __init__(
        self,
        shop: Shop,
        cfg: CloudSyncConfig,
        *,
        secret: str | None = None,
        on_member_change: MemberHook | None = None,
        keep_alive: bool = True,
    ) -> None:
        self.shop = shop
        self._keep_alive = keep_alive
        self.cfg = cfg
        self.store = EdgeSync(shop)
        self._secret = secret
        self._hook = on_member_change
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sync-db")
        self._session: aiohttp.ClientSession | None = None
        self._ok = asyncio.Event()
        self._failing = asyncio.Event()
        self._stopped = False
        self._greeted = False  # sync/hello done for this start

    # ---- plumbing -----------------------------------------------------------
    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def _auth(self) -> str:
        if self._secret is None:
            self._secret = self.cfg.node_secret()
        return node_authorization(self.cfg.node_id, self._secret)

    async def _http(self, method: str, path: str, body: Any = None) -> Any:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.cfg.request_timeout_s)
            connector = aiohttp.TCPConnector(force_close=not self._keep_alive)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": self._auth(), "Content-Type": "application/json"}
        try:
            async with self._session.request(
                method, self.cfg.api_root + path, data=data, headers=headers
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CloudUnreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        try:
            result = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CloudUnreachable(f"{method} {path}: unreadable response ({status})") from exc
        if status >= 500 or status in (408, 409, 429):
            raise CloudUnreachable(f"{method} {path}: HTTP {status}")
        if status >= 400:
            err = result.get("error", {}) if isinstance(result, dict) else {}
            raise CloudRefused(status, str(err.get("message", raw[:200])))
        return result

    # ---- one cycle ---------------------------------------------------------------
    async def hello(self, report: SyncReport) -> None:
        """Once per start: register the incarnation; a rolled-back disk starts a new one."""
        for _ in range(3):
            body = await self._db(self.store.hello_body)
            verdict, leases = wire.hello(await self._http("POST", "sync/hello", body))
            report.requests += 1
            if not await self._db(self.store.accept_hello, verdict, leases):
                self._greeted = True
                return
            log.warning("this disk was rolled back (restored by hand?): new incarnation")
        raise CloudFault("hello: the cloud still calls this disk rolled back")

    async def recover_all(self, report: SyncReport) -> None:
        """After a new incarnation: re-apply this node's history the disk lacks."""
        while True:
            reason, cursor, known = await self._db(self.store.recovery)
            if reason is None:
                return
            body = {"known": known, "after": cursor, "limit": self.cfg.batch_size}
            changes, next_cursor, more = wire.page(
                await self._http("POST", "sync/recover", body), "recover"
            )
            report.requests += 1
            if changes or next_cursor != cursor:
                result = await self._db(
                    self.store.apply_pulled, changes, next_cursor, RECOVER_CURSOR
                )
                report.recovered += result.applied
            if not more:
                await self._db(self.store.finish_recovery)
                return

    async def push_all(self, report: SyncReport) -> None:
        """Batch after batch; while one is in flight the next is read and the last one's
        acknowledgement written (the cursor still moves in order, on the one database
        thread; a crash in between re-sends a batch: duplicates)."""
        acked: asyncio.Future[None] | None = None
        sent: asyncio.Future[Any] | None = None
        ahead: asyncio.Future[tuple[list[Change], int]] | None = None
        try:
            changes, reach = await self._db(self.store.pending, self.cfg.batch_size)
            while changes:
                body = {"changes": [_wire(c) for c in changes]}
                sent = asyncio.ensure_future(self._http("POST", "sync/push", body))
                ahead = asyncio.ensure_future(
                    self._db(self.store.pending, self.cfg.batch_size, reach)
                )
                if acked is not None:
                    previous, acked = acked, None
                    await previous  # a failed acknowledgement stops here
                result, sent = await sent, None
                report.requests += 1
                acks = wire.acks(result, [c.key for c in changes])
                refused = wire.refused(changes, acks)
                for a in acks:
                    report.pushed += a["status"] == "applied"
                    report.duplicates += a["status"] == "duplicate"
                    report.rejected_by_cloud += a["status"] == "rejected"
                acked = asyncio.ensure_future(
                    self._db(self.store.acknowledge, reach, int(acks[-1]["cloud_seq"]), refused)
                )
                (changes, reach), ahead = await ahead, None
            if acked is not None:
                previous, acked = acked, None
                await previous
            if reach:  # changes the cloud does not take, passed by the cursor
                await self._db(self.store.acknowledge, reach, None)
        finally:
            if sent is not None:
                sent.cancel()
            await asyncio.gather(*(f for f in (sent, acked, ahead) if f is not None),
                                 return_exceptions=True)  # fmt: skip

    async def pull_all(self, report: SyncReport) -> None:
        while True:
            _, cursor = await self._db(self.store.cursors)
            page = await self._http("GET", f"sync/pull?after={cursor}&limit={self.cfg.batch_size}")
            report.requests += 1
            changes, next_cursor, more = wire.page(page, "pull")
            if changes or next_cursor != cursor:
                result = await self._db(self.store.apply_pulled, changes, next_cursor)
                report.pulled += result.applied
                report.rejected_here += result.rejected
            await self.deliver_member_events()
            if not more:
                return

    async def deliver_member_events(self) -> None:
        """At least once: an event leaves the queue only after the hook returned."""
        if self._hook is None:
            return
        for event_id, member_id, active, consent in await self._db(self.store.member_events):
            try:
                outcome = self._hook(member_id, active, consent)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("member hook failed for %s; will retry", member_id)
                return
            await self._db(self.store.member_event_done, event_id)

    async def top_up_numbers(self, report: SyncReport) -> None:
        today = await self._db(self.shop.today)  # the first call reads the zone file
        years = [today.year] + ([today.year + 1] if today.month == 12 else [])
        for year in years:
            for kind in ("PO", "CR"):
                k: Kind = "PO" if kind == "PO" else "CR"
                while await self._db(self.shop.spare_numbers, k, year) < self.cfg.numbers_low_water:
                    key = await self._db(self.store.lease_key, k, year)
                    body = {"kind": k, "year": year, "request_key": key,
                            "incarnation": await self._db(self.store.incarnation_id)}  # fmt: skip
                    result = await self._http("POST", "sync/lease", body)
                    report.requests += 1
                    await self._db(self.store.accept, k, year, wire.lease_block(result))
                    report.leased_blocks += 1

    async def sync_once(self) -> SyncReport:
        """Push everything, pull everything, top up numbers; raises ``SyncError``."""
        await self._db(self.store.migrate)
        report = SyncReport()
        await self.deliver_member_events()
        try:
            if not self._greeted:
                await self.hello(report)
            await self.push_all(report)
            await self.pull_all(report)
            # After the pull: a wiped disk needs the members and products first.
            await self.recover_all(report)
            await self.top_up_numbers(report)
        except SyncError as exc:
            await self._db(self.store.record_error, str(exc))
            self._ok.clear()
            self._failing.set()
            raise
        await self._db(self.store.retry_held_now)
        await self._db(self.store.record_success)
        self._failing.clear()
        self._ok.set()
        return report

    # ---- the supervised job --------------------------------------------------------
    async def run(self) -> None:
        """Cycle forever: ``interval_s`` apart while healthy, jittered backoff while not."""
        attempt = 0
        try:
            while not self._stopped:
                try:
                    await self.sync_once()
                    attempt = 0
                    delay = self.cfg.interval_s
                except CloudRefused as exc:
                    log.error("cloud sync refused: %s", exc)
                    delay = self.cfg.backoff_max_s
                except SyncError as exc:
                    attempt += 1
                    delay = backoff_delay(
                        attempt,
                        self.cfg.backoff_min_s,
                        self.cfg.backoff_max_s,
                        floor_s=self.cfg.backoff_min_s,
                    )
                    log.warning("cloud sync failed (retry in %.1fs): %s", delay, exc)
                await asyncio.sleep(delay)
        finally:
            await self.stop()

    async def connected(self) -> None:
        """Return once a cycle has succeeded (immediately if the last one did)."""
        await self._ok.wait()

    async def disconnected(self) -> None:
        """Return once a cycle has failed (immediately if the last one did)."""
        await self._failing.wait()

    async def stop(self) -> None:
        """Idempotent: close the HTTP session and the DB thread."""
        self._stopped = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown, True)


def _wire(c: Change) -> dict[str, Any]:
    return {"key": c.key, "entity": c.entity, "entity_id": c.entity_id, "op": c.op,
            "payload": c.payload, "created_at": c.created_at}  # fmt: skip


async def run_sync_job(
    shop: Shop, cfg: CloudSyncConfig, *, on_member_change: MemberHook | None = None
) -> None:
    """The daemon's supervised task: runs until cancelled, then cleans up."""
    await SyncClient(shop, cfg, on_member_change=on_member_change).run()


async def sync_once(
    shop: Shop, cfg: CloudSyncConfig, *, on_member_change: MemberHook | None = None
) -> SyncReport:
    """One full cycle (``coresync-edge sync --once``); raises ``SyncError`` on failure."""
    client = SyncClient(shop, cfg, on_member_change=on_member_change)
    try:
        return await client.sync_once()
    finally:
        await client.stop()
