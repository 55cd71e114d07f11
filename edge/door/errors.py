"""Exception tree of the door feature.

"The door said no" (a refusal with a reason a person can act on) is kept
apart from "the door could not answer" (storage or vision failure).
"""

from __future__ import annotations


class DoorError(Exception):
    """Base of every door error."""


class DoorRefused(DoorError):
    """A request was understood and refused; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConsentRequired(DoorRefused):
    """Biometric enrollment without an active consent record."""


class UnknownMember(DoorRefused):
    """The member does not exist in the shop."""


class EnrollmentRejected(DoorRefused):
    """Photos failed the quality gate; ``problems`` maps photo name to reasons."""

    def __init__(self, message: str, problems: dict[str, list[str]]) -> None:
        super().__init__(message, field="photos")
        self.problems = problems


class PinThrottled(DoorRefused):
    """Too many wrong PINs: try again after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message, field="pin")
        self.retry_after_s = retry_after_s


class DoorUnavailable(DoorError):
    """The door service is not running, or vision/storage cannot answer."""
