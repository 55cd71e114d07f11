"""The members' website served by ``coresync-cloud``: server-rendered pages
(Jinja2 through aiohttp-jinja2), no JavaScript needed, no build step.

``setup_site(app)`` adds the pages to the cloud app; every shop, concierge
and member rule runs in ``edge.shop`` on the app's thread pool.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from cloud_api.site import member_pages as mp
from cloud_api.site import shop_pages as sp
from cloud_api.site.store import migrate_site
from cloud_api.site.web import PASSWORDS_KEY, SETTINGS_KEY, error_pages, make_passwords
from cloud_api.spec import SHOP_KEY
from edge.api.settings import ApiSettings

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
# Pages anyone may see without logging in, each with the reason (the
# auth-coverage test reads this; every other page sends a visitor to /login).
PUBLIC_PAGES: dict[tuple[str, str], str] = {
    ("GET", "/login"): "where members log in",
    ("POST", "/login"): "the login form's target (CSRF double-submit checked, throttled)",
    ("GET", "/logout"): "ends the caller's own session, if any; shows nothing",
    ("POST", "/logout"): "ends the caller's own session, if any; shows nothing",
    ("GET", "/privacy"): "the privacy policy is public",
    ("GET", "/terms"): "the terms of service are public",
    ("GET", "/refunds"): "the refund policy is public",
    ("GET", "/assets"): "the website's stylesheet (a static folder), no data",
}


def setup_site(app: web.Application, settings: ApiSettings | None = None) -> None:
    settings = settings or ApiSettings()
    app[SETTINGS_KEY] = settings
    app[PASSWORDS_KEY] = make_passwords(app, settings)
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(str(TEMPLATES)), auto_reload=False,
        autoescape=True, undefined=jinja2.StrictUndefined, cache_size=-1,
    )  # fmt: skip
    app.middlewares.append(error_pages)

    async def prepare(app: web.Application) -> None:
        # Schema, and every template read and compiled once, off the event loop.
        def work() -> None:
            migrate_site(app[SHOP_KEY].db)
            for name in env.list_templates():
                env.get_template(name)

        await asyncio.get_running_loop().run_in_executor(None, work)

    app.on_startup.append(prepare)
    r = app.router
    r.add_get("/login", sp.login_form)
    r.add_post("/login", sp.login)
    r.add_get("/logout", sp.logout)
    r.add_post("/logout", sp.logout)
    r.add_get("/", sp.shop_index)
    r.add_get("/shop/{slug}", sp.product_page)
    r.add_get("/cart", sp.cart)
    r.add_post("/cart", sp.cart_post)
    r.add_post("/cart/add", sp.cart_add)
    r.add_get("/orders", mp.orders)
    r.add_get("/orders/{id}", mp.order_detail)
    r.add_post("/orders/{id}/cancel", mp.order_cancel)
    r.add_get("/concierge", mp.concierge)
    r.add_post("/concierge", mp.concierge_submit)
    r.add_post("/concierge/{id}/cancel", mp.concierge_cancel)
    r.add_get("/account", mp.account)
    r.add_post("/account/profile", mp.profile)
    r.add_get("/account/export", mp.export)
    r.add_post("/account/consent", mp.withdraw_consent)
    r.add_post("/account/delete", mp.request_deletion)
    for page in ("/privacy", "/terms", "/refunds"):
        r.add_get(page, mp.legal)
    r.add_static("/assets", STATIC)
