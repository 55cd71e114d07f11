"""Who is calling: staff sessions and bearer tokens, tablet tokens, roles, CSRF.

Staff log in with a password (argon2id, hashed in an executor because it is
deliberately slow) and get a session token, usable as an HttpOnly cookie for
the dashboard (state-changing requests then need the double-submit
``X-CSRF-Token`` header) or as ``Authorization: Bearer`` for scripts.
Tablets get a room token by pairing.  Only hashes of tokens are stored.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web

from edge.api import db
from edge.api.errors import ApiError
from edge.api.keys import AUTH, CORE, PRINCIPAL
from edge.api.login_guard import LoginGuard
from edge.api.settings import ApiSettings
from edge.core import Actor
from edge.passwords import Passwords
from edge.store import Store
from edge.throttle import Throttle

SESSION_COOKIE = "coresync_session"
CSRF_COOKIE = "coresync_csrf"
CSRF_HEADER = "X-CSRF-Token"
STAFF_PREFIX = "css_"
TABLET_PREFIX = "cst_"
# A browser WebSocket cannot send headers: a tablet trades its token (in a
# header) for a one-time ticket that rides the URL instead of the token.
WS_TICKET_PREFIX = "csw_"
WS_TICKET_TTL_S = 30.0
MAX_TOKEN_LENGTH = 256
WS_PATH = "/api/v1/ws"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Public endpoints ignore any session cookie: a stale cookie must not block a login.
PUBLIC_PATHS = frozenset({"/api/v1/auth/login", "/api/v1/tablets/pair"})


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # staff | tablet
    id: str  # username or tablet id
    role: str | None = None  # staff role
    room_id: str | None = None  # tablet room
    via_cookie: bool = False
    csrf_hash: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.kind, self.id)

    def public(self) -> dict[str, Any]:
        if self.kind == "staff":
            return {"kind": "staff", "username": self.id, "role": self.role}
        return {"kind": "tablet", "tablet_id": self.id, "room_id": self.room_id}


class Auth:
    """Passwords, tokens and the short cache of checked tokens."""

    def __init__(self, store: Store, settings: ApiSettings) -> None:
        self.store = store
        self.settings = settings
        self.hasher = Passwords(
            time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
        )
        # Failed logins per username and per client; pairing codes per client.
        self.login_throttle = Throttle(
            settings.login_free_attempts,
            settings.login_lockout_base_s,
            settings.login_lockout_max_s,
        )
        self.pairing_throttle = Throttle(
            settings.login_free_attempts * 2,
            settings.login_lockout_base_s,
            settings.login_lockout_max_s,
        )
        # Throttle charged before any hash runs, and the hashing semaphore.
        self.guard = LoginGuard(store, settings, self.login_throttle)
        # token hash -> (principal without request-specific flags, valid until)
        self._cache: dict[str, tuple[Principal, float]] = {}
        # ticket hash -> (principal, valid until, monotonic): single use
        self._ws_tickets: dict[str, tuple[Principal, float]] = {}
        self._digests: dict[str, str] = {}  # token -> digest (no verdict: see _cache)

    # -- passwords (off the event loop) --------------------------------------------
    async def hash_password(self, password: str) -> str:
        hashed: str = await self.guard.bounded(partial(self.hasher.hash, password))
        return hashed

    async def verify_password(self, password_hash: str | None, password: str) -> bool:
        """Unknown user (no hash): the same work, so timing does not reveal usernames."""
        ok: bool = await self.guard.bounded(partial(self.hasher.verify, password_hash, password))
        return ok

    # -- tokens --------------------------------------------------------------------
    async def new_session(self, username: str) -> tuple[str, str]:
        """(session token, CSRF token) for a freshly logged-in user."""
        token = STAFF_PREFIX + secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now, ttl = time.time(), self.settings.session_ttl_s
        await self.store.call(
            lambda c: db.insert_session(c, db.digest(token), username, db.digest(csrf), now, ttl)
        )
        return token, csrf

    async def end_session(self, token: str) -> None:
        self.forget(db.digest(token))
        await self.store.call(lambda c: db.delete_session(c, db.digest(token)))

    def issue_ws_ticket(self, who: Principal) -> str:
        """A ticket for one WebSocket handshake within :data:`WS_TICKET_TTL_S`."""
        now = time.monotonic()
        self._ws_tickets = {k: v for k, v in self._ws_tickets.items() if v[1] > now}
        ticket = WS_TICKET_PREFIX + secrets.token_urlsafe(24)
        self._ws_tickets[db.digest(ticket)] = (who, now + WS_TICKET_TTL_S)
        return ticket

    def redeem_ws_ticket(self, ticket: str) -> Principal | None:
        """The ticket's principal, once; None when unknown, used or expired."""
        if not well_formed(ticket):
            return None
        entry = self._ws_tickets.pop(db.digest(ticket), None)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def forget(self, token_hash: str | None = None) -> None:
        """Drop cached tokens (one, or all after user or tablet changes)."""
        if token_hash is None:
            self._ws_tickets.clear()  # a revoked tablet's ticket goes too
            self._cache.clear()
        else:
            self._cache.pop(token_hash, None)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token resolved lately, without I/O or a coroutine
        (the hot path of every signed-in request); None: ask :meth:`resolve`."""
        token_hash = self._digests.get(token)  # only well-formed tokens get here
        if token_hash is None:
            return None
        cached = self._cache.get(token_hash)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        return None

    async def resolve(self, token: str) -> Principal | None:
        if not well_formed(token):
            return None
        # The digest of a token seen lately is remembered: hashing every
        # request's token was a tenth of a cached GET's server time.
        token_hash = self._digests.get(token)
        if token_hash is None:
            if len(self._digests) > 10_000:
                self._digests.clear()
            token_hash = self._digests[token] = db.digest(token)
        now = time.time()
        cached = self._cache.get(token_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal: Principal | None = None
        expires = now + self.settings.principal_cache_s
        if token.startswith(STAFF_PREFIX):
            found = await self.store.call(lambda c: db.session_user(c, token_hash, now))
            if found is not None:
                user, csrf_hash, session_expiry = found
                principal = Principal("staff", user.username, role=user.role, csrf_hash=csrf_hash)
                expires = min(expires, session_expiry)
        elif token.startswith(TABLET_PREFIX):
            tablet = await self.store.call(lambda c: db.tablet_by_token(c, token_hash))
            if tablet is not None:
                principal = Principal("tablet", tablet[0], room_id=tablet[1])
        if principal is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token_hash] = (principal, expires)
        return principal


def well_formed(secret: str) -> bool:
    """Tokens we issue are short URL-safe ASCII.  Anything else (raw non-UTF-8 header
    bytes arrive as surrogates) is nobody's token, and must not reach hashing."""
    return secret.isascii() and secret.isprintable() and len(secret) <= MAX_TOKEN_LENGTH


