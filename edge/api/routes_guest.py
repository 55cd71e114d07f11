"""The guest tablet's extras (room token or staff): the site's name and time
zone, the languages shipped in web/i18n/ (a new language is a file there),
each sauna heater's "ready in" and session time left, and whether each scene
is a dim or a bright one, which the tablet's look follows (edge/guest.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.api.keys import CORE, SETTINGS
from edge.config import LOGO_TYPES
from edge.guest import HISTORY_ROWS, guard_of, heater_view, scene_mood
from edge.serialize import snapshot_to_dict

LOGO_PATH = "/site/logo"


def _languages(i18n_dir: Path) -> list[str]:
    return sorted(p.stem for p in i18n_dir.glob("*.json")) if i18n_dir.is_dir() else []


async def guest_view(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    core = request.app[CORE]
    room = core.room(room_id)
    heaters: dict[str, Any] = {}
    for cfg in room.config.devices:
        if not getattr(cfg, "heater", False):
            continue
        device = room.devices[cfg.id]
        state = snapshot_to_dict(device.snapshot())["state"]
        history = await core.store.history(device.device_id, limit=HISTORY_ROWS)
        heaters[cfg.id] = heater_view(state, history, guard_of(core, device.device_id))
    i18n = request.app[SETTINGS].web_dir / "i18n"
    return web.json_response(
        {
            "site": {
                "name": core.config.site.name,
                "timezone": core.config.site.timezone,
                "locale": core.config.site.locale,
                "logo": None if core.config.site.logo is None else LOGO_PATH,
            },
            "languages": await asyncio.to_thread(_languages, i18n),
            "heaters": heaters,
            "scene_moods": {s.id: scene_mood(s) for s in room.config.scenes},
        }
    )


async def site_logo(request: web.Request) -> web.StreamResponse:
    """The spa's logo (``[site] logo``): public, as a tablet's <img> sends no token."""
    logo = request.app[CORE].config.site.logo
    if logo is None:
        raise web.HTTPNotFound()
    headers = {"Content-Type": LOGO_TYPES[logo.suffix.lower()], "Cache-Control": "max-age=300"}
    # FileResponse reads the file in an executor; a file that is gone is a 404.
    return web.FileResponse(logo, headers=headers)
