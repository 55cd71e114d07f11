"""The real parts the tests talk to, and what a missing one does.

Locally a missing part skips the test, naming the part and how to get it.
With ``CI=true`` it fails the test instead: a CI run must never pass because
the thing it should have tested was not there.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# How to get each part on a fresh Debian/Ubuntu machine (`make test` does all
# of these through `make system-deps`).
HOW = {
    "Mosquitto": "apt-get install mosquitto (make system-deps)",
    "mosquitto-clients": "apt-get install mosquitto-clients (make system-deps)",
    "socat": "apt-get install socat (make system-deps)",
    "Chromium": "apt-get install chromium (make system-deps)",
    "PostgreSQL": "apt-get install postgresql and start it (make system-deps)",
    "../shared": "clone the project with its shared/ data folder beside it",
    "systemd-analyze": "apt-get install systemd",
    "tmpfs mount": "run the tests as root (CI does)",
    "console script": "pip install -e . (make test builds .venv)",
    "playwright": "pip install -e '.[dev]' (make test builds .venv)",
    "schemathesis": "pip install -e '.[dev]' (make test builds .venv)",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(part: str, detail: str = "") -> NoReturn:
    """Skip (locally) or fail (CI=true): ``part`` is not on this machine."""
    how = HOW.get(part, "")
    msg = f"{part} is missing" + (f" ({detail})" if detail else "")
    if how:
        msg += f"; get it: {how}"
    if in_ci():
        pytest.fail(f"CI=true and {msg}", pytrace=False)
    pytest.skip(msg)
