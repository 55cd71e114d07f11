"""One ``doctor`` finding: OK / WARN / FAIL, what was seen, and a fix that never destroys data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["OK", "WARN", "FAIL"]
# A secret the config names but the environment does not hold.
CREDENTIALS_FIX = (
    "run with --credentials-dir /etc/coresync/credentials (as root) or set the variable"
)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.status:<4} {self.name}: {self.detail}"
        return text + (f"\n       fix: {self.fix}" if self.fix else "")


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "FAIL" for c in checks) else 0