def token_from_request(request: web.Request) -> tuple[str | None, bool]:
    """(token, came from the cookie).  Never from the URL: a browser WebSocket
    sends a one-time ``?ticket=`` instead (:meth:`Auth.issue_ws_ticket`)."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), False
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, True
    return None, False


def authenticate(request: web.Request) -> Awaitable[None] | None:
    """Who is calling, into ``request[PRINCIPAL]`` (None: nobody); a cookie
    session's unsafe request without the matching CSRF header is refused.
    A token resolved lately is answered here, with no coroutine (the hot path
    of every signed-in request); otherwise the awaitable that looks it up."""
    auth: Auth = request.app[AUTH]
    token, via_cookie = token_from_request(request)
    principal: Principal | None = None
    if token is None and request.path == WS_PATH and "ticket" in request.query:
        principal = auth.redeem_ws_ticket(request.query["ticket"])
    elif token and request.path not in PUBLIC_PATHS:
        principal = auth.cached(token)
        if principal is None:
            return _resolve_then_admit(request, auth, token, via_cookie)
    _admit(request, principal, via_cookie)
    return None


async def _resolve_then_admit(
    request: web.Request, auth: Auth, token: str, via_cookie: bool
) -> None:
    _admit(request, await auth.resolve(token), via_cookie)


def _admit(request: web.Request, principal: Principal | None, via_cookie: bool) -> None:
    if principal is not None and via_cookie:
        principal = Principal(
            principal.kind,
            principal.id,
            principal.role,
            principal.room_id,
            True,
            principal.csrf_hash,
        )
        if request.method not in SAFE_METHODS:
            check_csrf(request, principal)
    request[PRINCIPAL] = principal


def check_csrf(request: web.Request, principal: Principal) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    ok = (
        bool(sent)
        and well_formed(sent)
        and well_formed(cookie)
        and hmac.compare_digest(sent, cookie)
        and principal.csrf_hash is not None
        and hmac.compare_digest(db.digest(sent), principal.csrf_hash)
    )
    if not ok:
        raise ApiError(
            "csrf_failed",
            f"cookie sessions must send the {CSRF_HEADER} header matching the {CSRF_COOKIE} cookie",
            field=CSRF_HEADER,
        )


# -- guards used by handlers ---------------------------------------------------------------
def principal(request: web.Request) -> Principal:
    found: Principal | None = request.get(PRINCIPAL)
    if found is None:
        raise ApiError("unauthenticated", "log in or send a valid bearer token")
    return found


def require_staff(request: web.Request, min_role: str = "staff") -> Principal:
    who = principal(request)
    if who.kind != "staff":
        raise ApiError("forbidden", "staff only")
    assert who.role is not None
    if db.role_rank(who.role) < db.role_rank(min_role):
        raise ApiError("forbidden", f"needs the {min_role} role (you are {who.role})")
    return who


def require_room(request: web.Request, room_id: str) -> Principal:
    """Staff, or the tablet paired with ``room_id``."""
    who = principal(request)
    if who.kind == "tablet" and who.room_id != room_id:
        raise ApiError("forbidden", "this tablet is paired with another room", field="room_id")
    return who


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


async def audit(
    request: web.Request,
    action: str,
    target: str | None,
    result: str,
    detail: dict[str, Any] | None = None,
    *,
    actor: str | None = None,
) -> None:
    """Record one state-changing action (who, what, when, target, result)."""
    who: Principal | None = request.get(PRINCIPAL)
    name = actor or (str(who.actor) if who else "anonymous")
    ip = client_ip(request)
    store: Store = request.app[CORE].store
    await store.call(lambda c: db.insert_audit(c, name, action, target, result, detail, ip))
