"""Node credentials: SHA-256 of a 256-bit secret, checked in constant time;
a credential stored by an earlier release (argon2) still works and is moved
to the new form on its first use."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_api.auth import Auth, Unauthenticated
from edge.passwords import Passwords
from edge.shop import Shop, SqliteDatabase


def _auth(tmp_path: Path) -> Auth:
    shop = Shop(SqliteDatabase(str(tmp_path / "cloud.db")))
    shop.migrate()
    auth = Auth(shop.db)
    auth.migrate()
    return auth


def _stored(auth: Auth, node_id: str) -> str:
    with auth.db.read() as tx:
        return str(tx.scalar("SELECT secret_hash FROM edge_nodes WHERE node_id = ?", (node_id,)))


def test_node_secret_is_stored_as_sha256_and_checked(tmp_path: Path) -> None:
    auth = _auth(tmp_path)
    secret = auth.register_node("edge-1")
    stored = _stored(auth, "edge-1")
    assert stored.startswith("sha256:") and secret not in stored
    assert auth.authenticate_node("edge-1", secret).subject == "edge-1"
    for node, wrong in (("edge-1", secret[:-1] + "x"), ("edge-1", ""), ("edge-2", secret)):
        with pytest.raises(Unauthenticated):
            auth.authenticate_node(node, wrong)


def test_an_argon2_credential_of_an_earlier_release_is_upgraded_on_use(tmp_path: Path) -> None:
    auth = _auth(tmp_path)
    auth.register_node("edge-old")
    secret = "an-old-node-secret-made-before-the-change"
    with auth.db.write() as tx:
        tx.execute(
            "UPDATE edge_nodes SET secret_hash = ? WHERE node_id = ?",
            (Passwords(time_cost=1, memory_kib=1024).hash(secret), "edge-old"),
        )
    with pytest.raises(Unauthenticated):
        auth.authenticate_node("edge-old", "wrong")
    assert _stored(auth, "edge-old").startswith("$argon2")  # a failed try changes nothing
    assert auth.authenticate_node("edge-old", secret).subject == "edge-old"
    assert _stored(auth, "edge-old").startswith("sha256:")
    assert auth.authenticate_node("edge-old", secret).subject == "edge-old"
