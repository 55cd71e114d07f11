"""Concierge requests: Premium and Unlimited members ask staff to source an item."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from edge.shop.base import ShopBase, new_id, where_equal
from edge.shop.db import Tx
from edge.shop.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from edge.shop.inputs import ConciergeInput, CostInput, DeclineInput, RequestStatusInput
from edge.shop.members import MembersMixin
from edge.shop.money import to_cents
from edge.shop.records import ConciergeRequest, Page
from edge.shop.statuses import (
    CONCIERGE_TIERS,
    REQUEST_CANCELLABLE,
    REQUEST_PREVIOUS,
    REQUEST_TERMINAL,
    RequestStatus,
    sql_list,
)

_COLUMNS = (
    "id, number, member_id, request_type, title, description, product_link, budget_min_cents,"
    " budget_max_cents, actual_cost_cents, preferred_pickup_date, booking_ref, status,"
    " decline_reason, staff_notes, age_verified_at, age_verified_by, submitted_at, reviewed_at,"
    " completed_at, site"
)


class ConciergeMixin(MembersMixin, ShopBase):
    def submit_request(
        self, member_id: str, data: ConciergeInput | dict[str, Any]
    ) -> ConciergeRequest:
        r = self._input(ConciergeInput, data)
        rid, now = new_id(), self.stamp()
        with self.db.write() as tx:
            site = self.site_rules(tx, r.site)
            today = self.today_at(site)
            earliest = today + timedelta(days=self.config.concierge_lead_days)
            if r.preferred_pickup_date < earliest:
                raise ValidationFailed(
                    "preferred_pickup_date", f"must be on or after {earliest.isoformat()}"
                )
            member = self._member(tx, member_id)
            if not member.active or member.tier not in CONCIERGE_TIERS:
                raise Forbidden("the concierge is for active Premium and Unlimited members")
            number = self.next_number(tx, "CR", today.year)
            tx.execute(
                f"INSERT INTO concierge_requests ({_COLUMNS}, updated_at, origin_node) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?,"
                f" '{RequestStatus.PENDING}', NULL, '', NULL, NULL, ?, NULL, NULL, ?, ?, ?)",
                (rid, number, member.id, r.request_type, r.title, r.description, r.product_link,
                 to_cents(r.budget_min), to_cents(r.budget_max),
                 r.preferred_pickup_date.isoformat(), r.booking_ref, now, site.id, now,
                 self.config.node_id),
            )  # fmt: skip
            return self._changed(tx, rid, "create")

    def approve_request(
        self, request_id: str, *, staff_notes: str | None = None, actor: str = "staff"
    ) -> ConciergeRequest:
        """Approve only while pending."""
        return self._transition(
            request_id, RequestStatus.APPROVED, (RequestStatus.PENDING,),
            "reviewed_at = ?, staff_notes = COALESCE(?, staff_notes)", (self.stamp(), staff_notes),
        )  # fmt: skip

    def decline_request(
        self, request_id: str, data: DeclineInput | dict[str, Any], *, actor: str = "staff"
    ) -> ConciergeRequest:
        d = self._input(DeclineInput, data)
        return self._transition(
            request_id, RequestStatus.DECLINED, (RequestStatus.PENDING,),
            "reviewed_at = ?, decline_reason = ?", (self.stamp(), d.reason),
        )  # fmt: skip

    def cancel_request(self, request_id: str, *, member_id: str | None = None) -> ConciergeRequest:
        return self._transition(
            request_id, RequestStatus.CANCELLED, REQUEST_CANCELLABLE, member_id=member_id
        )

    def set_request_status(
        self, request_id: str, data: RequestStatusInput | dict[str, Any], *, actor: str = "staff"
    ) -> ConciergeRequest:
        s = self._input(RequestStatusInput, data)
        if s.status == RequestStatus.COMPLETED:
            current = self.get_request(request_id)
            if current.request_type == "premium_alcohol" and current.age_verified_at is None:
                raise Conflict(
                    "alcohol needs the member's age verified before hand-over",
                    field="age_verified",
                )
        extra = "staff_notes = COALESCE(?, staff_notes)"
        params: tuple[Any, ...] = (s.staff_notes,)
        if s.status == RequestStatus.COMPLETED:
            extra += ", completed_at = ?"
            params += (self.stamp(),)
        # The age check is repeated in SQL so a concurrent change cannot slip past it.
        guard = "(request_type <> 'premium_alcohol' OR age_verified_at IS NOT NULL)"
        return self._transition(
            request_id, s.status, (REQUEST_PREVIOUS[s.status],), extra, params,
            guard=guard if s.status == RequestStatus.COMPLETED else None,
        )  # fmt: skip

    def set_actual_cost(
        self, request_id: str, data: CostInput | dict[str, Any], *, actor: str = "staff"
    ) -> ConciergeRequest:
        c = self._input(CostInput, data)
        return self._update_open(request_id, "actual_cost_cents = ?", (to_cents(c.actual_cost),))

    def verify_age(self, request_id: str, *, actor: str) -> ConciergeRequest:
        """Staff saw ID proving the member may receive alcohol."""
        return self._update_open(
            request_id, "age_verified_at = ?, age_verified_by = ?", (self.stamp(), actor)
        )

    def get_request(
        self, request_id: str, *, member_id: str | None = None, site: str | None = None
    ) -> ConciergeRequest:
        with self.db.read() as tx:
            req = self._request(tx, request_id)
        if (member_id is not None and req.member_id != member_id) or (
            site is not None and req.site != site
        ):
            raise NotFound("concierge request", request_id)
        return req

    def list_requests(
        self, *, member_id: str | None = None, status: str | None = None,
        site: str | None = None, page: int = 1, page_size: int = 20,
    ) -> Page[ConciergeRequest]:  # fmt: skip
        clause, params = where_equal(member_id=member_id, status=status, site=site)
        with self.db.read() as tx:
            total = int(tx.scalar(f"SELECT COUNT(*) AS n FROM concierge_requests{clause}", params))
            rows = tx.all(
                f"SELECT {_COLUMNS} FROM concierge_requests{clause}"
                " ORDER BY submitted_at DESC, number DESC LIMIT ? OFFSET ?",
                [*params, page_size, (page - 1) * page_size],
            )
        return Page(tuple(ConciergeRequest.from_row(r) for r in rows), total, page, page_size)

    # ---- internals ------------------------------------------------------------
    def _transition(
        self, request_id: str, to: str, allowed: tuple[str, ...], extra: str = "",
        params: tuple[Any, ...] = (), *, member_id: str | None = None, guard: str | None = None,
    ) -> ConciergeRequest:  # fmt: skip
        with self.db.write() as tx:
            current = self._request(tx, request_id)
            if member_id is not None and current.member_id != member_id:
                raise NotFound("concierge request", request_id)
            marks = ", ".join("?" for _ in allowed)
            changed = tx.execute(
                f"UPDATE concierge_requests SET status = ?, updated_at = ?{', ' if extra else ''}"
                f"{extra} WHERE id = ? AND status IN ({marks})"
                + (f" AND {guard}" if guard else ""),
                (to, self.stamp(), *params, request_id, *allowed),
            )
            if changed != 1:
                raise InvalidTransition(f"request {current.number}", current.status, to)
            return self._changed(tx, request_id, to)

    def _update_open(
        self, request_id: str, assignments: str, params: tuple[Any, ...]
    ) -> ConciergeRequest:
        with self.db.write() as tx:
            current = self._request(tx, request_id)
            changed = tx.execute(
                f"UPDATE concierge_requests SET {assignments}, updated_at = ?"
                f" WHERE id = ? AND status NOT IN ({sql_list(REQUEST_TERMINAL)})",
                (*params, self.stamp(), request_id),
            )
            if changed != 1:
                raise Conflict(f"request {current.number} is {current.status}", field="status")
            return self._changed(tx, request_id, "update")

    def _changed(self, tx: Tx, request_id: str, op: str) -> ConciergeRequest:
        req = self._request(tx, request_id)
        self.record_change(tx, "concierge_request", request_id, op, req.to_json(), site=req.site)
        return req

    @staticmethod
    def _request(tx: Tx, request_id: str) -> ConciergeRequest:
        row = tx.one(f"SELECT {_COLUMNS} FROM concierge_requests WHERE id = ?", (request_id,))
        if row is None:
            raise NotFound("concierge request", request_id)
        return ConciergeRequest.from_row(row)
