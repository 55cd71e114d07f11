"""Members and their memberships (tier, active flag); adults only."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from edge.shop.base import ShopBase, new_id
from edge.shop.db import Tx
from edge.shop.errors import NotFound, ValidationFailed
from edge.shop.inputs import MemberInput, ProfileInput
from edge.shop.records import Member, jsonable
from edge.shop.statuses import Tier

_COLUMNS = "id, name, email, phone, date_of_birth, tier, active"
# What an erased member's required columns hold (the email is per member: unique).
ERASED = {"name": "Deleted member", "phone": "0000000", "date_of_birth": "1900-01-01"}


class MembersMixin(ShopBase):
    def create_member(self, data: MemberInput | dict[str, Any]) -> Member:
        m = self._input(MemberInput, data)
        self._check_adult(m)
        mid, now = new_id(), self.stamp()
        with self.db.write() as tx:
            tx.execute(
                f"INSERT INTO members ({_COLUMNS}, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    mid,
                    m.name,
                    m.email.lower(),
                    m.phone,
                    m.date_of_birth.isoformat(),
                    m.tier,
                    int(m.active),
                    now,
                    now,
                ),
            )
            member = self._member(tx, mid)
            self.record_change(tx, "member", mid, "create", member.to_json())
        return member

    def _check_adult(self, m: MemberInput) -> None:
        today = self.today()
        born = m.date_of_birth
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        if age < self.config.adult_age:
            raise ValidationFailed(
                "date_of_birth", f"members must be at least {self.config.adult_age}"
            )

    def set_membership(
        self, member_id: str, *, tier: Tier, active: bool,
        also: Callable[[Tx], None] | None = None,
    ) -> Member:  # fmt: skip
        """``also`` writes in the same transaction (the cloud's audit row)."""
        if tier not in tuple(Tier):
            raise ValidationFailed("tier", f"unknown tier {tier!r}")
        with self.db.write() as tx:
            self._member(tx, member_id)
            tx.execute(
                "UPDATE members SET tier = ?, active = ?, updated_at = ? WHERE id = ?",
                (tier, int(active), self.stamp(), member_id),
            )
            member = self._member(tx, member_id)
            self.record_change(tx, "member", member_id, "update", member.to_json())
            if also is not None:
                also(tx)
        return member

    def erase_member(self, member_id: str) -> Member:
        """Carry out an account deletion: the personal data goes, the membership
        ends (edges destroy any face template on ``membership_ended``), the id
        stays so the orders the law makes us keep still add up.  The columns
        are required, so erased values are fixed placeholders (ERASED)."""
        with self.db.write() as tx:
            self._member(tx, member_id)
            tx.execute(
                "UPDATE members SET name = ?, email = ?, phone = ?, date_of_birth = ?,"
                " active = 0, updated_at = ? WHERE id = ?",
                (
                    ERASED["name"],
                    f"deleted-{member_id}@deleted.invalid",
                    ERASED["phone"],
                    ERASED["date_of_birth"],
                    self.stamp(),
                    member_id,
                ),
            )
            member = self._member(tx, member_id)
            # Earlier changes of this member still hold the personal data: a
            # node reading the feed from the start gets the erased record only.
            tx.execute(
                "UPDATE outbox SET payload = ? WHERE entity = 'member' AND entity_id = ?",
                (json.dumps(jsonable(member.to_json()), sort_keys=True), member_id),
            )
            self.record_change(tx, "member", member_id, "update", member.to_json())
        return member

    def update_profile(self, member_id: str, data: ProfileInput | dict[str, Any]) -> Member:
        """A member corrects their name or phone (edges learn it by sync)."""
        p = self._input(ProfileInput, data)
        with self.db.write() as tx:
            self._member(tx, member_id)
            tx.execute(
                "UPDATE members SET name = ?, phone = ?, updated_at = ? WHERE id = ?",
                (p.name, p.phone, self.stamp(), member_id),
            )
            member = self._member(tx, member_id)
            self.record_change(tx, "member", member_id, "update", member.to_json())
        return member

    def get_member(self, member_id: str) -> Member:
        with self.db.read() as tx:
            return self._member(tx, member_id)

    def find_member_by_email(self, email: str) -> Member:
        with self.db.read() as tx:
            row = tx.one(f"SELECT {_COLUMNS} FROM members WHERE email = ?", (email.lower(),))
        if row is None:
            raise NotFound("member", email)
        return Member.from_row(row)

    @staticmethod
    def _member(tx: Tx, member_id: str) -> Member:
        row = tx.one(f"SELECT {_COLUMNS} FROM members WHERE id = ?", (member_id,))
        if row is None:
            raise NotFound("member", member_id)
        return Member.from_row(row)
