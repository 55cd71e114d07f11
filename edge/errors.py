"""Exception tree of the edge core.

Callers (LAN API, MQTT scene topic, CLI) map these to their own error form:
``NotFound`` → 404, ``LimitViolation``/``InvalidCommand`` → 422 naming the
field, ``Forbidden`` → 403.  Driver failures stay in ``drivers.errors``.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every edge-core error."""


class ConfigError(EdgeError):
    """The site configuration is invalid; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class NotFound(EdgeError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"unknown {what}: {ident!r}")
        self.what = what
        self.ident = ident


class InvalidCommand(EdgeError):
    """A command that cannot apply to the device (wrong kind, empty, bad field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class LimitViolation(InvalidCommand):
    """A value outside the device's configured limits; nothing was sent."""


class StorageError(EdgeError):
    """The local database could not be written (disk full, I/O error)."""
