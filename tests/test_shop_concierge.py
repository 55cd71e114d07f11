"""Concierge requests and member rules (both backends)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from edge.shop import Conflict, Forbidden, InvalidTransition, Member, Shop, ValidationFailed
from edge.shop.testing import MutableClock, make_shop, postgres_unreachable
from tests.parts import missing

# 15:00 UTC is 11:00 in Brooklyn: the site's date is 2026-03-10.
NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    with make_shop(request.param, tmp_path, clock=MutableClock(NOW)) as s:
        yield s


def member(shop: Shop, tier: str = "premium", *, active: bool = True, n: int = 1) -> Member:
    return shop.create_member(
        {"name": "Ada", "email": f"ada{n}@example.com", "phone": "+1 (551) 574-2281",
         "date_of_birth": "1985-02-03", "tier": tier, "active": active}
    )  # fmt: skip


def request_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_type": "fresh_flowers",
        "title": "Peonies for Friday",
        "description": "A dozen pink peonies",
        "budget_min": "40",
        "budget_max": "80.00",
        "preferred_pickup_date": "2026-03-13",
    }
    body.update(over)
    return body


@pytest.mark.parametrize(
    ("tier", "active", "allowed"),
    [("basic", True, False), ("premium", True, True), ("unlimited", True, True),
     ("premium", False, False)],
)  # fmt: skip
def test_only_active_premium_and_unlimited_members(
    shop: Shop, tier: str, active: bool, allowed: bool
) -> None:
    m = member(shop, tier, active=active)
    if allowed:
        r = shop.submit_request(m.id, request_body())
        assert r.number == "CR-2026-000001" and r.status == "pending"
        assert r.submitted_at and r.reviewed_at is None
    else:
        with pytest.raises(Forbidden):
            shop.submit_request(m.id, request_body())


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"preferred_pickup_date": "2026-03-12"}, "preferred_pickup_date"),
        ({"budget_min": "90"}, "budget_min"),
        ({"budget_min": "-1"}, "budget_min"),
        ({"title": "t" * 201}, "title"),
        ({"title": ""}, "title"),
        ({"product_link": "not a url"}, "product_link"),
        ({"request_type": "cars"}, "request_type"),
        ({"attachments": []}, "attachments"),
    ],
)
def test_bad_requests_name_the_field(shop: Shop, override: dict[str, Any], field: str) -> None:
    m = member(shop)
    with pytest.raises(ValidationFailed) as info:
        shop.submit_request(m.id, request_body(**override))
    assert info.value.field == field


def test_status_flow_with_timestamps_and_budget(shop: Shop) -> None:
    m = member(shop)
    r = shop.submit_request(m.id, request_body(product_link="https://flowers.example/peony"))
    assert r.within_budget is None
    with pytest.raises(InvalidTransition):
        shop.set_request_status(r.id, {"status": "processing"})
    approved = shop.approve_request(r.id, staff_notes="call the florist")
    assert approved.status == "approved" and approved.reviewed_at is not None
    with pytest.raises(InvalidTransition):
        shop.approve_request(r.id)
    assert shop.set_actual_cost(r.id, {"actual_cost": "95.00"}).within_budget is False
    assert shop.set_actual_cost(r.id, {"actual_cost": "80.00"}).within_budget is True
    for status in ("processing", "ready", "completed"):
        r = shop.set_request_status(r.id, {"status": status})
    assert r.status == "completed" and r.completed_at is not None
    assert r.actual_cost == Decimal("80.00")
    with pytest.raises(Conflict):
        shop.set_actual_cost(r.id, {"actual_cost": "1"})


def test_decline_needs_a_reason_and_is_terminal(shop: Shop) -> None:
    r = shop.submit_request(member(shop).id, request_body())
    with pytest.raises(ValidationFailed) as info:
        shop.decline_request(r.id, {"reason": ""})
    assert info.value.field == "reason"
    declined = shop.decline_request(r.id, {"reason": "Out of season"})
    assert declined.status == "declined" and declined.decline_reason == "Out of season"
    with pytest.raises(InvalidTransition):
        shop.cancel_request(r.id)
    with pytest.raises(InvalidTransition):
        shop.approve_request(r.id)


@pytest.mark.parametrize("reach", [(), ("approve",), ("approve", "processing")])
def test_cancel_while_pending_approved_or_processing(shop: Shop, reach: tuple[str, ...]) -> None:
    m = member(shop)
    r = shop.submit_request(m.id, request_body())
    for step in reach:
        if step == "approve":
            shop.approve_request(r.id)
        else:
            shop.set_request_status(r.id, {"status": step})
    assert shop.cancel_request(r.id, member_id=m.id).status == "cancelled"


def test_cannot_cancel_once_ready(shop: Shop) -> None:
    r = shop.submit_request(member(shop).id, request_body())
    shop.approve_request(r.id)
    shop.set_request_status(r.id, {"status": "processing"})
    shop.set_request_status(r.id, {"status": "ready"})
    with pytest.raises(InvalidTransition):
        shop.cancel_request(r.id)


def test_alcohol_needs_age_verification_before_hand_over(shop: Shop) -> None:
    r = shop.submit_request(member(shop).id, request_body(request_type="premium_alcohol"))
    shop.approve_request(r.id)
    shop.set_request_status(r.id, {"status": "processing"})
    shop.set_request_status(r.id, {"status": "ready"})
    with pytest.raises(Conflict) as info:
        shop.set_request_status(r.id, {"status": "completed"})
    assert info.value.field == "age_verified"
    verified = shop.verify_age(r.id, actor="staff:jo")
    assert verified.age_verified_by == "staff:jo"
    assert shop.set_request_status(r.id, {"status": "completed"}).status == "completed"


def test_members_see_only_their_requests(shop: Shop) -> None:
    a, b = member(shop, n=1), member(shop, n=2)
    r = shop.submit_request(a.id, request_body())
    assert shop.list_requests(member_id=b.id).total == 0
    with pytest.raises(Exception, match="unknown concierge request"):
        shop.get_request(r.id, member_id=b.id)


def test_members_are_adults(shop: Shop) -> None:
    base = {"name": "Kid", "phone": "+1 555 0100", "tier": "basic"}
    # The site's date is 2026-03-10: born 2008-03-11 is still 17.
    with pytest.raises(ValidationFailed) as info:
        shop.create_member({**base, "email": "k@x.io", "date_of_birth": "2008-03-11"})
    assert info.value.field == "date_of_birth"
    assert shop.create_member({**base, "email": "k@x.io", "date_of_birth": "2008-03-10"})
    with pytest.raises(Conflict) as dup:
        shop.create_member({**base, "email": "K@x.io", "date_of_birth": "1990-01-01"})
    assert dup.value.field == "email"


def test_membership_changes_take_effect(shop: Shop) -> None:
    m = member(shop, "basic")
    with pytest.raises(Forbidden):
        shop.submit_request(m.id, request_body())
    shop.set_membership(m.id, tier="unlimited", active=True)
    assert shop.submit_request(m.id, request_body()).status == "pending"
