"""Exception tree for the vision pipeline.

Callers on the door path treat every :class:`VisionError` as "deny": the door
stays locked while the pipeline cannot give a trustworthy answer.
"""

from __future__ import annotations


class VisionError(Exception):
    """Base of every vision error."""


class ModelUnavailable(VisionError):
    """A model file or its runtime is missing (package not installed)."""


class CameraError(VisionError):
    """The frame source could not be opened or read."""


class WorkerError(VisionError):
    """The inference worker could not answer."""


class WorkerCrashed(WorkerError):
    """The worker process died; in-flight calls fail with this and it is restarted."""


class WorkerTimeout(WorkerError):
    """The worker did not answer in time; it is killed and restarted."""


class WorkerStopped(WorkerError):
    """The worker client was stopped (or never started)."""


class TemplateStoreError(VisionError):
    """The encrypted template store failed (I/O, schema, key)."""


class MasterKeyError(TemplateStoreError):
    """The master key is missing, unreadable or has the wrong size."""


class TemplateDecryptError(TemplateStoreError):
    """A template or member key did not authenticate (tampered or wrong key)."""
