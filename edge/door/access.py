"""Who may come in now, and how: the member's access rules and the door's
security mode at this moment, evaluated at the edge with no network.

The pure rules live in :mod:`edge.door.rules` and :mod:`edge.door.security`;
this gathers what they need (the member record from the shop, the consent
state from the vault, the site's hours and time zone, the clock).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from edge.core import EdgeCore
from edge.door.config import DoorConfig
from edge.door.rules import access_refusal
from edge.door.security import Security
from edge.door.vault import Vault
from edge.errors import NotFound
from edge.shop.errors import NotFound as ShopNotFound


class DoorAccess:
    def __init__(
        self,
        core: EdgeCore,
        config: DoorConfig,
        vault: Vault,
        clock: Callable[[], datetime],
    ) -> None:
        self.core = core
        self.config = config
        self.vault = vault
        self.clock = clock  # an aware instant

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.core.config.site.timezone)

    def security(self) -> Security:
        """The security mode and challenge in force now, and the period that set them."""
        return self.config.security.at(self.clock(), self.tz, self.core.config.opening_hours)

    async def refusal(self, member_id: str, *, needs_consent: bool) -> str | None:
        """The access rule (edge/door/rules.py) that refuses this member now, or None.
        A face needs active biometric consent; a PIN is not biometric and needs none."""
        try:
            member = await self.core.run_shop(lambda shop: shop.get_member(member_id))
        except ShopNotFound:
            return "not_a_member"
        except NotFound:
            return "shop_unavailable"
        consent = not needs_consent or await self.vault.active_consent(member_id) is not None
        return access_refusal(
            self.config.access,
            self.core.config.opening_hours,
            self.tz,
            active=member.active,
            tier=member.tier,
            consent=consent,
            at=self.clock(),
        )
