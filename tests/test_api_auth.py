"""Staff auth over the real API: roles, sessions, CSRF, throttling, audit, first start."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from edge.api.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from edge.api.routes_auth import INITIAL_PASSWORD_FILE
from tests.conftest import Broker
from tests.test_api_support import ApiSite, api, start_api_site, stop_api_site

__all__ = ["api"]


async def test_initial_admin_password_file_is_private_and_written_once(api: ApiSite) -> None:
    path = api.data_dir / INITIAL_PASSWORD_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    # A second app on the same database finds a user and writes nothing.
    from edge.api import create_app
    from tests.test_api_support import fast_settings

    app2 = create_app(api.core, data_dir=api.data_dir, settings=fast_settings())
    from aiohttp.test_utils import TestClient, TestServer

    client2: TestClient = TestClient(TestServer(app2))  # type: ignore[type-arg]
    await client2.start_server()
    await client2.close()
    assert path.read_text() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/rooms"),
        ("GET", "/api/v1/rooms/room-a"),
        ("GET", "/api/v1/rooms/room-a/scenes"),
        ("POST", "/api/v1/rooms/room-a/scenes/relax/activate"),
        ("POST", "/api/v1/rooms/room-a/devices/ceiling/command"),
        ("GET", "/api/v1/door-events"),
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/audit"),
        ("GET", "/api/v1/commands"),
        ("GET", "/api/v1/tablets"),
        ("DELETE", "/api/v1/tablets/tab-x"),
        ("POST", "/api/v1/rooms/room-a/pairing-codes"),
        ("POST", "/api/v1/auth/logout"),
    ],
)
async def test_unauthenticated_is_401_with_json(api: ApiSite, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer css_not-a-token"}):
        resp = await api.client.request(method, path, json={"on": True}, headers=headers)
        assert resp.status == 401, (path, await resp.text())
        body = await resp.json()
        assert body["error"]["code"] == "unauthenticated"
    assert await api.core.store.commands() == []


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/commands", {"staff1", "manager1", "admin"}),
        ("/api/v1/door-events", {"staff1", "manager1", "admin"}),
        ("/api/v1/tablets", {"staff1", "manager1", "admin"}),
        ("/api/v1/audit", {"manager1", "admin"}),
        ("/api/v1/users", {"admin"}),
    ],
)
async def test_role_matrix(api: ApiSite, path: str, allowed: set[str]) -> None:
    for who in ("staff1", "manager1", "admin"):
        resp = await api.client.get(path, headers=api.auth(who))
        expected = 200 if who in allowed else 403
        assert resp.status == expected, (who, path, await resp.text())
        if expected == 403:
            assert (await resp.json())["error"]["code"] == "forbidden"


async def test_only_admin_manages_users(api: ApiSite) -> None:
    new = {"username": "bob", "password": "long-enough-pw", "role": "staff"}
    resp = await api.client.post("/api/v1/users", json=new, headers=api.auth("manager1"))
    assert resp.status == 403
    resp = await api.client.post("/api/v1/users", json=new, headers=api.auth("admin"))
    assert resp.status == 201
    resp = await api.client.post("/api/v1/users", json=new, headers=api.auth("admin"))
    assert resp.status == 409
    assert (await resp.json())["error"]["field"] == "username"
    bob = await api.login("bob", "long-enough-pw")
    resp = await api.client.patch(
        "/api/v1/users/bob", json={"role": "manager"}, headers=api.auth("admin")
    )
    assert resp.status == 200 and (await resp.json())["role"] == "manager"
    resp = await api.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {bob}"})
    assert resp.status == 200
    resp = await api.client.patch(
        "/api/v1/users/bob", json={"disabled": True}, headers=api.auth("admin")
    )
    assert resp.status == 200
    resp = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {bob}"})
    assert resp.status == 401  # disabling ends the sessions
    resp = await api.client.patch(
        "/api/v1/users/bob", json={"rank": "x"}, headers=api.auth("admin")
    )
    assert resp.status == 422 and (await resp.json())["error"]["field"] == "rank"
    resp = await api.client.delete("/api/v1/users/bob", headers=api.auth("admin"))
    assert resp.status == 200
    resp = await api.client.delete("/api/v1/users/admin", headers=api.auth("admin"))
    assert resp.status == 409
    actions = [e["action"] for e in await audit(api)]
    assert {"user.create", "user.update", "user.delete"} <= set(actions)


async def audit(api: ApiSite) -> list[dict[str, object]]:
    resp = await api.client.get("/api/v1/audit?limit=1000", headers=api.auth("admin"))
    assert resp.status == 200
    entries: list[dict[str, object]] = (await resp.json())["entries"]
    return entries


async def test_cookie_session_needs_csrf_header_for_changes(api: ApiSite) -> None:
    client = api.client
    resp = await client.post(
        "/api/v1/auth/login", json={"username": "staff1", "password": "staff-password-1"}
    )
    assert resp.status == 200
    csrf = (await resp.json())["csrf_token"]
    set_cookie = resp.headers.getall("Set-Cookie")
    session = next(c for c in set_cookie if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in session and "SameSite=Strict" in session
    # Reads need no CSRF token; the cookie jar of the test client carries the session.
    resp = await client.get("/api/v1/me")
    assert resp.status == 200 and (await resp.json())["username"] == "staff1"
    command = "/api/v1/rooms/room-a/devices/ceiling/command"
    resp = await client.post(command, json={"on": True})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf_failed"
    resp = await client.post(command, json={"on": True}, headers={CSRF_HEADER: "forged"})
    assert resp.status == 403
    assert await api.core.store.commands() == []
    assert client.session.cookie_jar.filter_cookies(client.make_url("/"))[CSRF_COOKIE].value == csrf
    resp = await client.post(command, json={"on": True}, headers={CSRF_HEADER: csrf})
    assert resp.status == 200, await resp.text()
    resp = await client.post("/api/v1/auth/logout", headers={CSRF_HEADER: csrf})
    assert resp.status == 200
    client.session.cookie_jar.clear()
    resp = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {api.tokens['admin']}"}
    )
    assert resp.status == 200


async def test_logout_revokes_bearer_token(api: ApiSite) -> None:
    token = await api.login("staff1", "staff-password-1")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.client.post("/api/v1/auth/logout", headers=headers)).status == 200
    assert (await api.client.get("/api/v1/me", headers=headers)).status == 401


async def test_repeated_bad_logins_lock_out_and_are_audited(api: ApiSite) -> None:
    bad = {"username": "staff1", "password": "wrong"}
    statuses = []
    for _ in range(5):
        resp = await api.client.post("/api/v1/auth/login", json=bad)
        statuses.append(resp.status)
    # Three free attempts, the fourth failure starts a lockout, the fifth is refused unchecked.
    assert statuses == [401, 401, 401, 401, 429]
    assert int(resp.headers["Retry-After"]) >= 1
    # Even the right password waits out the lockout.
    good = {"username": "staff1", "password": "staff-password-1"}
    resp = await api.client.post("/api/v1/auth/login", json=good)
    assert resp.status == 429
    assert (await resp.json())["error"]["code"] == "too_many_attempts"
    entries = [e for e in await audit(api) if e["action"] == "auth.login"]
    results = [e["result"] for e in entries if e["target"] == "staff1"]
    assert results.count("failed") == 4 and results.count("locked_out") == 2


async def test_unknown_user_fails_like_a_wrong_password(api: ApiSite) -> None:
    resp = await api.client.post("/api/v1/auth/login", json={"username": "nobody", "password": "x"})
    assert resp.status == 401
    assert (await resp.json())["error"] == {
        "code": "unauthenticated",
        "message": "wrong username or password",
        "field": None,
    }


async def test_failed_logins_and_lockouts_reach_the_log_without_the_password(
    api: ApiSite, caplog: pytest.LogCaptureFixture
) -> None:
    bad = {"username": "staff1", "password": "Hunter2-not-it"}
    for _ in range(5):
        await api.client.post("/api/v1/auth/login", json=bad)
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.api.routes_auth"]
    assert sum(m.startswith("failed login for 'staff1'") for m in lines) == 4, lines
    assert any(m.startswith("login refused for 'staff1'") for m in lines), lines
    assert not any("Hunter2" in m for m in lines)


async def test_malformed_and_invalid_login_bodies(api: ApiSite) -> None:
    resp = await api.client.post(
        "/api/v1/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == {
        "code": "malformed_json",
        "message": (await resp.json())["error"]["message"],
        "field": "body",
    }
    resp = await api.client.post("/api/v1/auth/login", json={"username": "a"})
    assert resp.status == 422 and (await resp.json())["error"]["field"] == "password"
    resp = await api.client.post("/api/v1/auth/login", json=[1, 2])
    assert resp.status == 400


async def test_first_start_prints_password_once_on_a_terminal(
    mqtt_broker: Broker,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    site = await start_api_site(mqtt_broker, tmp_path)
    try:
        out = capsys.readouterr().out
        password = (tmp_path / INITIAL_PASSWORD_FILE).read_text().strip()
        assert out.count(password) == 1
    finally:
        await stop_api_site(site)


async def test_first_start_under_a_service_manager_names_only_the_file(
    mqtt_broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # stdout is a pipe (the journal under systemd): the secret must not go there.
    site = await start_api_site(mqtt_broker, tmp_path)
    try:
        out = capsys.readouterr().out
        password = (tmp_path / INITIAL_PASSWORD_FILE).read_text().strip()
        assert password not in out
        assert str(tmp_path / INITIAL_PASSWORD_FILE) in out
    finally:
        await stop_api_site(site)
