"""Frame sources on real files and folders: order, end, latest-wins, reconnect."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from pathlib import Path

import pytest

from tests.edge_site import wait_until
from vision.camera import ImageFolderSource, OpenCVSource, from_uri


async def test_folder_source_plays_sorted_images_then_ends(shared_faces: Path) -> None:
    source = ImageFolderSource(shared_faces / "dev" / "barack_obama", fps=50, loop=False)
    await source.start()
    try:
        frames = [f async for f in source.frames()]
    finally:
        await source.stop()
    assert [f.seq for f in frames] == [0, 1, 2, 3]
    assert all(f.image.ndim == 3 and f.image.shape[2] == 3 for f in frames)
    assert frames[0].image.shape[:2] == (1137, 910)  # 1.jpg comes first


async def test_video_file_source_skips_to_latest_frame(shared_faces: Path) -> None:
    clip = shared_faces / "video" / "short_hamilton_clip.mp4"
    source = await asyncio.to_thread(from_uri, str(clip), fps=200)
    assert isinstance(source, OpenCVSource)
    await source.start()
    seqs = []
    try:
        async for frame in source.frames():
            seqs.append(frame.seq)
            await asyncio.sleep(0.05)  # a slow consumer: frames in between are dropped
    finally:
        await source.stop()
    assert seqs == sorted(seqs) and len(seqs) > 2
    assert max(b - a for a, b in itertools.pairwise(seqs)) > 1


async def test_source_reconnects_when_the_folder_appears(
    tmp_path: Path, shared_faces: Path
) -> None:
    folder = tmp_path / "cam"
    source = ImageFolderSource(folder, fps=20, loop=True, backoff_base_s=0.02, backoff_cap_s=0.1)
    await source.start()
    try:
        await wait_until(lambda: source.last_error is not None)  # it tried, and says why
        assert source.latest() is None
        folder.mkdir()
        shutil.copy(shared_faces / "dev" / "joe_biden" / "2.jpg", folder / "a.jpg")
        await asyncio.wait_for(source.connected(), 5)
        frame = await asyncio.wait_for(anext(aiter(source.frames())), 5)
        assert frame.image.shape[:2] == (1200, 1200)
    finally:
        await source.stop()
        await source.stop()


def test_from_uri_rejects_unknown(tmp_path: Path) -> None:
    assert isinstance(from_uri("0"), OpenCVSource)
    assert isinstance(from_uri("rtsp://127.0.0.1:8554/door"), OpenCVSource)
    assert isinstance(from_uri(str(tmp_path)), ImageFolderSource)
    with pytest.raises(ValueError, match="camera uri"):
        from_uri(str(tmp_path / "missing.mp4"))
