"""Request bodies and query strings of the LAN API, and their parsers.

Each route declares its models in the route table; ``access.guarded`` parses
the request with them before the handler runs.  Bodies are strict (unknown
fields and wrong types are 422s naming the field, before anything reaches
the core or a device); the wording of every validation error comes from
``edge.shop.inputs``."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from drivers.config import ColorValue
from drivers.model import ClimateMode
from edge.shop.errors import ValidationFailed
from edge.shop.inputs import parse, parse_json

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,31}$"
Role = Literal["staff", "manager", "admin"]


class Body(BaseModel):
    # strict: "80" is not a number and true is not 1 (docs/api.md: wrong types
    # are 422s); an int is still a valid float.  defer_build: a model's validator
    # is built on its first use, not at import (most routes are rare; built
    # together the API's models held ~3 MB of an idle daemon).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)


class LoginBody(Body):
    username: str = Field(min_length=1, max_length=64, description="Staff username.")
    password: str = Field(min_length=1, max_length=1024, description="Password.")


class CommandBody(Body):
    """One device command; only the fields that apply to the device's kind."""

    on: StrictBool | None = Field(None, description="Light on/off.")
    brightness: StrictInt | None = Field(None, ge=0, le=100, description="Brightness, percent.")
    color_temp_k: StrictInt | None = Field(None, ge=1000, le=10000, description="Colour, K.")
    color: ColorValue | None = Field(
        None, description='Light colour: "#rrggbb", {"x", "y"} (CIE) or {"r", "g", "b"}.'
    )
    # JSON has no enums: the mode comes as its string value.
    mode: ClimateMode | None = Field(None, strict=False, description="Climate mode.")
    target_c: float | None = Field(None, ge=-10, le=130, description="Setpoint, degC.")
    locked: StrictBool | None = Field(None, description="Lock: true locks, false unlocks.")

    def values(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PairBody(Body):
    code: str = Field(min_length=1, max_length=32, description="Pairing code shown to staff.")
    name: str | None = Field(None, max_length=80, description="Label for the tablet.")


class NewUserBody(Body):
    username: str = Field(pattern=USERNAME_PATTERN, description="Lower-case login name.")
    password: str = Field(min_length=10, max_length=1024, description="At least 10 characters.")
    role: Role = Field("staff", description="staff, manager or admin.")


class UserPatchBody(Body):
    password: str | None = Field(None, min_length=10, max_length=1024, description="New password.")
    role: Role | None = Field(None, description="New role.")
    disabled: StrictBool | None = Field(None, description="Disable or re-enable the account.")


M = TypeVar("M", bound=BaseModel)


def parse_strict(model: type[M], raw: bytes) -> M:
    """Validate a JSON body (already known to be an object) in strict mode."""
    return parse_json(model, raw)


def parse_query(model: type[M], query: Any) -> M:
    """Validate a query string; repeated keys are refused rather than silently merged."""
    data: dict[str, str] = {}
    for key in query:
        values = query.getall(key)
        if len(values) > 1:
            raise ValidationFailed(key, "given more than once")
        data[key] = values[0]
    return parse(model, data)


# -- query strings of the routes outside the shop ------------------------------------------
class QueryString(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)  # built on first use, as Body


class LimitQuery(QueryString):
    limit: int = Field(100, ge=1, le=1000, description="At most this many, newest first.")


class HistoryQuery(QueryString):
    hours: int = Field(24, ge=1, le=168, description="How many hours back, 1 to 168.")


class AuditQuery(LimitQuery):
    action: str | None = Field(None, description="Only this action, e.g. user.create.")


class CommandsQuery(LimitQuery):
    device_id: str | None = Field(None, description="Only this device (room/device).")


class DoorEventsQuery(LimitQuery):
    member_id: str | None = Field(None, description="Only this member's door events.")


class DoorMembersQuery(QueryString):
    search: str | None = Field(None, description="Text in the member's name or email.")
    limit: int = Field(50, ge=1, le=1000, description="At most this many members.")


class WsQuery(QueryString):
    ticket: str | None = Field(
        None,
        max_length=256,
        description="One-time ticket from POST /api/v1/ws/ticket, for a browser that cannot "
        "set a header (the token itself never rides a URL).",
    )
