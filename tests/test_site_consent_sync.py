"""Withdrawing face-access consent on the website reaches the spa: a real
``coresync-cloud`` process, a real edge site with its door and real enrolled
face templates, and a real sync between them.  The templates are destroyed
at the edge; nothing biometric ever went to the cloud."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloud_api.site import store as site_store
from cloud_api.site.web import password_hasher
from sync.client import SyncClient
from sync.testing import CloudProcess
from tests.conftest import Broker
from tests.site_demo import csrf_of, http_login
from tests.sync_helpers import Cloud, edge_config, off_loop, running_cloud
from tests.test_api_support import ApiSite, start_api_site, stop_api_site
from tests.test_door_lifecycle import photos_of
from tests.test_door_service import door_config, door_with

PASSWORD = "ava-web-password"
NODE = "edge-site15"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[Cloud, CloudProcess]]:
    with running_cloud(tmp_path / "cloud.db", (NODE,)) as running:
        yield running


@pytest.fixture
async def site(mqtt_broker: Broker, tmp_path: Path) -> AsyncIterator[ApiSite]:
    s = await start_api_site(mqtt_broker, tmp_path / "site")
    try:
        yield s
    finally:
        await stop_api_site(s)


async def test_withdrawal_on_the_website_destroys_templates_at_the_edge(
    site: ApiSite, cloud: tuple[Cloud, CloudProcess], tmp_path: Path, shared_faces: Path
) -> None:
    chain, proc = cloud
    shop = site.core.shop
    assert shop is not None
    ava, ben = chain.members["ava"], chain.members["ben"]
    hashed = await asyncio.to_thread(password_hasher().hash, PASSWORD)
    await off_loop(lambda: site_store.set_password_hash(chain.shop.db, ava, hashed))

    async def sync() -> None:
        client = SyncClient(shop, edge_config(proc.url, NODE), secret=chain.secrets[NODE],
                            on_member_change=site.service._hook)  # fmt: skip
        try:
            await client.sync_once()
        finally:
            await client.stop()

    await sync()  # the edge learns the chain's members
    door = await door_with(site, tmp_path, door_config())
    try:
        for member, who in ((ava, "alex_lacamoire"), (ben, "kit_harington")):
            await door.grant_consent(member, "staff1", "door access by face")
            photos = photos_of(shared_faces, who)
            await door.enroll_photos(member, [(p.name, p.read_bytes()) for p in photos], "s1")
        assert await door.vault.template_count(ava) == 3
        async with await http_login(proc.url, "ava@example.com", PASSWORD) as http:
            account = await (await http.get(proc.url + "/account")).text()
            r = await http.post(proc.url + "/account/consent",
                                data={"csrf_token": csrf_of(account)})  # fmt: skip
            assert r.status == 200 and "consent withdrawn" in (await r.text()).lower()
            assert await door.vault.template_count(ava) == 3  # not before the sync
            await sync()
            assert await door.vault.template_count(ava) == 0
            assert await door.vault.template_count(ben) == 3  # only hers
            export = await (await http.get(proc.url + "/account/export")).json()
        assert export["face_access_consent"]["biometric"] is False
    finally:
        await door.stop()
