"""Sync endpoints of the cloud API: push, pull, number leases, attention, consent.

Node routes authenticate with ``Authorization: Node <id>:<secret>``: one
SHA-256 check per request (a node secret is random, not a password), so a
revoked node is refused at its next request.  A push batch may exceed the
API's general 64 KiB body limit, up to ``MAX_SYNC_BODY``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from cloud_api.spec import (
    AUTH_KEY,
    EXECUTOR_KEY,
    SHOP_KEY,
    Ctx,
    EmptyInput,
    Route,
    authenticate,
    parse_json_object,
    parse_query,
)
from edge.route_table import mount
from edge.shop import Forbidden, ValidationFailed
from edge.shop.inputs import Input
from sync import cloud_nodes
from sync.apply import INCARNATION_PATTERN, KEY_PATTERN, Change, parse_key
from sync.attention import list_attention, resolve_attention
from sync.cloud import CloudSync
from sync.compact import compact

log = logging.getLogger(__name__)
MAX_SYNC_BODY = 8 * 1024 * 1024
SYNC_KEY = web.AppKey("cloud_sync", CloudSync)
_INCARNATION = f"^{INCARNATION_PATTERN}$"


class ChangeIn(Input):
    key: str = Field(
        pattern=KEY_PATTERN,
        description="Idempotency key: <node id>:<incarnation>:<outbox seq> (legacy <node>:<seq>).",
    )
    entity: str = Field(min_length=1, max_length=40, description="order, stock_movement, ...")
    entity_id: str = Field(min_length=1, max_length=100, description="Id of the record.")
    op: str = Field(min_length=1, max_length=40, description="What happened (create, ...).")
    payload: dict[str, Any] = Field(description="The record after the change.")
    created_at: str = Field(min_length=1, max_length=40, description="Edge time (ISO 8601).")


class PushInput(Input):
    changes: list[ChangeIn] = Field(max_length=1000, description="In outbox order.")


class PullQuery(Input):
    after: int = Field(0, ge=0, le=2**62, description="Feed cursor: last seq applied.")
    limit: int = Field(200, ge=1, le=1000, description="Changes per page.")


class LeaseInput(Input):
    kind: Literal["PO", "CR"] = Field(description="Order (PO) or request (CR) numbers.")
    year: int = Field(ge=2000, le=2200, description="Year of the numbers.")
    request_key: str = Field(
        pattern=r"^[A-Za-z0-9_-]{8,64}$", description="Same key, same block (retry-safe)."
    )
    incarnation: str | None = Field(
        None, pattern=_INCARNATION, description="The asking node's incarnation (sync/hello)."
    )


class HelloInput(Input):
    incarnation: str = Field(pattern=_INCARNATION, description="This start's incarnation id.")
    previous: str | None = Field(
        None, pattern=r"^([0-9a-f]{16})?$", description="The incarnation it follows, if any."
    )
    first_seq: int = Field(ge=1, le=2**62, description="First outbox seq keyed by it.")
    reason: Literal["new", "legacy", "restored", "rolled_back"] = Field(
        description="Why it started: a new disk, an upgrade, a restore, a detected rollback."
    )
    outbox_head: int = Field(ge=0, le=2**62, description="Highest outbox seq on the disk.")
    held_blocks: list[list[str | int]] = Field(
        default_factory=list, max_length=10_000, description="[kind, year, block] held."
    )
    pending_lease_keys: list[str] = Field(
        default_factory=list, max_length=100, description="Lease request keys in flight."
    )


class KnownRange(Input):
    incarnation: str = Field(pattern=r"^([0-9a-f]{16})?$", description="Incarnation ('' legacy).")
    upto: int = Field(ge=0, le=2**62, description="Last outbox seq of it this disk holds.")


class RecoverInput(Input):
    known: list[KnownRange] = Field(
        max_length=cloud_nodes.MAX_KNOWN, description="What the disk holds, per incarnation."
    )
    after: int = Field(0, ge=0, le=2**62, description="Feed cursor of the recovery.")
    limit: int = Field(200, ge=1, le=1000, description="Changes per page.")


class AttentionQuery(Input):
    include_resolved: bool = Field(False, description="Also list resolved items.")


class ConsentInput(Input):
    biometric: bool = Field(description="May the spa keep a face template for this member?")


# ---- handlers ---------------------------------------------------------------------
def _sync(c: Ctx) -> CloudSync:
    return c.request.app[SYNC_KEY]


async def sync_push(c: Ctx) -> Any:
    body: PushInput = c.body
    changes = []
    for i, ch in enumerate(body.changes):
        node, incarnation, seq = parse_key(ch.key)
        if node != c.me.subject:
            raise Forbidden(f"changes[{i}].key: a node may only push its own changes")
        changes.append(Change(node, seq, ch.entity, ch.entity_id, ch.op, _plain(ch.payload),
                              ch.created_at, incarnation))  # fmt: skip
    acks = await c.run(_sync(c).push, c.me.subject, changes)
    return {"acks": [a.to_json() for a in acks]}


def _plain(value: Any) -> Any:
    """Request JSON parses numbers as Decimal; payloads are stored as sent."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def sync_pull(c: Ctx) -> Any:
    q: PullQuery = c.query
    return await c.run(_sync(c).pull, c.me.subject, q.after, q.limit)


async def sync_lease(c: Ctx) -> Any:
    b: LeaseInput = c.body
    block = await c.run(
        _sync(c).lease, c.me.subject, b.request_key, b.kind, b.year, b.incarnation or ""
    )
    return {"kind": b.kind, "year": b.year, "block": block}


