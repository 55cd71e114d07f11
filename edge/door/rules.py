"""Who may come in now: the access rules, evaluated at the edge with no network.

Pure (no I/O): the service gathers the member record, the consent state and
the time, and :func:`access_refusal` names the first rule that refuses, or
None.  The name is the door event's ``reason`` (and so what the dashboard's
door page shows).  The site's hours have one home, ``[opening_hours]``
(:mod:`edge.opening_hours`); a tier's door hours are a
:class:`~edge.opening_hours.WeeklyHours` in ``[door.access.tier_hours]``.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import Field

from drivers.config import StrictModel
from edge.opening_hours import OpeningHours, WeeklyHours
from edge.shop.statuses import Tier

# The rules, in the order they are checked; each is a door event reason.
MEMBERSHIP_INACTIVE = "membership_inactive"
NO_CONSENT = "no_consent"
STAFF_ONLY = "staff_only_door"
SITE_CLOSED = "site_closed"
OUTSIDE_TIER_HOURS = "outside_tier_hours"


class AccessRules(StrictModel):
    """Rules a recognised member (face or PIN) must pass before the door opens."""

    staff_only: bool = Field(
        False,
        description="A staff-only door: members are refused (staff open it remotely).",
    )
    site_hours: bool = Field(
        True,
        description="Members only while the site is open ([opening_hours]; unset: always).",
    )
    tier_hours: dict[Tier, WeeklyHours] = Field(
        default_factory=dict,
        description="Door hours per membership tier, in the site's time zone; a tier "
        "not listed has the site's hours.  Site holidays close the door to every tier.",
    )


def access_refusal(
    rules: AccessRules,
    site_hours: OpeningHours | None,
    tz: ZoneInfo,
    *,
    active: bool,
    tier: str,
    consent: bool,
    at: datetime,
) -> str | None:
    """The first rule that refuses this member now, or None.

    ``consent``: whether the way in needs none or it is on record (a PIN needs
    none; a face needs active biometric consent).  ``at`` is an aware instant.
    """
    if not active:
        return MEMBERSHIP_INACTIVE
    if not consent:
        return NO_CONSENT
    if rules.staff_only:
        return STAFF_ONLY
    if rules.site_hours and site_hours is not None and not site_hours.is_open(at, tz):
        return SITE_CLOSED
    hours = rules.tier_hours.get(tier)  # type: ignore[call-overload]
    if hours is not None and not hours.is_open(at, tz):
        return OUTSIDE_TIER_HOURS
    return None
