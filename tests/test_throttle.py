"""The one rule for failed secrets (edge/throttle.py), as logins and PINs use it."""

from __future__ import annotations

from edge.throttle import Throttle


def test_login_rule_free_attempts_then_doubling_lockouts_up_to_the_cap() -> None:
    login = Throttle(free_attempts=3, lockout_s=2.0, max_lockout_s=5.0)
    failures, lockouts = 0, []
    for _ in range(6):
        counted = login.failure(failures, None, now=100.0)
        failures = counted.failures
        lockouts.append(counted.lockout_s)
        assert counted.locked_until == (100.0 + counted.lockout_s if counted.lockout_s else 0.0)
    assert lockouts == [0.0, 0.0, 0.0, 2.0, 4.0, 5.0]
    # Attempts allowed at once: the free ones left, then one at a time.
    assert [login.attempts_now(n) for n in (0, 2, 3, 9)] == [3, 1, 1, 1]


def test_pin_rule_locks_at_the_limit_and_forgets_failures_outside_its_window() -> None:
    pin = Throttle(free_attempts=4, lockout_s=300.0, max_lockout_s=300.0, window_s=300.0)
    counted = pin.failure(0, None, now=0.0)
    for t in (1.0, 2.0, 3.0):
        counted = pin.failure(counted.failures, counted.first_failure, now=t)
    assert counted.locked_until == 0.0 and counted.failures == 4
    fifth = pin.failure(counted.failures, counted.first_failure, now=4.0)
    assert fifth.locked_until == 304.0
    # Once the lockout is over the window has passed too: a fresh count.
    after = pin.failure(fifth.failures, fifth.first_failure, now=305.0)
    assert (after.failures, after.first_failure, after.locked_until) == (1, 305.0, 0.0)
