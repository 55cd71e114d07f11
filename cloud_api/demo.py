"""Demo data: a real-looking spa catalogue, members with known tokens, a staff login,
the demo site with its contact facts and the members' website passwords."""

from __future__ import annotations

import contextlib
import functools

from cloud_api.auth import Auth
from cloud_api.site import store as site_store
from cloud_api.site.web import password_hasher
from edge.shop import Conflict, Shop
from edge.shop.demo_seed import SITE_PHONE, seed_demo_shop
from sync import sites
from sync.schema import migrate_sync

# The catalogue and members come from the shared demo seed; here only their
# fixed member-app tokens (by email) and the staff login are cloud-specific.
MEMBER_TOKENS = {
    "ava@example.com": "demo-member-ava",
    "ben@example.com": "demo-member-ben",
    "cleo@example.com": "demo-member-cleo",
}
# Website passwords (the demo prints the first as "member login: ...").
MEMBER_PASSWORDS = {
    "ava@example.com": "demo-ava-password",
    "ben@example.com": "demo-ben-password",
    "cleo@example.com": "demo-cleo-password",
}
MEMBER_LOGIN = ("ava@example.com", MEMBER_PASSWORDS["ava@example.com"])
STAFF = ("manager@example.com", "Demo Manager", "demo-password", "admin")
# The spa of the product plan (../shared/domain.md), as the demo chain's one site.
SITE = ("brooklyn", "CoreSync Brooklyn", "0.08", "America/New_York")
SITE_ADDRESS = "1544 71st Street, Brooklyn, NY 11228"


@functools.cache
def _demo_hash(password: str) -> str:
    """argon2id is slow by design: hash each demo password once per process."""
    return password_hasher().hash(password)


def seed(shop: Shop, auth: Auth) -> list[tuple[str, str]]:
    """Load the demo data (idempotent); returns (member, token) pairs to print."""
    tokens = []
    members = seed_demo_shop(shop)
    for email, member in members.items():
        token = MEMBER_TOKENS[email]
        auth.issue_member_token(member.id, token)  # ON CONFLICT DO NOTHING: idempotent
        tokens.append((f"{member.name} <{email}>", token))
    with contextlib.suppress(Conflict):
        auth.create_staff(STAFF[0], STAFF[1], STAFF[2], "admin")
    migrate_sync(shop.db)
    site_store.migrate_site(shop.db)
    if shop.site_book is None:
        shop.site_book = sites.SiteBook()  # the cloud's shop, as CloudSync sets it up
    # A chain with sites sells each site's own stock: the new site gets the
    # seeded catalogue's figures, read before it exists (once: a second seed
    # finds the site there).
    catalogue = shop.list_products({"page_size": 100}, include_inactive=True).items
    with contextlib.suppress(Conflict):
        sites.add_site(shop.db, *SITE, actor="demo")
        for product in catalogue:
            if product.stock > 0:
                shop.restock(product.slug, {"quantity": product.stock, "site": SITE[0]})
    site_store.set_contact(shop.db, SITE[0], SITE_ADDRESS, SITE_PHONE)
    for email, member in members.items():
        if site_store.password_hash(shop.db, member.id) is None:
            site_store.set_password_hash(shop.db, member.id, _demo_hash(MEMBER_PASSWORDS[email]))
    return tokens
