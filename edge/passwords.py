"""Hashing of passwords and PINs: argon2id, in one place.

Used by the LAN API's staff accounts, the door's PINs, the cloud's staff
accounts and members' website passwords.  (Edge-node secrets are 256 random
bits, not passwords: the cloud stores them as SHA-256, cloud_api/auth.py.)
Hashing is deliberately slow (tens of MiB, tens of ms): callers run it off
the event loop, in an executor or a worker thread.  :meth:`Passwords.verify`
spends the same work when nothing is stored (unknown user, member without a
PIN), so timing does not tell whether an account exists.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """argon2id with the given cost (argon2-cffi's defaults unless told)."""

    def __init__(self, *, time_cost: int | None = None, memory_kib: int | None = None) -> None:
        defaults = PasswordHasher()
        self._hasher = PasswordHasher(
            time_cost=defaults.time_cost if time_cost is None else time_cost,
            memory_cost=defaults.memory_cost if memory_kib is None else memory_kib,
        )
        self._dummy: str | None = None

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify(self, stored: str | None, secret: str) -> bool:
        """True when ``secret`` matches ``stored``; False for a mismatch, a
        malformed hash, or nothing stored (after the same work as a check)."""
        if stored is None:
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_hex(8))
            target = self._dummy
        else:
            target = stored
        try:
            return bool(self._hasher.verify(target, secret)) and stored is not None
        except (VerificationError, InvalidHashError):
            return False
