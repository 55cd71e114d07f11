"""Demo data: a real-looking spa catalogue, members with known tokens, a staff login."""

from __future__ import annotations

import contextlib

from cloud_api.auth import Auth
from edge.shop import Conflict, Shop
from edge.shop.demo_seed import seed_demo_shop

# The catalogue and members come from the shared demo seed; here only their
# fixed member-app tokens (by email) and the staff login are cloud-specific.
MEMBER_TOKENS = {
    "ava@example.com": "demo-member-ava",
    "ben@example.com": "demo-member-ben",
    "cleo@example.com": "demo-member-cleo",
}
STAFF = ("manager@example.com", "Demo Manager", "demo-password", "admin")


def seed(shop: Shop, auth: Auth) -> list[tuple[str, str]]:
    """Load the demo data (idempotent); returns (member, token) pairs to print."""
    tokens = []
    for email, member in seed_demo_shop(shop).items():
        token = MEMBER_TOKENS[email]
        auth.issue_member_token(member.id, token)  # ON CONFLICT DO NOTHING: idempotent
        tokens.append((f"{member.name} <{email}>", token))
    with contextlib.suppress(Conflict):
        auth.create_staff(STAFF[0], STAFF[1], STAFF[2], "admin")
    return tokens
