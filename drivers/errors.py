"""Exception tree for drivers.

"The device said no" (:class:`DeviceRejected`) is kept apart from "we could
not talk to it" (:class:`TransportError` and its children), because callers
react differently: a rejection is final, an I/O failure may be retried.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base of every driver error."""


class TransportError(DriverError):
    """I/O failure: connection refused or lost, serial error, broker gone."""


class DeviceTimeout(TransportError):
    """No answer or no confirmation from the device in time."""


class DeviceUnavailable(DriverError):
    """The device is known to be offline; nothing was sent."""


class DeviceRejected(DriverError):
    """The device (or its gateway) answered and refused the command."""


class UnsupportedCommand(DriverError):
    """The command does not fit this device (wrong kind or unmapped field)."""


class DeviceClamped(DeviceRejected):
    """The device answered with other values than asked (a bulb asked 5000 K
    holds 4000 K): ``values`` maps each field it did not take to what it holds."""

    def __init__(self, message: str, values: dict[str, object]) -> None:
        super().__init__(message)
        self.values = values
