"""A door site for real ``coresync-edge run`` tests: the site file (the API's test
site with an API port and the given ``[door]`` text), one member with recorded
consent, enrolled from the first three dev photos of barack_obama through the CLI,
as staff would do it."""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from pathlib import Path
from typing import Any

from edge.config import SiteConfig, load_config
from edge.service import open_shop
from tests.conftest import Broker, free_port
from tests.test_api_support import SITE

EXE = Path(sys.executable).parent / "coresync-edge"


async def run_cli(*args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        str(EXE), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def enrolled_door_site(
    broker: Broker, tmp_path: Path, shared_faces: Path, site_id: str, base: str, door: str
) -> tuple[Path, Path, SiteConfig, str]:
    """The site file, its data dir and config, and the enrolled member's id."""
    config = tmp_path / "site.toml"
    text = SITE.format(site=site_id, host=broker.host, port=broker.port, base=base)
    api = f'[api]\nhost = "127.0.0.1"\nport = {free_port()}\nzeroconf = false\n\n'
    text = text.replace("[[rooms]]", api + "[[rooms]]", 1)
    await asyncio.to_thread(config.write_text, text + door)
    data = tmp_path / "data"
    data.mkdir()
    cfg = load_config(config)

    def new_member() -> str:
        shop = open_shop(cfg, data)
        shop.migrate()
        member = shop.create_member(
            {
                "name": "Barack Obama",
                "email": "barack@example.com",
                "phone": "+1 555 0100",
                "date_of_birth": date(1961, 8, 4),
            }
        )
        shop.db.close()
        return str(member.id)

    member = await asyncio.to_thread(new_member)
    files = ["--config", str(config), "--data-dir", str(data)]
    await run_cli("members", *files, "consent", member, "--witness", "Dana", "--purpose", "door")
    photos = [str(p) for p in sorted((shared_faces / "dev" / "barack_obama").iterdir())[:3]]
    await run_cli("enroll", *files, "--member", member, "--photos", *photos)
    return config, data, cfg, member
