"""Encrypted face-template store on SQLite, with crypto-shredding on destruction.

Each member has a random 256-bit data key, stored only wrapped (AES-GCM) by a
master key that lives outside the database: a 0600 key file, or a systemd
credential (``$CREDENTIALS_DIRECTORY/<name>``).  Templates are AES-GCM
encrypted with the member key; the associated data binds each ciphertext to
its member id and template id, so rows cannot be swapped between members.

``destroy_member`` deletes the templates and the wrapped key (without the key
any copy of the old ciphertext, e.g. in a backup, is unreadable) and records
the destruction, which is kept forever.  ``PRAGMA secure_delete=ON`` zeroes
the freed bytes in the file.

The API is synchronous (SQLite); call it from an executor on the event loop.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.migrations import migrate
from vision.embed import EMBEDDING_DIM
from vision.errors import MasterKeyError, TemplateDecryptError, TemplateStoreError

FloatArray = npt.NDArray[np.float32]
KEY_BYTES = 32
NONCE_BYTES = 12
CREDENTIAL_NAME = "vision-master-key"

STEPS = [
    """
    CREATE TABLE member_keys (
        member_id TEXT PRIMARY KEY,
        nonce BLOB NOT NULL,
        wrapped_key BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE face_templates (
        member_id TEXT NOT NULL REFERENCES member_keys(member_id),
        template_id TEXT NOT NULL PRIMARY KEY,
        consent_id TEXT NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX face_templates_member ON face_templates(member_id);
    CREATE TABLE template_destructions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        member_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        template_count INTEGER NOT NULL,
        destroyed_at TEXT NOT NULL
    );
    """,
]


def load_master_key(path: Path | None = None, credential: str = CREDENTIAL_NAME) -> bytes:
    """The master key: the systemd credential when present, else ``path``
    (created with mode 0600 if absent)."""
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / credential).is_file():
        return _read_key(Path(cred_dir) / credential)
    if path is None:
        raise MasterKeyError(f"no systemd credential {credential!r} and no key file path given")
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _read_key(path)  # another process created it first
        except OSError as exc:
            raise MasterKeyError(f"cannot create master key file {path}: {exc}") from exc
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(KEY_BYTES))
            f.flush()
            os.fsync(f.fileno())
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise MasterKeyError(f"cannot read master key {path}: {exc}") from exc
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"master key {path} has {len(key)} bytes, expected {KEY_BYTES}")
    return key


def _template_ad(member_id: str, template_id: str) -> bytes:
    return f"coresync/face-template/v1\0{member_id}\0{template_id}".encode()


def _member_key_ad(member_id: str) -> bytes:
    return f"coresync/member-key/v1\0{member_id}".encode()


def _now() -> str:
    return datetime.now(UTC).isoformat()


class TemplateStore:
    """One SQLite connection; not thread-safe (use one store per thread/executor)."""

    def __init__(self, db_path: Path, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise MasterKeyError(f"master_key: expected {KEY_BYTES} bytes, got {len(master_key)}")
        self._master = AESGCM(master_key)
        try:
            self._conn = sqlite3.connect(db_path, isolation_level=None)
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute("PRAGMA journal_mode=WAL")
            # The CLI works beside the daemon: wait for its writes, do not fail.
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.execute("PRAGMA foreign_keys=ON")
            migrate(self._conn, "vision", STEPS)
        except sqlite3.Error as exc:
            raise TemplateStoreError(f"cannot open template store {db_path}: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    def _member_key(self, member_id: str, create: bool) -> AESGCM | None:
        row = self._conn.execute(
            "SELECT nonce, wrapped_key FROM member_keys WHERE member_id = ?", (member_id,)
        ).fetchone()
        if row is None:
            if not create:
                return None
            key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
            nonce = secrets.token_bytes(NONCE_BYTES)
            wrapped = self._master.encrypt(nonce, key, _member_key_ad(member_id))
            self._conn.execute(
                "INSERT INTO member_keys (member_id, nonce, wrapped_key, created_at)"
                " VALUES (?, ?, ?, ?)",
                (member_id, nonce, wrapped, _now()),
            )
            return AESGCM(key)
        try:
            return AESGCM(self._master.decrypt(row[0], row[1], _member_key_ad(member_id)))
        except InvalidTag as exc:
            raise TemplateDecryptError(
                f"member key of {member_id!r} does not authenticate (wrong master key?)"
            ) from exc

    def enroll(self, member_id: str, embeddings: FloatArray, consent_id: str) -> list[str]:
        """Store one or more (128,) embeddings; returns the new template ids."""
        if not member_id:
            raise ValueError("member_id: must not be empty")
        if not consent_id:
            raise ValueError("consent_id: must not be empty")
        vectors = np.asarray(embeddings, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None]
        if vectors.ndim != 2 or vectors.shape[1] != EMBEDDING_DIM or not len(vectors):
            raise ValueError(
                f"embeddings: expected (n, {EMBEDDING_DIM}) floats, got {vectors.shape}"
            )
        if not np.all(np.isfinite(vectors)):
            raise ValueError("embeddings: contain NaN or infinity")
        ids: list[str] = []
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            key = self._member_key(member_id, create=True)
            assert key is not None
            for vec in vectors:
                template_id = str(uuid.uuid4())
                nonce = secrets.token_bytes(NONCE_BYTES)
                ct = key.encrypt(nonce, vec.tobytes(), _template_ad(member_id, template_id))
                self._conn.execute(
                    "INSERT INTO face_templates (member_id, template_id, consent_id, nonce,"
                    " ciphertext, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (member_id, template_id, consent_id, nonce, ct, _now()),
                )
                ids.append(template_id)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return ids

    def load_all(self) -> tuple[npt.NDArray[np.str_], FloatArray]:
        """(member ids (n,), templates (n, 128)) for :class:`vision.matcher.Matcher`."""
        rows = self._conn.execute(
            "SELECT member_id, template_id, nonce, ciphertext FROM face_templates"
            " ORDER BY member_id, created_at"
        ).fetchall()
        keys: dict[str, AESGCM] = {}
        members: list[str] = []
        matrix = np.empty((len(rows), EMBEDDING_DIM), dtype=np.float32)
        for i, (member_id, template_id, nonce, ct) in enumerate(rows):
            if member_id not in keys:
                key = self._member_key(member_id, create=False)
                if key is None:
                    raise TemplateStoreError(f"templates of {member_id!r} have no member key")
                keys[member_id] = key
            try:
                plain = keys[member_id].decrypt(nonce, ct, _template_ad(member_id, template_id))
            except InvalidTag as exc:
                raise TemplateDecryptError(
                    f"template {template_id} of {member_id!r} does not authenticate"
                ) from exc
            matrix[i] = np.frombuffer(plain, dtype=np.float32)
            members.append(member_id)
        return np.asarray(members, dtype=str), matrix

    def count(self, member_id: str | None = None) -> int:
        if member_id is None:
            row = self._conn.execute("SELECT COUNT(*) FROM face_templates").fetchone()
        else:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM face_templates WHERE member_id = ?", (member_id,)
            ).fetchone()
        return int(row[0])

    def destroy_member(self, member_id: str, reason: str) -> int:
        """Delete the member's templates and wrapped key, record it; returns templates deleted.

        Recorded even when nothing was enrolled, so a withdrawal is always on file.
        """
        if not reason:
            raise ValueError("reason: must not be empty")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            n = self._conn.execute(
                "DELETE FROM face_templates WHERE member_id = ?", (member_id,)
            ).rowcount
            self._conn.execute("DELETE FROM member_keys WHERE member_id = ?", (member_id,))
            self._conn.execute(
                "INSERT INTO template_destructions (member_id, reason, template_count,"
                " destroyed_at) VALUES (?, ?, ?, ?)",
                (member_id, reason, n, _now()),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        # Move the freed (zeroed) pages out of the WAL into the main file and empty the WAL.
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(n)

    def destructions(self, member_id: str) -> list[tuple[str, int, str]]:
        """(reason, template_count, destroyed_at) of each destruction of ``member_id``."""
        rows = self._conn.execute(
            "SELECT reason, template_count, destroyed_at FROM template_destructions"
            " WHERE member_id = ? ORDER BY id",
            (member_id,),
        ).fetchall()
        return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]
