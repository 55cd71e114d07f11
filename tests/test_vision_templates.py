"""Encrypted template store on real SQLite files: encryption, crypto-shredding, secure delete."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vision.errors import MasterKeyError, TemplateDecryptError
from vision.matcher import Matcher
from vision.templates import TemplateStore, load_master_key


def _file_bytes(db: Path) -> bytes:
    data = db.read_bytes()
    wal = db.with_name(db.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def _checkpoint(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TemplateStore]:
    key = load_master_key(tmp_path / "master.key")
    s = TemplateStore(tmp_path / "vision.db", key)
    yield s
    s.close()


def _vectors(n: int, seed: int) -> np.ndarray[tuple[int, int], np.dtype[np.float32]]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, (n, 128)).astype(np.float32)


def test_master_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    key = load_master_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_master_key(path) == key


def test_systemd_credential_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vision-master-key").write_bytes(b"k" * 32)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_master_key(tmp_path / "unused.key") == b"k" * 32
    assert not (tmp_path / "unused.key").exists()


def test_short_master_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_bytes(b"short")
    with pytest.raises(MasterKeyError, match="5 bytes"):
        load_master_key(tmp_path / "bad.key")


def test_roundtrip_and_ciphertext_is_not_plaintext(store: TemplateStore, tmp_path: Path) -> None:
    a, b = _vectors(2, 1), _vectors(1, 2)
    store.enroll("alice", a, consent_id="consent-1")
    store.enroll("bob", b, consent_id="consent-2")
    assert store.count("alice") == 2 and store.count("bob") == 1 and store.count() == 3
    ids, matrix = store.load_all()
    assert sorted(ids.tolist()) == ["alice", "alice", "bob"]
    for member, vecs in (("alice", a), ("bob", b)):
        got = matrix[ids == member]
        assert sorted(map(bytes, got)) == sorted(map(bytes, vecs))
    _checkpoint(tmp_path / "vision.db")
    raw = _file_bytes(tmp_path / "vision.db")
    for vec in (*a, *b):
        assert vec.tobytes() not in raw
        assert vec.tobytes()[:16] not in raw
    consent = sqlite3.connect(tmp_path / "vision.db").execute(
        "SELECT DISTINCT consent_id FROM face_templates WHERE member_id='alice'"
    )
    assert consent.fetchall() == [("consent-1",)]
    assert Matcher(ids, matrix).match(a[0]).member_id == "alice"


def test_rows_swapped_between_members_do_not_decrypt(store: TemplateStore, tmp_path: Path) -> None:
    store.enroll("alice", _vectors(1, 1), consent_id="c")
    store.enroll("bob", _vectors(1, 2), consent_id="c")
    with sqlite3.connect(tmp_path / "vision.db") as conn:
        conn.execute("UPDATE face_templates SET member_id = 'bob' WHERE member_id = 'alice'")
    with pytest.raises(TemplateDecryptError):
        store.load_all()


def test_wrong_master_key_cannot_read(store: TemplateStore, tmp_path: Path) -> None:
    store.enroll("alice", _vectors(1, 1), consent_id="c")
    other = TemplateStore(tmp_path / "vision.db", os.urandom(32))
    try:
        with pytest.raises(TemplateDecryptError, match="alice"):
            other.load_all()
    finally:
        other.close()


def test_destroy_member_shreds_key_and_zeroes_bytes(store: TemplateStore, tmp_path: Path) -> None:
    db = tmp_path / "vision.db"
    store.enroll("alice", _vectors(3, 1), consent_id="c")
    store.enroll("bob", _vectors(1, 2), consent_id="c")
    with sqlite3.connect(db) as conn:
        old = conn.execute(
            "SELECT ciphertext FROM face_templates WHERE member_id='alice'"
        ).fetchall()
        wrapped = conn.execute(
            "SELECT wrapped_key FROM member_keys WHERE member_id='alice'"
        ).fetchone()[0]
    _checkpoint(db)
    before = _file_bytes(db)
    # The check below can fail: the bytes are in the file before destruction.
    assert all(ct in before for (ct,) in old) and wrapped in before

    assert store.destroy_member("alice", reason="member withdrew consent") == 3
    assert store.count("alice") == 0 and store.count("bob") == 1
    ids, _ = store.load_all()
    assert ids.tolist() == ["bob"]
    with sqlite3.connect(db) as conn:
        assert (
            conn.execute("SELECT COUNT(*) FROM member_keys WHERE member_id='alice'").fetchone()[0]
            == 0
        )
    _checkpoint(db)
    after = _file_bytes(db)
    for (ct,) in old:
        assert ct not in after
    assert wrapped not in after
    [(reason, count, _when)] = store.destructions("alice")
    assert (reason, count) == ("member withdrew consent", 3)


def test_destruction_record_survives_reenrollment(store: TemplateStore) -> None:
    store.enroll("alice", _vectors(1, 1), consent_id="c1")
    store.destroy_member("alice", reason="withdrawn")
    store.enroll("alice", _vectors(1, 3), consent_id="c2")
    assert store.count("alice") == 1
    assert [r[0] for r in store.destructions("alice")] == ["withdrawn"]


def test_bad_input_names_the_field(store: TemplateStore) -> None:
    with pytest.raises(ValueError, match="embeddings"):
        store.enroll("alice", np.zeros((2, 64), np.float32), consent_id="c")
    with pytest.raises(ValueError, match="consent_id"):
        store.enroll("alice", _vectors(1, 1), consent_id="")
    with pytest.raises(ValueError, match="embeddings"):
        store.enroll("alice", np.full((1, 128), np.nan, np.float32), consent_id="c")
    assert store.count() == 0
