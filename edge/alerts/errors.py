"""Exceptions of the alert channels."""

from __future__ import annotations

from edge.errors import EdgeError


class AlertError(EdgeError):
    """Base of the alert errors."""


class DeliveryFailed(AlertError):
    """A message did not reach its channel; the reason names no secret."""
