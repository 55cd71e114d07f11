"""No biometric data leaves the edge: a last check on every outgoing payload.

Attendance events are built from a strict model with no such fields; this scan
is the defence in depth that a test also exercises.
"""

from __future__ import annotations

import re
from typing import Any

from sync.errors import BiometricDataRefused

# Key names that could carry a face, a template or anything derived from one.
_FORBIDDEN = re.compile(
    r"(template|embedding|descriptor|encoding|biometric|face|image|photo|picture|"
    r"vector|landmark|liveness|frame|jpeg|png)",
    re.IGNORECASE,
)


def biometric_keys(payload: Any, path: str = "") -> list[str]:
    """Dotted paths of every key in ``payload`` whose name looks biometric."""
    found: list[str] = []
    if isinstance(payload, dict):
        for key, value in payload.items():
            here = f"{path}.{key}" if path else str(key)
            if _FORBIDDEN.search(str(key)):
                found.append(here)
            found += biometric_keys(value, here)
    elif isinstance(payload, list):
        for i, value in enumerate(payload):
            found += biometric_keys(value, f"{path}[{i}]")
    return found


def assert_no_biometrics(entity: str, payload: Any) -> None:
    keys = biometric_keys(payload)
    if keys:
        raise BiometricDataRefused(f"{entity} payload carries biometric fields: {keys}")
