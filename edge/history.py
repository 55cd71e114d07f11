"""Device state history that lasts: raw rows for a while, then per minute.

``state_history`` holds one row per stored change (change-only: a poll that
reads the same values writes nothing).  Rows older than
``retention.state_history_raw_hours`` are folded into
``state_history_minute``: one row per device, UTC minute and field with the
min/max/mean of the numeric readings in that minute, how many there were and
the last value (any type: mode, on/off, availability), so the state at any
minute can be rebuilt.  Minute rows older than ``retention.state_history_days``
are deleted.  Runs on the store's database thread, inside the retention pass.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

BATCH = 2000

# A minute split across two passes merges: min of mins, max of maxes, means
# weighted by their sample counts.
_MERGE_MINUTE = """
INSERT INTO state_history_minute (device_id, minute, field, min, max, mean, samples, last)
VALUES (?,?,?,?,?,?,?,?)
ON CONFLICT (device_id, minute, field) DO UPDATE SET
  min = MIN(COALESCE(min, excluded.min), COALESCE(excluded.min, min)),
  max = MAX(COALESCE(max, excluded.max), COALESCE(excluded.max, max)),
  mean = CASE WHEN mean IS NULL THEN excluded.mean WHEN excluded.mean IS NULL THEN mean
         ELSE (mean * samples + excluded.mean * excluded.samples) / (samples + excluded.samples)
         END,
  samples = samples + excluded.samples,
  last = excluded.last
"""


@dataclass(slots=True)
class _Minute:
    lo: float | None = None
    hi: float | None = None
    total: float = 0.0
    numbers: int = 0
    samples: int = 0
    last: Any = None

    def add(self, value: Any) -> None:
        self.samples += 1
        self.last = value
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
            self.lo = number if self.lo is None else min(self.lo, number)
            self.hi = number if self.hi is None else max(self.hi, number)
            self.total += number
            self.numbers += 1

    @property
    def mean(self) -> float | None:
        return round(self.total / self.numbers, 6) if self.numbers else None


def _fields(availability: str, state: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    yield "availability", availability
    for key, value in state.items():
        if key == "values" and isinstance(value, dict):
            yield from value.items()  # a sensor's readings, by their own names
        elif value is not None:
            yield key, value


def compact_history(
    conn: sqlite3.Connection, raw_before: str, minutes_before: str
) -> dict[str, int]:
    """Fold raw rows with ``ts < raw_before`` into minute rows; delete minute
    rows with ``minute < minutes_before``.  ISO-8601 UTC strings, as stored."""
    folded = 0
    while True:
        rows = conn.execute(
            "SELECT id, device_id, ts, availability, state FROM state_history"
            " WHERE ts < ? ORDER BY id LIMIT ?",
            (raw_before, BATCH),
        ).fetchall()
        if not rows:
            break
        minutes: dict[tuple[str, str, str], _Minute] = {}
        for _id, device_id, ts, availability, state in rows:
            for name, value in _fields(availability, json.loads(state)):
                minutes.setdefault((device_id, ts[:16], name), _Minute()).add(value)
        with conn:
            conn.execute("BEGIN")
            for (device_id, minute, name), agg in minutes.items():
                _merge(conn, device_id, minute, name, agg)
            conn.execute(
                "DELETE FROM state_history WHERE id <= ? AND ts < ?", (rows[-1][0], raw_before)
            )
        folded += len(rows)
    expired = conn.execute(
        "DELETE FROM state_history_minute WHERE minute < ?", (minutes_before[:16],)
    ).rowcount
    return {"state_history": folded, "state_history_minute": expired}


def _merge(conn: sqlite3.Connection, device_id: str, minute: str, name: str, agg: _Minute) -> None:
    conn.execute(
        _MERGE_MINUTE,
        (device_id, minute, name, agg.lo, agg.hi, agg.mean, agg.samples, json.dumps(agg.last)),
    )
