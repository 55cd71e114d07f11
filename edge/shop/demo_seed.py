"""The demo shop: a real-looking spa catalogue and three members of each tier.

One seed for every demo, so ``coresync-edge demo`` and ``coresync-cloud demo``
show the same products and members::

    from edge.shop.demo_seed import seed_demo_shop
    members = seed_demo_shop(shop)   # idempotent; {email: Member}
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

from edge.shop.errors import Conflict, NotFound
from edge.shop.records import Member
from edge.shop.service import Shop
from edge.shop.statuses import Tier

# (slug, name, category, price, member price, stock, featured, short description)
CATALOGUE: tuple[tuple[str, str, str, str, str | None, int, bool, str], ...] = (
    ("rose-hip-serum", "Rose Hip Facial Serum", "skincare", "68.00", "54.40", 24, True,
     "Cold-pressed rose hip oil for overnight repair."),
    ("hyaluronic-mist", "Hyaluronic Hydrating Mist", "skincare", "32.00", "25.60", 40, False,
     "Refreshing mist with three weights of hyaluronic acid."),
    ("charcoal-clay-mask", "Detox Charcoal Clay Mask", "skincare", "45.00", "36.00", 3, False,
     "Kaolin and bamboo charcoal to draw out impurities."),
    ("vitamin-c-cream", "Vitamin C Brightening Cream", "skincare", "58.00", "46.40", 18, False,
     "Stabilised vitamin C with squalane."),
    ("infrared-sauna-blanket", "Infrared Sauna Blanket", "wellness_tech", "499.00", "429.00",
     4, True, "Far-infrared heat at home, up to 80 °C."),
    ("percussion-massager", "Percussion Massage Gun", "wellness_tech", "229.00", "189.00", 9,
     False, "Five heads, six speeds, quiet motor."),
    ("led-face-mask", "LED Light Therapy Mask", "wellness_tech", "349.00", "299.00", 6, False,
     "Red and near-infrared light in ten-minute sessions."),
    ("jade-roller", "Jade Facial Roller", "accessories", "38.00", "30.40", 30, False,
     "Cooling jade roller for lymphatic massage."),
    ("gua-sha-stone", "Rose Quartz Gua Sha", "accessories", "34.00", "27.20", 2, True,
     "Hand-polished rose quartz sculpting stone."),
    ("waffle-robe", "Waffle Knit Spa Robe", "accessories", "95.00", "76.00", 12, False,
     "Lightweight Turkish cotton waffle robe."),
    ("magnesium-glycinate", "Magnesium Glycinate", "supplements", "29.00", "23.20", 50, False,
     "Gentle magnesium for sleep and recovery, 120 capsules."),
    ("collagen-peptides", "Marine Collagen Peptides", "supplements", "49.00", "39.20", 22, True,
     "Unflavoured type I collagen, 30 servings."),
    ("ashwagandha", "Organic Ashwagandha", "supplements", "26.00", "20.80", 0, False,
     "KSM-66 root extract for stress balance."),
)  # fmt: skip

# (email, name, tier, date of birth)
MEMBERS: tuple[tuple[str, str, Tier, str], ...] = (
    ("ava@example.com", "Ava Premium", Tier.PREMIUM, "1988-04-12"),
    ("ben@example.com", "Ben Basic", Tier.BASIC, "1992-09-30"),
    ("cleo@example.com", "Cleo Unlimited", Tier.UNLIMITED, "1979-01-05"),
)
SITE_PHONE = "+1 (551) 574-2281"


def seed_demo_shop(shop: Shop) -> dict[str, Member]:
    """Load the demo catalogue and members unless present; returns members by email.

    Idempotent: a product whose slug exists, or a member whose email exists,
    is left as it is (stock included), so restarting a demo keeps its orders.
    """
    for slug, name, cat, price, member, stock, featured, short in CATALOGUE:
        with contextlib.suppress(Conflict):  # already seeded
            shop.create_product(
                {"slug": slug, "name": name, "category": cat, "price": Decimal(price),
                 "member_price": None if member is None else Decimal(member),
                 "featured": featured, "short_description": short,
                 "description": f"{short} Available for pickup at the spa front desk.",
                 "image_url": f"https://cdn.example.com/products/{slug}.jpg"},
                initial_stock=stock, actor="demo",
            )  # fmt: skip
    members: dict[str, Member] = {}
    for email, name, tier, born in MEMBERS:
        try:
            members[email] = shop.find_member_by_email(email)
        except NotFound:
            members[email] = shop.create_member(
                {"name": name, "email": email, "phone": SITE_PHONE,
                 "date_of_birth": born, "tier": tier}
            )  # fmt: skip
    return members