async def sync_hello(c: Ctx) -> Any:
    b: HelloInput = c.body
    h = cloud_nodes.Hello(b.incarnation, b.previous or None, b.first_seq, b.reason,
                          b.outbox_head)  # fmt: skip
    return await c.run(cloud_nodes.hello, c.shop.db, c.me.subject, h)


async def sync_recover(c: Ctx) -> Any:
    b: RecoverInput = c.body
    known = [(k.incarnation, k.upto) for k in b.known]
    return await c.run(cloud_nodes.recover, c.shop.db, c.me.subject, known, b.after, b.limit)


async def sync_attention(c: Ctx) -> Any:
    """The chain's staff see every item; a site's staff their site's only."""
    q: AttentionQuery = c.query
    items = await c.run(list_attention, c.shop.db, include_resolved=q.include_resolved,
                        site=c.site_scope)  # fmt: skip
    return {"items": [i.to_json() for i in items]}


async def sync_resolve(c: Ctx) -> Any:
    """A site's staff resolve their site's items; another site's (or the chain's) is 404."""
    raw = c.param("id")
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationFailed("id", "must be a positive integer")
    item = await c.run(resolve_attention, c.shop.db, int(raw), c.me.actor, site=c.site_scope)
    return item.to_json()


async def sync_nodes(c: Ctx) -> Any:
    c.chain_only("the node list")
    return {"nodes": await c.run(_sync(c).node_status)}


async def member_consent(c: Ctx) -> Any:
    member_id = c.param("id")
    if c.me.kind == "member" and c.me.subject != member_id:
        raise Forbidden("members may only change their own consent")
    if c.me.kind == "node":
        raise Forbidden("nodes may not change consent")
    body: ConsentInput = c.body
    if c.site_scope is not None:
        await c.run(_sync(c).member_of_site, member_id, c.site_scope)
    return await c.run(_sync(c).set_consent, member_id, body.biometric)


SYNC_ROUTES: tuple[Route, ...] = (
    Route("POST", "sync/push", sync_push, "node", "Push a batch of edge changes (idempotent)",
          PushInput),
    Route("GET", "sync/pull", sync_pull, "node", "Changes after a feed cursor", query=PullQuery),
    Route("POST", "sync/lease", sync_lease, "node", "Lease a block of order/request numbers",
          LeaseInput),
    Route("POST", "sync/hello", sync_hello, "node",
          "Register this start's incarnation; says whether the disk was rolled back",
          HelloInput),
    Route("POST", "sync/recover", sync_recover, "node",
          "This node's own acknowledged changes that its disk does not hold", RecoverInput),
    Route("GET", "sync/attention", sync_attention, "staff",
          "Sync items needing staff (a site's staff: their site's)", query=AttentionQuery),
    Route("POST", "sync/attention/{id}/resolve", sync_resolve, "staff",
          "Mark an attention item handled (a site's staff: their site's)", EmptyInput),
    Route("GET", "sync/nodes", sync_nodes, "staff", "Last push/pull of each edge node"),
    Route("POST", "members/{id}/consent", member_consent, "any",
          "Set a member's biometric consent (member: own; staff: any)", ConsentInput),
)  # fmt: skip


# ---- plumbing -----------------------------------------------------------------------
async def _read_body(request: web.Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_SYNC_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_SYNC_BODY, actual_size=size)
        chunks.append(chunk)
    # A push carries edge records as they are; each change is judged on its own.
    return parse_json_object(b"".join(chunks), model, nul_ok=model is PushInput)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def _make_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app
        ex = app[EXECUTOR_KEY]
        principal = await authenticate(request, route.auth, app[AUTH_KEY], ex)
        query = parse_query(request, route.query)
        body = await _read_body(request, route.body)
        ctx = Ctx(request, app[SHOP_KEY], app[AUTH_KEY], principal, body, query, ex)
        return web.json_response(await route.handler(ctx), status=route.status, dumps=_dumps)

    handle.__name__ = route.handler.__name__
    return handle


def register_sync(
    app: web.Application, compact_every_s: float = 0.0, retention_days: float = 30.0
) -> None:
    """Add the sync routes and the feed service to the cloud app; with
    ``compact_every_s`` > 0, a task compacting the feed that often (docs/sync.md)."""
    sync = CloudSync(app[SHOP_KEY])
    app[SYNC_KEY] = sync

    async def migrate(_: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, sync.migrate)

    app.on_startup.append(migrate)
    mount(app, SYNC_ROUTES, _make_handler)
    if compact_every_s > 0:
        app.cleanup_ctx.append(_compactor(sync, compact_every_s, retention_days))


def _compactor(
    sync: CloudSync, every_s: float, retention_days: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    passes: set[asyncio.Future[Any]] = set()

    async def loop() -> None:
        run = functools.partial(compact, sync, retention_days=retention_days)
        while True:
            await asyncio.sleep(every_s)
            job = asyncio.get_running_loop().run_in_executor(None, run)
            passes.add(job)
            job.add_done_callback(passes.discard)
            try:
                # Shielded: cancelling the loop at shutdown must not orphan a
                # pass that is still writing in its thread (see ctx).
                await asyncio.shield(job)
            except Exception:  # the next pass tries again; serving goes on
                log.exception("feed compaction failed")

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(), name="feed-compaction")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # A pass already in its thread ends before the database can be closed
        # under it (closing a SQLite connection another thread is using crashes
        # the process).
        await asyncio.gather(*passes, return_exceptions=True)

    return ctx
