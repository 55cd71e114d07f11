"""The members' website under test: a real ``coresync-cloud demo`` process, its
``member login:`` line, headless Chromium (Debian's, never ``playwright
install``), a logged-in browser page, and axe-core (tests/axe.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.axe import axe_script_path
from tests.chromium import CHROMIUM, launched
from tests.conftest import free_port, wait_port
from tests.parts import missing

EXE = Path(sys.executable).parent / "coresync-cloud"
LOGIN_LINE = re.compile(r"^member login: (\S+) password (\S+)$")


@dataclass
class DemoCloud:
    url: str
    email: str
    password: str
    proc: subprocess.Popen[str]
    stdout: list[str]

    def api(self, path: str, token: str = "demo-member-ava") -> Any:
        """A member API read (blocking: call it from a thread)."""
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stock(self, slug: str) -> int:
        return int(self.api(f"/api/v1/shop/products/{slug}")["stock"])


def start_demo(data_dir: Path) -> DemoCloud:
    if not EXE.exists():
        missing("console script", f"{EXE} runs the cloud")
    port = free_port()
    argv = [str(EXE), "demo", "--port", str(port), "--data-dir", str(data_dir)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # the demo prints its logins, then serves
        lines.append(line.rstrip("\n"))
        if line.startswith("member login:"):
            break
    logins = [m for m in map(LOGIN_LINE.match, lines) if m]
    assert len(logins) == 1, lines  # exactly one line, read by outside checks
    wait_port("127.0.0.1", port, 30)
    email, password = logins[0].groups()
    return DemoCloud(f"http://127.0.0.1:{port}", email, password, proc, lines)


def stop_demo(cloud: DemoCloud) -> None:
    cloud.proc.terminate()
    try:
        cloud.proc.wait(15)
    except subprocess.TimeoutExpired:
        cloud.proc.kill()
        cloud.proc.wait()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoCloud]:
    cloud = start_demo(tmp_path_factory.mktemp("site-demo"))
    try:
        yield cloud
    finally:
        stop_demo(cloud)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        missing("Chromium", f"the website tests drive {CHROMIUM}")
    async with launched() as chromium:
        yield chromium


async def new_page(browser: Any, cloud: DemoCloud, *, width: int = 390) -> Any:
    """A phone-sized page (mobile first) that may reach only the cloud under test."""
    context = await browser.new_context(viewport={"width": width, "height": 844},
                                        accept_downloads=True, bypass_csp=True)  # fmt: skip
    page = await context.new_page()

    async def offline(route: Any) -> None:
        await route.abort()

    await page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), offline)
    return page


async def log_in(page: Any, cloud: DemoCloud, email: str, password: str) -> None:
    await page.goto(cloud.url + "/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(cloud.url + "/")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def http_login(url: str, email: str, password: str) -> aiohttp.ClientSession:
    """A cookie session on the website at ``url``, logged in through its form."""
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    form = await (await http.get(url + "/login")).text()
    fields = {"csrf_token": csrf_of(form), "email": email, "password": password}
    r = await http.post(url + "/login", allow_redirects=False, data=fields)
    assert r.status == 303, await r.text()
    return http


def axe_source() -> str:
    """axe-core's browser build: the same file the edge pages' checks use (tests/axe.py)."""
    return axe_script_path().read_text()


async def serious_violations(page: Any, axe: str) -> list[str]:
    """axe-core's serious and critical findings on the page as it stands."""
    await page.add_script_tag(content=axe)
    result = await page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    assert len(result["passes"]) > 10, result["passes"]  # axe did look at the page
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
