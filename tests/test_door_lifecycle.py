"""What happens to face data over time: retention expiry, membership end and
consent withdrawal destroy the templates for good (crypto-shredded and wiped
from the file), the destruction stays on record, and door events survive a
process killed with SIGKILL.  Real photos, the real worker, a real site."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.door.service import DoorService
from edge.door.store import DoorEvent, DoorStore
from edge.door.vault import DOOR_DB, MASTER_KEY, TEMPLATE_DB
from tests.conftest import Broker
from tests.test_api_support import ApiSite, start_api_site, stop_api_site
from tests.test_door_service import door_config, door_with, new_member
from vision.templates import _member_key_ad, _template_ad, load_master_key

REPO = Path(__file__).resolve().parent.parent
DAY = 86400.0
Row = tuple[str, str, bytes, bytes]


@pytest.fixture
async def site(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[ApiSite]:
    s = await start_api_site(mqtt_broker, tmp_path / "site")
    try:
        yield s
    finally:
        await stop_api_site(s)


@pytest.fixture
async def door(site: ApiSite, tmp_path: Path) -> AsyncIterator[DoorService]:
    d = await door_with(site, tmp_path, door_config(retention_days=30))
    try:
        yield d
    finally:
        await d.stop()


async def enrolled(
    site: ApiSite, door: DoorService, name: str, photos: list[Path], retention: int | None = None
) -> str:
    member = await new_member(site, name)
    await door.grant_consent(member, "staff1", "door access by face", retention)
    await door.enroll_photos(member, [(p.name, p.read_bytes()) for p in photos], "staff1")
    return member


def photos_of(faces: Path, who: str) -> list[Path]:
    return sorted((faces / "dev" / who).iterdir())[:3]


def stored_rows(data: Path, member_id: str) -> tuple[list[Row], tuple[bytes, bytes]]:
    """A copy of the member's ciphertext rows and wrapped key, read from the file."""
    with sqlite3.connect(data / TEMPLATE_DB) as conn:
        rows = conn.execute(
            "SELECT member_id, template_id, nonce, ciphertext FROM face_templates"
            " WHERE member_id = ?",
            (member_id,),
        ).fetchall()
        key = conn.execute(
            "SELECT nonce, wrapped_key FROM member_keys WHERE member_id = ?", (member_id,)
        ).fetchone()
    conn.close()
    return [tuple(r) for r in rows], (b"", b"") if key is None else tuple(key)


def file_bytes(data: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in data.glob(f"{TEMPLATE_DB}*") if p.is_file()
    )  # the database, its WAL and shared memory


async def test_retention_expiry_destroys_only_expired_members(
    site: ApiSite, door: DoorService, shared_faces: Path
) -> None:
    short = await enrolled(
        site, door, "Alex Lacamoire", photos_of(shared_faces, "alex_lacamoire"), 2
    )
    kept = await enrolled(site, door, "Barack Obama", photos_of(shared_faces, "barack_obama"))
    assert door.enrolled_members == 2
    now = time.time()
    assert await door.expire_retention(now + 1 * DAY) == []  # nothing due yet
    # Three days on: past the 2-day consent of one member, within the site's 30 days.
    assert await door.expire_retention(now + 3 * DAY) == [short]
    assert await door.vault.template_count(short) == 0
    assert await door.vault.template_count(kept) == 3
    assert door.enrolled_members == 1
    export = await door.vault.export(short)
    [record] = export["face_templates"]["destructions"]
    assert record["reason"] == "retention_expired" and record["template_count"] == 3
    # 31 days after enrollment without a visit: past the site's 30 days too.
    assert await door.expire_retention(now + 31 * DAY) == [kept]
    assert await door.vault.template_count() == 0


Destroy = Callable[[DoorService, str], Awaitable[int]]


async def membership_ended(door: DoorService, member: str) -> int:
    return await door.on_member_change(member, active=False, consent=None)


async def consent_withdrawn(door: DoorService, member: str) -> int:
    return await door.withdraw_consent(member, "staff1", "member asked")


