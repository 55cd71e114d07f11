"""Errors of the MQTT driver package.

Callers of :class:`drivers.model.Device` only ever see the shared tree in
:mod:`drivers.errors`; these two stay inside the package: a codec error is
logged and the payload dropped, a credential error fails a connect attempt.
"""

from __future__ import annotations

from drivers.errors import DriverError, TransportError


class MqttCodecError(DriverError, ValueError):
    """A payload that does not follow the protocol (bad JSON, wrong types, unknown values)."""


class MqttCredentialError(TransportError):
    """The configured password source is missing or unreadable."""
