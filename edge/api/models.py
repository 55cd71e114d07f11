"""Request bodies, validated strictly: unknown fields and wrong types are 422s
naming the field, before anything reaches the core or a device."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from drivers.config import ColorValue
from drivers.model import ClimateMode
from edge.api.errors import ApiError

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,31}$"
Role = Literal["staff", "manager", "admin"]


class Body(BaseModel):
    # strict: "80" is not a number and true is not 1 (docs/api.md: wrong types
    # are 422s); an int is still a valid float.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


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


def parse_body(model: type[M], data: dict[str, Any]) -> M:
    """Validate ``data``; the first problem becomes a 422 ``invalid_field`` naming it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise ApiError("invalid_field", f"{field}: {message}", field=field) from None
