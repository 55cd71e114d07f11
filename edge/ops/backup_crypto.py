"""Encryption of backup files: AES-256-GCM in 1 MiB chunks, key from a secret.

The backup key is a secret kept outside the backup (a 0600 file, the systemd
credential ``backup-key``, or typed at the ``restore`` prompt).  Each backup
draws a random salt; scrypt turns secret + salt into the AES key, so the same
secret never encrypts two backups under one key.

File format: ``MAGIC`` then frames of ``4-byte big-endian length ||
ciphertext``.  Each chunk's nonce is a per-file random 8-byte prefix plus the
chunk counter; the associated data binds the file name, the chunk index and a
last-chunk flag, so chunks cannot be swapped, reordered, moved between files
or cut off at the end without the tag check failing.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from edge.ops import layout
from edge.ops.errors import BackupKeyError, RestoreError

MAGIC = b"CSEBAK1\n"
CHUNK = 1 << 20
SALT_BYTES = 16
PREFIX_BYTES = 8
# scrypt cost: ~0.1 s and 32 MiB on a Pi 5, once per backup / restore.
SCRYPT_N = 1 << 15
SCRYPT_R = 8
SCRYPT_P = 1
KEY_CREDENTIAL = layout.BACKUP_KEY_CREDENTIAL
MIN_SECRET_CHARS = 16
# Encrypted under the derived key in the manifest: a wrong key is told apart
# from a damaged file before anything is decrypted.
CHECK_TEXT = b"coresync-edge backup key check"


def new_secret() -> str:
    """A fresh backup key: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def read_secret(path: Path) -> str:
    """The secret in a key file (surrounding whitespace ignored)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise BackupKeyError(f"backup key {path}: cannot read: {exc.strerror or exc}") from exc
    return check_secret(text, str(path))


def check_secret(text: str, where: str) -> str:
    if len(text) < MIN_SECRET_CHARS:
        raise BackupKeyError(
            f"backup key {where}: too short ({len(text)} characters, at least {MIN_SECRET_CHARS})"
        )
    return text


def default_key_path() -> Path | None:
    """The systemd credential ``backup-key`` when the unit loads one."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / KEY_CREDENTIAL).is_file():
        return Path(cred_dir) / KEY_CREDENTIAL
    return None


def derive_key(secret: str, salt: bytes) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(secret.encode())


def seal_check(key: bytes) -> bytes:
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, CHECK_TEXT, b"check")


def open_check(key: bytes, sealed: bytes) -> None:
    try:
        AESGCM(key).decrypt(sealed[:12], sealed[12:], b"check")
    except (InvalidTag, ValueError):
        raise BackupKeyError("wrong backup key: this backup was made with another key") from None


def _aad(name: str, index: int, last: bool) -> bytes:
    return f"{name}\0{index}\0{int(last)}".encode()


def _chunks(src: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Chunks of ``src`` with a flag on the last one (an empty file is one empty chunk)."""
    current = src.read(CHUNK)
    while True:
        following = src.read(CHUNK)
        yield current, not following
        if not following:
            return
        current = following


def encrypt_file(key: bytes, name: str, src: Path, dst: Path) -> None:
    """Encrypt ``src`` into a new 0600 file ``dst``, fsynced."""
    aead = AESGCM(key)
    prefix = secrets.token_bytes(PREFIX_BYTES)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
        out.write(MAGIC + prefix)
        for index, (chunk, last) in enumerate(_chunks(inp)):
            nonce = prefix + struct.pack(">I", index)
            sealed = aead.encrypt(nonce, chunk, _aad(name, index, last))
            out.write(struct.pack(">I", len(sealed)) + sealed)
        out.flush()
        os.fsync(out.fileno())


def decrypt_file(key: bytes, name: str, src: Path, dst: Path) -> None:
    """Decrypt ``src`` into ``dst`` (created 0600); RestoreError if anything is off."""
    aead = AESGCM(key)
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
        head = inp.read(len(MAGIC) + PREFIX_BYTES)
        if head[: len(MAGIC)] != MAGIC:
            raise RestoreError(f"{src}: not an encrypted backup file")
        prefix = head[len(MAGIC) :]
        index = 0
        while True:
            size_bytes = inp.read(4)
            if len(size_bytes) < 4:
                raise RestoreError(f"{src}: cut off (no last chunk)")
            (size,) = struct.unpack(">I", size_bytes)
            sealed = inp.read(size)
            nonce = prefix + struct.pack(">I", index)
            last = not inp.peek(1)
            try:
                out.write(aead.decrypt(nonce, sealed, _aad(name, index, last)))
            except InvalidTag:
                raise RestoreError(f"{src}: chunk {index} fails authentication") from None
            if last:
                break
            index += 1
        out.flush()
        os.fsync(out.fileno())
