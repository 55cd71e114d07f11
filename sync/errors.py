"""Exception tree of the sync engine.

``CloudUnreachable`` is I/O (retry with backoff); ``CloudRefused`` is the
cloud saying no (bad credentials, a malformed batch): retrying the same
request will not help, so the job reports it and waits the maximum delay.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base of every sync failure."""


class CloudUnreachable(SyncError):
    """Network failure, timeout, truncated or garbled response, or a 5xx."""


class CloudRefused(SyncError):
    """The cloud answered with a 4xx: credentials or the request itself are wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"cloud refused ({status}): {message}")
        self.status = status


class BiometricDataRefused(SyncError):
    """An outgoing payload carried a biometric field; it is never sent."""


class ConfigError(SyncError):
    """The sync configuration cannot be used (e.g. the node secret is missing)."""


class CloudFault(CloudUnreachable):
    """The cloud answered, but not in the protocol (a field missing or of the wrong type).

    A fault of the cloud, not of this edge: retried with backoff like an outage,
    never surfacing as a ``KeyError`` from the sync job.
    """
