"""Login throttling that concurrency cannot bypass, and bounded hashing.

The lockout state lives in SQLite (``api_login_failures``), but a failure is
written only after its password check, so 50 wrong passwords sent at once
would all be checked before the first one counted.  Here every attempt is
*charged* before its hash runs: under one lock the stored failures are read
and the attempts already in flight are added; an attempt beyond what the
throttle allows (per account and per client) is refused with 429 without
hashing.  The charge is released only after the outcome is stored.

Password hashing (argon2id, tens of MiB each) is bounded by a small
semaphore; an attempt that cannot get a slot within ``login_hash_wait_s``
gets 429 too, so bad logins cannot starve device commands of CPU or memory.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from edge.api import db
from edge.api.errors import ApiError
from edge.api.settings import ApiSettings
from edge.store import Store
from edge.throttle import Throttle


class LoginRefused(ApiError):
    """429: locked out, too many attempts in flight, or no hashing slot."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        wait = int(retry_after_s) + 1
        super().__init__(
            "too_many_attempts",
            f"{reason}; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )


class LoginGuard:
    def __init__(self, store: Store, settings: ApiSettings, throttle: Throttle) -> None:
        self.store = store
        self.settings = settings
        self.throttle = throttle
        self._lock = asyncio.Lock()
        self._in_flight: collections.Counter[str] = collections.Counter()
        self.hash_slots = asyncio.Semaphore(settings.login_hash_concurrency)
        self.checks = 0  # password checks run (for metrics and tests)

    @contextlib.asynccontextmanager
    async def attempt(self, keys: Sequence[str]) -> AsyncIterator[None]:
        """Charge one attempt on every key, or raise LoginRefused; held until the
        body (hash, then storing the outcome) is done."""
        await self._charge(keys)
        try:
            yield
        finally:
            for key in keys:
                self._in_flight[key] -= 1
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]

    async def _charge(self, keys: Sequence[str]) -> None:
        async with self._lock:
            now = time.time()
            state = await self.store.call(lambda c: db.failure_state(c, list(keys)))
            for key in keys:
                failures, locked_until = state.get(key, (0, 0.0))
                if locked_until > now:
                    raise LoginRefused("too many failed logins", locked_until - now)
                allowed = self.throttle.attempts_now(failures)
                if self._in_flight[key] >= allowed:
                    raise LoginRefused(
                        "too many login attempts at once", self.settings.login_lockout_base_s
                    )
            for key in keys:
                self._in_flight[key] += 1

    async def bounded(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (a password hash or check) in a hashing slot, off the loop."""
        try:
            await asyncio.wait_for(self.hash_slots.acquire(), self.settings.login_hash_wait_s)
        except TimeoutError:
            raise LoginRefused("the server is busy checking passwords", 1.0) from None
        try:
            self.checks += 1
            return await asyncio.get_running_loop().run_in_executor(None, fn)
        finally:
            self.hash_slots.release()
