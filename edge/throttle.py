"""The one rule for counting failed secrets: staff logins, tablet pairing codes
and door PINs.

A key (a username, a client address, a member, a keypad) may fail
``free_attempts`` times; each failure past them locks the key, first for
``lockout_s``, doubling up to ``max_lockout_s``.  With ``window_s`` set,
failures older than that (counted from the first) are forgotten.  A success
clears the key.  Pure arithmetic: each store keeps its counters in its own
database (``api_login_failures`` in edge.db, ``pin_failures`` in door.db)
and asks this rule what a failure means.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.backoff import capped_exponential


@dataclass(frozen=True)
class Counted:
    """A key's counter after one more failure."""

    failures: int
    first_failure: float
    locked_until: float  # 0.0: not locked
    lockout_s: float


@dataclass(frozen=True)
class Throttle:
    free_attempts: int
    lockout_s: float
    max_lockout_s: float
    window_s: float | None = None

    def failure(self, failures: int, first_failure: float | None, now: float) -> Counted:
        """What one more failure makes of a key with ``failures`` stored."""
        if (
            self.window_s is not None
            and first_failure is not None
            and now - first_failure > self.window_s
        ):
            failures, first_failure = 0, None
        failures += 1
        over = failures - self.free_attempts
        delay = (
            0.0 if over <= 0 else capped_exponential(over - 1, self.lockout_s, self.max_lockout_s)
        )
        first = now if first_failure is None else first_failure
        return Counted(failures, first, now + delay if delay else 0.0, delay)

    def attempts_now(self, failures: int) -> int:
        """Attempts that may run at once for a key with ``failures`` stored and no
        lockout in force: the free ones left, or, past them, one (its failure locks)."""
        return max(1, self.free_attempts - failures)
