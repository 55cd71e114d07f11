"""The chain's staff accounts: added, listed and removed by the chain admin.

``coresync-cloud staff add|list|remove`` and ``/api/v1/staff`` call the same
functions; every change is audited (``admin_audit``) in its own transaction.
A staff member or manager may be bound to one site (``site``): they then see
and change only that site's orders, requests, stock and attention items
(docs/cloud.md "Staff of a site").  An admin is the chain's, never bound.

The password is the caller's (CLI: ``--password-stdin``; HTTP: ``password``)
or generated, 20 random characters, and then shown once: the CLI's last
stdout line, the HTTP answer's ``password``.  It is never logged.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import Field

from cloud_api.auth import Auth
from cloud_api.spec import Ctx, EmptyInput, Route
from drivers.config import ID_PATTERN
from edge.shop.db import Database, Tx
from edge.shop.errors import Conflict, NotFound, ValidationFailed
from edge.shop.inputs import Input
from sync import sites

MIN_PASSWORD = 10
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{1,63}$"
StaffRole = Literal["staff", "manager", "admin"]


class StaffInput(Input):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN, description="Login email.")
    role: StaffRole = Field(description="staff, manager or admin.")
    site: str | None = Field(
        None, pattern=ID_PATTERN, description="Bind to one site (staff and managers only)."
    )
    name: str | None = Field(None, min_length=1, max_length=200, description="Display name.")
    password: str | None = Field(
        None, min_length=MIN_PASSWORD, max_length=1000,
        description="Omit to have one generated (returned once as password).",
    )  # fmt: skip


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 random bits


def _row(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "email", "name", "role", "site", "created_at")
    return {**{k: r[k] for k in keys}, "active": bool(r["active"])}


_COLUMNS = "id, email, name, role, site, active, created_at"


def add_staff(auth: Auth, s: StaffInput, actor: str) -> dict[str, Any]:
    """Blocking (argon2): create the account, audited. A removed account's email
    is taken over (the account is active again with the new role, site and password)."""
    email = s.email.lower()
    password = s.password or generate_password()
    name = s.name or email.split("@")[0]
    with auth.db.read() as tx:
        old = tx.one("SELECT id, active FROM staff_accounts WHERE email = ?", (email,))
    if old is not None and old["active"]:
        raise Conflict(f"staff account {email!r} exists", field="email")
    if old is None:
        staff_id = auth.create_staff(email, name, password, s.role, s.site)
    else:
        staff_id = auth.reactivate_staff(old["id"], name, password, s.role, s.site)
    with auth.db.write() as tx:
        sites.audit(tx, actor, "staff.add", email, {"role": s.role, "site": s.site,
                                                     "id": staff_id})  # fmt: skip
        row = tx.one(f"SELECT {_COLUMNS} FROM staff_accounts WHERE id = ?", (staff_id,))
    assert row is not None
    out = _row(row)
    if s.password is None:
        out["password"] = password  # generated: shown this once
    return out


def list_staff(db: Database) -> list[dict[str, Any]]:
    with db.read() as tx:
        rows = tx.all(f"SELECT {_COLUMNS} FROM staff_accounts ORDER BY email")
    return [_row(r) for r in rows]


def remove_staff(db: Database, *, actor: str, email: str | None = None,
                 staff_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Disable the account and drop its tokens (refused at its next request), audited.
    The last active admin stays: the chain would have no one to add staff."""
    field, value = ("email", (email or "").lower()) if staff_id is None else ("id", staff_id)
    with db.write() as tx:
        row = tx.one(f"SELECT {_COLUMNS} FROM staff_accounts WHERE {field} = ?", (value,))
        if row is None or not row["active"]:
            raise NotFound("staff account", value)
        if row["role"] == "admin" and _active_admins(tx) <= 1:
            raise Conflict("the chain's last admin stays; add another admin first", field=field)
        tx.execute("UPDATE staff_accounts SET active = 0 WHERE id = ?", (row["id"],))
        tx.execute("DELETE FROM api_tokens WHERE kind = 'staff' AND subject = ?", (row["id"],))
        sites.audit(tx, actor, "staff.remove", row["email"], {"id": row["id"]})
    return {**_row(row), "active": False}


def _active_admins(tx: Tx) -> int:
    sql = "SELECT COUNT(*) AS n FROM staff_accounts WHERE role = 'admin' AND active = 1"
    return int(tx.scalar(sql))


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed("password", f"at least {MIN_PASSWORD} characters")


# ---- HTTP (chain admin) ----------------------------------------------------------------
async def http_add(c: Ctx) -> Any:
    return await c.run(add_staff, c.auth, c.body, c.me.actor)


async def http_list(c: Ctx) -> Any:
    return {"staff": await c.run(list_staff, c.shop.db)}


async def http_remove(c: Ctx) -> Any:
    raw = c.param("id")
    if len(raw) > 64:
        raise ValidationFailed("id", "a staff account id (at most 64 characters)")
    return await c.run(remove_staff, c.shop.db, actor=c.me.actor, staff_id=raw)


STAFF_ROUTES: tuple[Route, ...] = (
    Route("GET", "staff", http_list, "admin", "The chain's staff accounts and their sites"),
    Route("POST", "staff", http_add, "admin",
          "Add a staff account, optionally bound to a site; a generated password is shown"
          " once (audited)", StaffInput, status=201),
    Route("POST", "staff/{id}/remove", http_remove, "admin",
          "Disable a staff account and drop its tokens (audited)", EmptyInput),
)  # fmt: skip
