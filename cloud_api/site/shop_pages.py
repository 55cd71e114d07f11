"""Login, the shop, product pages and the cart: every rule is the shop's own."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from cloud_api import guard
from cloud_api.site import store
from cloud_api.site.web import (
    LOGIN_CSRF_COOKIE,
    PASSWORDS_KEY,
    SESSION_COOKIE,
    Me,
    current,
    field_errors,
    login_csrf,
    member_page,
    render,
    run,
    safe_next,
    same,
    session_ttl,
    set_cookie,
    shop_of,
    status_of,
)
from edge.api import db as throttle_db
from edge.api.login_guard import LoginRefused
from edge.shop import Member, NotFound, Page, Product, Shop, ShopError, ValidationFailed
from edge.shop.inputs import CATEGORIES, CatalogueQuery, parse
from edge.shop.money import order_totals
from sync.sites import Site, list_sites

log = logging.getLogger(__name__)
PAGE_SIZE = 24
CATEGORY_NAMES = {c: c.replace("_", " ").capitalize() for c in CATEGORIES}


# ---- login ---------------------------------------------------------------------------
async def login_form(request: web.Request) -> web.StreamResponse:
    if await current(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return _login_page(request, {}, 200, "")


def _login_page(
    request: web.Request, errors: dict[str, str], status: int, email: str
) -> web.Response:
    probe = web.Response()
    csrf = login_csrf(request, probe)
    page = render(request, "login.html", None, status, errors=errors, email=email, csrf=csrf,
                  next=safe_next(request.query.get("next")))  # fmt: skip
    for name, morsel in probe.cookies.items():
        page.cookies[name] = morsel
    return page


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    guard.refuse_nul(*((k, str(v)) for k, v in form.items()))
    email = str(form.get("email", "")).strip().lower()[:254]
    password = str(form.get("password", ""))[:1000]
    if not same(str(form.get("csrf_token", "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")):
        raise web.HTTPForbidden(reason="The form was stale or not sent from this site; reload it.")
    errors = {}
    if not email:
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return _login_page(request, errors, 422, email)
    passwords = request.app[PASSWORDS_KEY]
    keys = [f"member:{email}", f"ip:{request.remote or 'unknown'}"]
    try:
        async with passwords.guard.attempt(keys):
            member = await _check(request, email, password, keys)
    except LoginRefused as exc:
        log.warning("member login refused for %r: %s", email, exc.message)
        return _login_page(request, {"password": exc.message}, 429, email)
    if member is None:
        return _login_page(request, {"password": "Wrong email or password."}, 401, email)
    ttl = session_ttl(request)
    token = await run(request, store.new_session, shop_of(request).db, member.id, ttl)
    response = web.HTTPSeeOther(safe_next(str(form.get("next", "/"))))
    set_cookie(request, response, SESSION_COOKIE, token, int(ttl.total_seconds()))
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise response


async def _check(request: web.Request, email: str, password: str, keys: list[str]) -> Member | None:
    """The member when the password checks out; a failure is counted on every key."""
    shop, passwords = shop_of(request), request.app[PASSWORDS_KEY]

    def lookup() -> tuple[Member | None, str | None]:
        try:
            member = shop.find_member_by_email(email)
        except NotFound:
            return None, None
        return member, store.password_hash(shop.db, member.id)

    member, hashed = await run(request, lookup)
    ok = await passwords.verify_password(hashed, password)
    if ok and member is not None:
        await passwords.store.call(lambda c: throttle_db.clear_failures(c, keys))
        return member
    now = time.time()
    throttle = passwords.login_throttle
    await passwords.store.call(
        lambda c: [throttle_db.record_failure(c, key, now, throttle) for key in keys]
    )
    log.warning("failed member login for %r from %s", email, request.remote)
    return None


async def logout(request: web.Request) -> web.StreamResponse:
    """GET or POST: ending one's own session needs no more than the cookie."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if token and len(token) <= 100 and token.isascii():
        await run(request, store.end_session, shop_of(request).db, token)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


