"""Route table plumbing: one ``Route`` list drives both aiohttp and the OpenAPI document."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, Field

from cloud_api import guard
from cloud_api.auth import Auth, Principal, Unauthenticated
from cloud_api.batching import Batcher
from edge import route_table
from edge.shop import Forbidden, Shop, ValidationFailed
from edge.shop.inputs import Input, parse, parse_json
from edge.shop.statuses import OrderStatus, RequestStatus

AuthLevel = Literal["public", "any", "member", "staff", "manager", "admin", "node"]
T = TypeVar("T")

SHOP_KEY = web.AppKey("shop", Shop)
AUTH_KEY = web.AppKey("auth", Auth)
EXECUTOR_KEY = web.AppKey("executor", Executor)
# Group commit (cloud_api.batching): the bearer tokens of concurrent requests are
# checked in one statement (orders: cloud_api.group_commit).
TOKENS_KEY = web.AppKey("tokens", Batcher[str, Principal])


# ---- API-only inputs (the shop's own inputs live in edge.shop.inputs) --------
class LoginInput(Input):
    email: str = Field(min_length=3, max_length=254, description="Staff email.")
    password: str = Field(min_length=1, max_length=1000, description="Staff password.")


class ApproveInput(Input):
    staff_notes: str | None = Field(None, max_length=2000, description="Staff notes.")


class EmptyInput(Input):
    """No fields; an empty body or ``{}``."""


class ListQuery(Input):
    member_id: str | None = Field(None, max_length=64, description="Staff: one member only.")
    page: int = Field(1, ge=1, le=100_000, description="1-based page.")
    page_size: int = Field(20, ge=1, le=100, description="Items per page.")


class OrderListQuery(ListQuery):
    status: OrderStatus | None = Field(None, description="Only this status.")


class RequestListQuery(ListQuery):
    status: RequestStatus | None = Field(None, description="Only this status.")


@dataclass
class Ctx:
    """What a handler gets: the shop, the caller, parsed input and a thread-pool runner."""

    request: web.Request
    shop: Shop
    auth: Auth
    principal: Principal | None
    body: Any
    query: Any
    executor: Executor

    def param(self, name: str) -> str:
        return self.request.match_info[name]

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Domain calls are blocking DB work: never on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    @property
    def me(self) -> Principal:
        assert self.principal is not None
        return self.principal

    @property
    def member_scope(self) -> str | None:
        """A member sees only their own records; staff see everyone's."""
        return self.me.subject if self.me.kind == "member" else None

    @property
    def site_scope(self) -> str | None:
        """Staff bound to a site see and change only that site's records."""
        return None if self.principal is None else self.principal.site_scope

    def chain_only(self, what: str) -> None:
        """Refuse site-bound staff what belongs to the whole chain."""
        if self.site_scope is not None:
            raise Forbidden(f"{what} is the chain's: staff of site {self.site_scope!r} may not")


Handler = Callable[[Ctx], Awaitable[Any]]


class Route(route_table.Route[Handler, AuthLevel]):
    """A cloud route: ``path`` is below ``/api/v1/`` (the shared table, edge.route_table)."""

    prefix = "/api/v1/"


def dumps(value: Any) -> str:
    return json.dumps(value, default=lambda o: str(o) if isinstance(o, Decimal) else repr(o))


def bearer_token(request: web.Request) -> str:
    """The request's bearer token (not yet checked)."""
    header = guard.header(request.headers.get("Authorization", ""), "Authorization")
    scheme, _, credential = header.partition(" ")
    if scheme != "Bearer" or not credential:
        raise Unauthenticated("bearer token required")
    return credential


async def authenticate(request: web.Request, level: AuthLevel, ctx_auth: Auth, ex: Executor) -> (
    Principal | None
):  # fmt: skip
    if level == "public":
        return None
    loop = asyncio.get_running_loop()
    if level == "node":
        header = guard.header(request.headers.get("Authorization", ""), "Authorization")
        scheme, _, credential = header.partition(" ")
        node_id, _, secret = credential.partition(":")
        if scheme != "Node" or not node_id or not secret:
            raise Unauthenticated("node credentials required (Authorization: Node id:secret)")
        return await loop.run_in_executor(ex, ctx_auth.authenticate_node, node_id, secret)
    credential = bearer_token(request)
    tokens = request.app.get(TOKENS_KEY)
    if tokens is not None:
        who = await tokens.submit(credential)
    else:
        who = await loop.run_in_executor(ex, ctx_auth.authenticate, credential)
    if level == "member" and who.kind != "member":
        raise Forbidden("members only")
    if level in ("staff", "manager", "admin") and not who.has_role(level):
        raise Forbidden(f"needs the {level} role")
    return who


async def read_body(request: web.Request, model: type[BaseModel] | None) -> Any:
    raw = await request.read()  # bounded by the app's client_max_size
    if model is None:
        return None
    return parse_json_object(raw, model)


def parse_json_object(raw: bytes, model: type[BaseModel], *, nul_ok: bool = False) -> Any:
    """A request body as ``model``: a JSON object (empty body = {}), strictly typed.

    Nesting is bounded before parsing; NUL characters are refused naming the
    field unless ``nul_ok`` (a sync push judges each change on its own).
    """
    guard.check_depth(raw)
    body = parse_json(model, raw if raw.strip() else b"{}")
    # A NUL can only come in as the escape \u0000 (or a raw NUL, which the parser
    # refuses): without either, the walk over every parsed string is skipped.
    if not nul_ok and (b"\\u0000" in raw or b"\x00" in raw):
        guard.refuse_nul(("", body.model_dump()))
    return body


def parse_query(request: web.Request, model: type[BaseModel] | None) -> Any:
    """Path ids and query strings: no NUL anywhere, then the route's query model."""
    guard.refuse_nul(*request.match_info.items())
    guard.refuse_nul(*request.query.items())
    if model is not None:
        return parse(model, dict(request.query))
    if request.query:
        raise ValidationFailed(next(iter(request.query)), "unknown query parameter")
    return None


def make_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app
        ex = app[EXECUTOR_KEY]
        principal = await authenticate(request, route.auth, app[AUTH_KEY], ex)
        query = parse_query(request, route.query)
        body = await read_body(request, route.body)
        ctx = Ctx(request, app[SHOP_KEY], app[AUTH_KEY], principal, body, query, ex)
        result = await route.handler(ctx)
        if isinstance(result, web.StreamResponse):
            return result  # a route of another content type answers for itself
        return web.json_response(result, status=route.status, dumps=dumps)

    handle.__name__ = route.handler.__name__
    return handle
