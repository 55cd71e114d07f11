"""Login, logout, who-am-I, staff accounts (admin) and the audit log (manager+)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import time
from pathlib import Path

from aiohttp import web

from edge.api import db
from edge.api.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Auth,
    audit,
    client_ip,
    principal,
    token_from_request,
)
from edge.api.errors import ApiError
from edge.api.keys import AUTH, BODY, CORE, QUERY, SETTINGS
from edge.api.login_guard import LoginRefused
from edge.api.models import AuditQuery, LoginBody, NewUserBody, UserPatchBody
from edge.api.settings import ApiSettings
from edge.store import Store

log = logging.getLogger(__name__)

INITIAL_PASSWORD_FILE = "initial-admin-password"


def _store(request: web.Request) -> Store:
    store: Store = request.app[CORE].store
    return store


async def login(request: web.Request) -> web.Response:
    body: LoginBody = request[BODY]
    auth: Auth = request.app[AUTH]
    keys = [f"user:{body.username}", f"ip:{client_ip(request)}"]
    try:
        # Charged before the hash runs and released after the outcome is stored:
        # concurrent attempts count as much as sequential ones.
        async with auth.guard.attempt(keys):
            return await _check_login(request, body, keys)
    except LoginRefused as exc:
        log.warning("login refused for %r from %s: %s", body.username, client_ip(request), exc)
        await audit(request, "auth.login", body.username, "locked_out", actor=body.username)
        raise


async def _check_login(request: web.Request, body: LoginBody, keys: list[str]) -> web.Response:
    auth: Auth = request.app[AUTH]
    settings: ApiSettings = request.app[SETTINGS]
    store = _store(request)
    now = time.time()
    user = await store.call(lambda c: db.get_user(c, body.username))
    ok = await auth.verify_password(user.password_hash if user else None, body.password)
    if not ok or user is None or user.disabled:

        def fail(conn: object) -> tuple[int, float]:
            results = [
                db.record_failure(conn, key, now, auth.login_throttle)  # type: ignore[arg-type]
                for key in keys
            ]
            return max(r[0] for r in results), max(r[1] for r in results)

        failures, delay = await store.call(fail)
        # Never the password: only who, from where, and how many in a row.
        log.warning(
            "failed login for %r from %s (%d in a row)", body.username, client_ip(request), failures
        )
        if failures > settings.login_free_attempts:
            log.warning(
                "repeated failed logins for %r from %s (%d); locked for %.0f s",
                body.username,
                client_ip(request),
                failures,
                delay,
            )
        detail = {"failures": failures, "lockout_s": delay}
        await audit(request, "auth.login", body.username, "failed", detail, actor=body.username)
        raise ApiError("unauthenticated", "wrong username or password")
    await store.call(lambda c: db.clear_failures(c, keys))
    token, csrf = await auth.new_session(user.username)
    await audit(request, "auth.login", user.username, "ok", actor=f"staff:{user.username}")
    response = web.json_response(
        {"token": token, "csrf_token": csrf, "username": user.username, "role": user.role}
    )
    max_age = int(settings.session_ttl_s)
    secure = settings.secure_cookies
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=max_age,
        path="/",
    )
    # Readable by the page's script, which echoes it in the X-CSRF-Token header.
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        httponly=False,
        samesite="Strict",
        secure=secure,
        max_age=max_age,
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    who = principal(request)
    token, _ = token_from_request(request)
    auth: Auth = request.app[AUTH]
    if token:
        await auth.end_session(token)
    await audit(request, "auth.logout", who.id, "ok")
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    return web.json_response(principal(request).public())


# -- users (admin) ---------------------------------------------------------------------------
async def list_users(request: web.Request) -> web.Response:
    users = await _store(request).call(db.list_users)
    return web.json_response({"users": users})


async def create_user(request: web.Request) -> web.Response:
    body: NewUserBody = request[BODY]
    auth: Auth = request.app[AUTH]
    hashed = await auth.hash_password(body.password)
    created = await _store(request).call(
        lambda c: db.insert_user(c, body.username, hashed, body.role)
    )
    await audit(
        request, "user.create", body.username, "ok" if created else "conflict", {"role": body.role}
    )
    if not created:
        raise ApiError("conflict", f"user {body.username!r} exists", field="username")
    return web.json_response(
        {"username": body.username, "role": body.role, "disabled": False}, status=201
    )


async def update_user(request: web.Request) -> web.Response:
    who = principal(request)
    username = request.match_info["username"]
    body: UserPatchBody = request[BODY]
    store = _store(request)
    if username == who.id and (body.disabled or (body.role and body.role != "admin")):
        raise ApiError("conflict", "admins cannot demote or disable themselves", field="username")
    auth: Auth = request.app[AUTH]
    hashed = await auth.hash_password(body.password) if body.password else None
    found = await store.call(
        lambda c: db.update_user(
            c, username, password_hash=hashed, role=body.role, disabled=body.disabled
        )
    )
    auth.forget()  # roles and sessions may have changed
    changed = sorted(k for k, v in body.model_dump().items() if v is not None)
    await audit(
        request, "user.update", username, "ok" if found else "not_found", {"changed": changed}
    )
    if not found:
        raise ApiError("not_found", f"no user {username!r}", field="username")
    user = await store.call(lambda c: db.get_user(c, username))
    assert user is not None
    return web.json_response(user.public())


async def delete_user(request: web.Request) -> web.Response:
    who = principal(request)
    username = request.match_info["username"]
    if username == who.id:
        raise ApiError("conflict", "admins cannot delete themselves", field="username")
    deleted = await _store(request).call(lambda c: db.delete_user(c, username))
    request.app[AUTH].forget()
    await audit(request, "user.delete", username, "ok" if deleted else "not_found")
    if not deleted:
        raise ApiError("not_found", f"no user {username!r}", field="username")
    return web.json_response({"ok": True})


async def audit_log(request: web.Request) -> web.Response:
    q: AuditQuery = request[QUERY]
    rows = await _store(request).call(lambda c: db.list_audit(c, q.limit, q.action))
    return web.json_response({"entries": rows})


# -- first start ---------------------------------------------------------------------------------
async def ensure_admin(store: Store, auth: Auth, data_dir: Path) -> str | None:
    """Create ``admin`` with a random password when there is no user; returns it once."""
    if await store.call(db.count_users):
        return None
    password = secrets.token_urlsafe(15)
    hashed = await auth.hash_password(password)
    if not await store.call(lambda c: db.insert_user(c, "admin", hashed, "admin")):
        return None
    path = data_dir / INITIAL_PASSWORD_FILE
    await asyncio.get_running_loop().run_in_executor(None, _hand_over_password, path, password)
    log.warning("created initial admin account; password written to %s", path)
    return password


def _hand_over_password(path: Path, password: str) -> None:
    _write_secret(path, password)
    if sys.stdout.isatty():
        # Printed once, to a person at a terminal.  Under systemd stdout is the
        # journal, which must never hold a secret: there only the file is named.
        print(f"coresync-edge: created user 'admin' with password {password} (also in {path})")
    else:
        print(f"coresync-edge: created user 'admin'; its password is in {path} (mode 0600)")


def _write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to a fresh file only the owner can read (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