# ---- the shop --------------------------------------------------------------------------
@member_page
async def shop_index(request: web.Request, me: Me) -> web.StreamResponse:
    raw = {k: v for k, v in request.query.items() if k in ("category", "search", "page") and v}
    errors: dict[str, str] = {}
    try:
        q = parse(CatalogueQuery, {**raw, "page_size": PAGE_SIZE, "featured_first": True})
    except ValidationFailed as exc:
        errors = field_errors(exc)
        q = CatalogueQuery(page_size=PAGE_SIZE, featured_first=True)
    shop = shop_of(request)

    def load() -> tuple[Page[Product], list[dict[str, Any]]]:
        return shop.list_products(q), shop.categories()

    found, categories = await run(request, load)
    items, total = found.items, found.total
    pages = max(1, -(-total // PAGE_SIZE))
    return render(
        request, "shop.html", me, 422 if errors else 200, errors=errors, products=items,
        total=total, page=q.page, pages=pages, category=q.category, search=raw.get("search", ""),
        categories=categories, names=CATEGORY_NAMES,
    )  # fmt: skip


@member_page
async def product_page(request: web.Request, me: Me) -> web.StreamResponse:
    product = await run(request, shop_of(request).get_product, request.match_info["slug"])
    return render(request, "product.html", me, product=product, names=CATEGORY_NAMES)


@member_page
async def cart_add(request: web.Request, me: Me) -> web.StreamResponse:
    assert me.form is not None
    slug = str(me.form.get("product", ""))
    product = await run(request, shop_of(request).get_product, slug)  # 404 when unknown
    cart = dict(me.session.cart)
    cart[product.slug] = min(cart.get(product.slug, 0) + 1, 1000)
    await run(request, store.save_cart, shop_of(request).db, me.session.token, cart)
    raise web.HTTPSeeOther(safe_next(str(me.form.get("next", "/cart"))))


# ---- the cart ----------------------------------------------------------------------------
@dataclass
class Line:
    slug: str
    quantity: int
    product: Product | None
    unit: Decimal
    total: Decimal
    problem: str | None


def _lines(shop: Shop, member: Member, cart: dict[str, int]) -> list[Line]:
    lines = []
    for slug, qty in cart.items():
        try:
            product = shop.get_product(slug)
        except NotFound:
            lines.append(Line(slug, qty, None, Decimal("0.00"), Decimal("0.00"),
                              "No longer sold; remove it to order."))  # fmt: skip
            continue
        unit = product.price_for(member.active)
        problem = None
        if qty > product.stock:
            problem = f"Only {product.stock} in stock." if product.stock else "Out of stock."
        lines.append(Line(slug, qty, product, unit, unit * qty, problem))
    return lines


def _site_rate(shop: Shop, sites: list[Site], chosen: str | None) -> Decimal:
    site = next((s for s in sites if s.id == chosen), None)
    return Decimal(site.tax_rate) if site is not None else shop.config.tax_rate


async def _cart_page(
    request: web.Request, me: Me, *, status: int = 200, errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:  # fmt: skip
    shop, values = shop_of(request), values or {}

    def load() -> tuple[list[Line], list[Site], str]:
        return _lines(shop, me.member, me.session.cart), list_sites(shop.db), str(shop.today())

    lines, sites, today = await run(request, load)
    chosen = values.get("site") or (sites[0].id if sites else None)
    rate = _site_rate(shop, sites, chosen)
    priced = [(line.unit, line.quantity) for line in lines if line.product is not None]
    subtotal, tax, total = order_totals(priced, rate)
    return render(
        request, "cart.html", me, status, errors=errors or {}, lines=lines, sites=sites,
        chosen=chosen, rate=rate, subtotal=subtotal, tax=tax, total=total, values=values,
        today=today,
    )  # fmt: skip


@member_page
async def cart(request: web.Request, me: Me) -> web.StreamResponse:
    return await _cart_page(request, me, values={"site": request.query.get("site", "")})


def _quantities(me: Me) -> tuple[dict[str, int], dict[str, str]]:
    assert me.form is not None
    cart, errors = {}, {}
    removed = str(me.form.get("remove", ""))
    for slug, old in me.session.cart.items():
        raw = str(me.form.get(f"qty-{slug}", old)).strip()
        if slug == removed:
            continue
        if not raw.isdigit() or int(raw) > 1000:
            errors[f"qty-{slug}"] = "A whole number from 0 to 1000."
            cart[slug] = old
        elif int(raw) > 0:
            cart[slug] = int(raw)
    return cart, errors


@member_page
async def cart_post(request: web.Request, me: Me) -> web.StreamResponse:
    assert me.form is not None
    shop = shop_of(request)
    values = {k: str(me.form.get(k, "")).strip() for k in ("site", "pickup_date", "customer_notes")}
    cart_now, errors = _quantities(me)
    await run(request, store.save_cart, shop.db, me.session.token, cart_now)
    me.session = store.Session(me.session.token, me.session.member_id, cart_now)
    if errors or me.form.get("action") != "order":
        return await _cart_page(request, me, status=422 if errors else 200, errors=errors,
                                values=values)  # fmt: skip
    slugs = list(cart_now)
    order = {"items": [{"product": s, "quantity": q} for s, q in cart_now.items()],
             "customer_notes": values["customer_notes"]}  # fmt: skip
    for key in ("pickup_date", "site"):
        if values[key]:
            order[key] = values[key]
    if not slugs:
        return await _cart_page(request, me, status=422, values=values,
                                errors={"items": "Your cart is empty."})  # fmt: skip
    try:
        placed = await run(
            request, shop.create_order, me.member.id, order, actor=f"member:{me.member.id}"
        )
    except ShopError as exc:
        field = exc.field or "form"
        for i, slug in enumerate(slugs):  # items[1].quantity -> the second line's quantity
            field = field.replace(f"items[{i}].quantity", f"qty-{slug}")
            field = field.replace(f"items[{i}].product", f"qty-{slug}")
        errors = {field: getattr(exc, "message", None) or str(exc)}
        return await _cart_page(request, me, status=status_of(exc), errors=errors, values=values)
    await run(request, store.save_cart, shop.db, me.session.token, {})
    raise web.HTTPSeeOther(f"/orders?placed={placed.number}")
