"""The door keypad: its token, and member PINs (format, hashing, lockout).

The keypad authenticates with a token generated once into a 0600 file in the
data dir (``door-keypad.token``); only its SHA-256 is kept in memory.  PINs are
hashed with the site's password hasher (Argon2) and verified off the loop;
an unknown member or a member with no PIN costs the same work, so timing
reveals nothing.  ``pin_max_attempts`` wrong PINs within ``pin_lockout_s``
lock that member and that keypad for ``pin_lockout_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from edge.door.config import DoorConfig
from edge.door.errors import DoorRefused
from edge.passwords import Passwords
from edge.throttle import Throttle

PIN_DIGITS = (4, 8)
KEYPAD_TOKEN_FILE = "door-keypad.token"


class Keypad:
    def __init__(self, config: DoorConfig) -> None:
        self.hasher = Passwords()
        lockout = config.pin_lockout_s
        self.throttle = Throttle(config.pin_max_attempts - 1, lockout, lockout, lockout)
        self._token_hash = ""

    async def load_token(self, data_dir: Path) -> None:
        self._token_hash = await asyncio.to_thread(_token_hash, data_dir / KEYPAD_TOKEN_FILE)

    def token_ok(self, token: str) -> bool:
        digest = hashlib.sha256(token.encode()).hexdigest()
        return bool(token) and hmac.compare_digest(digest, self._token_hash)

    @staticmethod
    def check_format(pin: str) -> None:
        if not (pin.isdigit() and PIN_DIGITS[0] <= len(pin) <= PIN_DIGITS[1]):
            raise DoorRefused(f"pin: {PIN_DIGITS[0]} to {PIN_DIGITS[1]} digits", field="pin")

    async def hash_pin(self, pin: str) -> str:
        self.check_format(pin)
        return await asyncio.to_thread(self.hasher.hash, pin)

    async def verify(self, stored: str | None, pin: str) -> bool:
        # Unknown member or no PIN: the same work, so timing reveals nothing.
        return await asyncio.to_thread(self.hasher.verify, stored, pin)


def _token_hash(path: Path) -> str:
    """The keypad's token: generated once into a 0600 file."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return hashlib.sha256(path.read_text().strip().encode()).hexdigest()