@pytest.mark.parametrize(
    ("destroy", "reason"),
    [(membership_ended, "membership_ended"), (consent_withdrawn, "consent_withdrawn")],
)
async def test_destruction_shreds_the_key_and_wipes_the_bytes(
    site: ApiSite,
    door: DoorService,
    shared_faces: Path,
    tmp_path: Path,
    destroy: Destroy,
    reason: str,
) -> None:
    data = tmp_path / "door"
    member = await enrolled(site, door, "Alex Lacamoire", photos_of(shared_faces, "alex_lacamoire"))
    other = await enrolled(site, door, "Barack Obama", photos_of(shared_faces, "barack_obama"))
    rows, (key_nonce, wrapped) = stored_rows(data, member)
    assert len(rows) == 3
    master = AESGCM(await asyncio.to_thread(load_master_key, data / MASTER_KEY))
    # Sanity: before destruction the copy does decrypt with the store's key.
    member_key = AESGCM(master.decrypt(key_nonce, wrapped, _member_key_ad(member)))
    _, template_id, nonce, ct = rows[0]
    assert len(member_key.decrypt(nonce, ct, _template_ad(member, template_id))) == 128 * 4
    assert ct in file_bytes(data)

    assert await destroy(door, member) == 3

    assert await door.vault.template_count(member) == 0
    assert await door.vault.template_count(other) == 3
    assert door.enrolled_members == 1
    # The store has no key left for the member: the copied ciphertext is unreadable.
    assert stored_rows(data, member) == ([], (b"", b""))
    vault = door.vault
    assert await vault._call(lambda: vault.templates._member_key(member, create=False)) is None
    # Consent again and re-enroll: a new member key, and the old ciphertext still fails.
    await door.grant_consent(member, "staff1", "door access by face")
    await door.enroll_photos(
        member, [(p.name, p.read_bytes()) for p in photos_of(shared_faces, "alex_lacamoire")], "s"
    )
    _, (new_nonce, new_wrapped) = stored_rows(data, member)
    new_key = AESGCM(master.decrypt(new_nonce, new_wrapped, _member_key_ad(member)))
    for _, tid, n, c in rows:
        with pytest.raises(InvalidTag):
            new_key.decrypt(n, c, _template_ad(member, tid))
    # Neither the old ciphertext nor the old wrapped key is anywhere in the files.
    on_disk = file_bytes(data)
    assert all(c not in on_disk for *_, c in rows)
    assert wrapped not in on_disk
    # The destruction is on record (kept forever), with its reason and count.
    export = await door.vault.export(member)
    [record] = export["face_templates"]["destructions"]
    assert record["reason"] == reason and record["template_count"] == 3
    if reason == "consent_withdrawn":
        actions = [c["action"] for c in export["consent_history"]]
        assert actions == ["grant", "withdraw", "grant"]


WRITER = """
import sys, time
from pathlib import Path
from edge.door.store import DoorEvent, DoorStore
store = DoorStore(Path(sys.argv[1]))
i = 0
while True:
    i += 1
    store.record_event(DoorEvent("pin", "deny", f"wrong_pin {i}", member_id="m1"))
    print(i, flush=True)
"""


def test_door_events_survive_sigkill_of_the_writer(tmp_path: Path) -> None:
    path = tmp_path / DOOR_DB
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    acknowledged = 0
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 50:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    store = DoorStore(path)
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        events = store.events(limit=10_000)
        reasons = {e.reason for e in events}
        # Every event the writer had acknowledged (returned from record_event) is there.
        assert {f"wrong_pin {i}" for i in range(1, acknowledged + 1)} <= reasons
        ids = [e.id or 0 for e in events]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
        store.record_event(DoorEvent("system", "error", "after crash"))
        assert store.events(limit=1)[0].reason == "after crash"
    finally:
        store.close()


async def test_membership_end_arriving_by_sync_destroys_templates(
    site: ApiSite, door: DoorService, shared_faces: Path
) -> None:
    """The hook the daemon hands the sync job (EdgeService._hook): it finds
    the site's door through the registry."""
    member = await enrolled(site, door, "Sync Leaver", photos_of(shared_faces, "alex_lacamoire"))
    kept = await enrolled(site, door, "Sync Stayer", photos_of(shared_faces, "kit_harington"))
    hook = site.service._hook
    await hook(member, False, True)  # the cloud says: membership ended
    status = await door.vault.template_count(member)
    assert status == 0
    assert await door.vault.template_count(kept) > 0
    await hook(kept, True, False)  # the cloud says: consent withdrawn
    assert await door.vault.template_count(kept) == 0
