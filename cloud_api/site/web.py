"""Plumbing of the members' website: sessions, CSRF, rendering, error pages.

A member logs in with a password (argon2id through the edge API's password
wrapper, ``edge.api.auth.Auth``, whose ``LoginGuard`` also throttles logins)
and gets a random session token in an ``HttpOnly; SameSite=Lax`` cookie
(``Secure`` when the request came over TLS).  Every form carries a CSRF
token: for a session it is an HMAC of the session token (nothing to store,
nothing an attacker can compute); before login it is a double-submit cookie.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar, cast
from urllib.parse import quote

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiDictProxy

from cloud_api import guard
from cloud_api.site import store
from cloud_api.spec import EXECUTOR_KEY, SHOP_KEY
from edge.api.auth import Auth as Passwords
from edge.api.settings import ApiSettings
from edge.passwords import Passwords as Hasher
from edge.shop import (
    Member,
    NotFound,
    Shop,
    ShopError,
    StorageFailure,
    ValidationFailed,
)
from edge.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

SESSION_COOKIE = "coresync_member"
LOGIN_CSRF_COOKIE = "coresync_member_csrf"
CSRF_FIELD = "csrf_token"
PASSWORDS_KEY = web.AppKey("site_passwords", Passwords)
SETTINGS_KEY = web.AppKey("site_settings", ApiSettings)
# Content-Security-Policy of every page: no script at all, our own styles,
# product images from anywhere over HTTPS, forms only to ourselves.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


async def run(request: web.Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Domain and database calls block: run them on the app's thread pool."""
    loop = asyncio.get_running_loop()
    call = functools.partial(fn, *args, **kwargs)
    return await loop.run_in_executor(request.app[EXECUTOR_KEY], call)


def shop_of(request: web.Request) -> Shop:
    return request.app[SHOP_KEY]


class ThrottleStore:
    """The ``Store.call`` the login throttle needs, over the cloud's database
    (SQLite or PostgreSQL) in one transaction per call."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    async def call(self, fn: Callable[[Any], T]) -> T:
        db = self.app[SHOP_KEY].db

        def in_tx() -> T:
            with db.write() as tx:
                return fn(store.TxConnection(tx))

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.app[EXECUTOR_KEY], in_tx)


def make_passwords(app: web.Application, settings: ApiSettings) -> Passwords:
    # Only the password and throttle parts of the edge API's Auth are used;
    # its ``store`` is touched by the throttle alone, through ``call``.
    return Passwords(cast(Store, ThrottleStore(app)), settings)


def password_hasher(settings: ApiSettings | None = None) -> Hasher:
    """The same configured argon2id hasher, for synchronous callers (the demo seed)."""
    return Passwords(cast(Store, None), settings or ApiSettings()).hasher


# ---- who is asking -------------------------------------------------------------------
@dataclass
class Me:
    session: store.Session
    member: Member
    form: MultiDictProxy[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def csrf(self) -> str:
        return csrf_for(self.session.token)

    @property
    def cart_count(self) -> int:
        return sum(self.session.cart.values())


def csrf_for(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"csrf", hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


async def current(request: web.Request) -> Me | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > 100 or not token.isascii():
        return None
    shop = shop_of(request)

    def look_up() -> Me | None:
        session = store.find_session(shop.db, token)
        if session is None:
            return None
        try:
            return Me(session, shop.get_member(session.member_id))
        except NotFound:
            return None

    return await run(request, look_up)


def safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


Page = Callable[[web.Request, Me], Awaitable[web.StreamResponse]]


def member_page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Members only (others go to /login); a POST must carry the session's CSRF token."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        me = await current(request)
        if me is None:
            raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe="/"))
        # PostgreSQL text cannot hold NUL: refused by name, as the API does.
        guard.refuse_nul(*request.match_info.items(), *request.query.items())
        if request.method == "POST":
            me.form = await request.post()
            guard.refuse_nul(*((k, str(v)) for k, v in me.form.items()))
            if not same(str(me.form.get(CSRF_FIELD, "")), me.csrf):
                raise CsrfRefused()
        return await handler(request, me)

    return wrapped


class CsrfRefused(web.HTTPForbidden):
    def __init__(self) -> None:
        super().__init__(reason="The form was stale or not sent from this site; reload it.")


# ---- rendering -------------------------------------------------------------------------
def render(
    request: web.Request, template: str, me: Me | None, status: int = 200, **context: Any
) -> web.Response:
    context.setdefault("errors", {})
    context.setdefault("csrf", me.csrf if me is not None else "")
    context.update(me=me, request=request, csrf_field=CSRF_FIELD)
    page = aiohttp_jinja2.render_template(template, request, context, status=status)
    page.headers["Content-Security-Policy"] = CSP
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "same-origin"
    page.headers["Cache-Control"] = "no-store"
    return page


def login_csrf(request: web.Request, response: web.StreamResponse) -> str:
    """The pre-login double-submit token (reused while its cookie lives)."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (token.isascii() and 20 <= len(token) <= 64):
        token = secrets.token_urlsafe(24)
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return token


def set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    settings = request.app[SETTINGS_KEY]
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="Lax",
        secure=request.secure or settings.secure_cookies,
    )  # fmt: skip


def session_ttl(request: web.Request) -> timedelta:
    return timedelta(seconds=request.app[SETTINGS_KEY].session_ttl_s)


def field_errors(exc: ShopError, fields: dict[str, str] | None = None) -> dict[str, str]:
    """The shop's field name (``items[1].quantity``) as the form's field name."""
    name = exc.field or "form"
    name = (fields or {}).get(name, name)
    return {name: getattr(exc, "message", None) or str(exc)}


def status_of(exc: ShopError) -> int:
    """The shop error's own status (one home: ``edge.shop.errors``)."""
    return exc.http_status


_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
           409: "Not possible now", 413: "Too large", 422: "Check the form",
           429: "Too many attempts", 503: "Temporarily unavailable"}  # fmt: skip


@web.middleware
async def error_pages(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Website failures are pages, never stack traces (the API keeps its JSON errors)."""
    if request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status, message = exc.status, exc.reason
    except ShopError as exc:
        if isinstance(exc, StorageFailure):
            log.error("storage failure on %s %s: %s", request.method, request.path, exc)
        status = status_of(exc)
        message = (
            str(exc)
            if isinstance(exc, ValidationFailed)
            # "field: message"
            else (getattr(exc, "message", None) or str(exc))
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        status, message = 500, "Something went wrong on our side; it has been logged."
    if status == 404 and not message.startswith("unknown"):
        message = "There is no such page here."
    title = _TITLES.get(status, "Something went wrong")
    return render(request, "error.html", None, status, title=title, message=message)
