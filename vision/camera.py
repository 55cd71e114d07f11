"""Frame sources on OpenCV, each capturing on its own thread; the latest frame wins.

The capture thread writes into a single slot (no queue that could grow while
inference is slow) and wakes the event loop with ``call_soon_threadsafe``;
``frames()`` is an async iterator that never blocks the loop.  A dropped
stream is reopened with a random, capped, growing delay (full jitter).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from drivers.backoff import backoff_delay
from vision.errors import CameraError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class Frame:
    image: npt.NDArray[np.uint8]  # BGR, (h, w, 3)
    ts: float  # time.time() at capture
    seq: int  # increases by one per captured frame, across reconnects


class FrameSource(ABC):
    """Start it inside the event loop; ``async for frame in source.frames()``."""

    def __init__(self, backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0) -> None:
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._slot: Frame | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_frame = asyncio.Event()
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._finished = False
        self._seq = 0
        self.last_error: str | None = None

    # -- the capture side (its own thread) ---------------------------------------------
    @abstractmethod
    def _open(self) -> None:
        """Open the source; raise CameraError when it cannot be opened."""

    @abstractmethod
    def _read(self) -> npt.NDArray[np.uint8] | None:
        """Next image (blocking, paced); None when the stream dropped or ended."""

    @abstractmethod
    def _close(self) -> None: ...

    def _ended(self) -> bool:
        """True when a None from _read means the end (a file without loop), not a drop."""
        return False

    def _publish(self, image: npt.NDArray[np.uint8]) -> None:
        with self._lock:
            self._slot = Frame(image, time.time(), self._seq)
            self._seq += 1
        self._signal(self._new_frame)

    def _signal(self, event: asyncio.Event, clear: asyncio.Event | None = None) -> None:
        def apply() -> None:
            event.set()
            if clear is not None:
                clear.clear()

        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed between the check and here
                self._loop.call_soon_threadsafe(apply)

    def _run(self) -> None:
        attempt = 0
        while not self._halt.is_set():
            try:
                self._open()
            except CameraError as exc:
                self.last_error = str(exc)
                attempt += 1
                self._halt.wait(self._backoff(attempt))
                continue
            attempt = 0
            self._signal(self._connected, clear=self._disconnected)
            try:
                while not self._halt.is_set():
                    image = self._read()
                    if image is None:
                        break
                    self._publish(image)
            finally:
                self._close()
            self._signal(self._disconnected, clear=self._connected)
            if self._ended():
                self._finished = True
                self._signal(self._new_frame)
                return
            attempt += 1
            self._halt.wait(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(attempt, self.backoff_base_s, self.backoff_cap_s)

    # -- the event-loop side ------------------------------------------------------------
    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Idempotent; joins the capture thread off the loop."""
        thread, self._thread = self._thread, None
        self._halt.set()
        if thread is not None:
            await asyncio.to_thread(thread.join, 10.0)
        self._finished = True
        self._new_frame.set()

    def latest(self) -> Frame | None:
        with self._lock:
            return self._slot

    def is_connected(self) -> bool:
        return self._connected.is_set()

    async def connected(self) -> None:
        await self._connected.wait()

    async def disconnected(self) -> None:
        await self._disconnected.wait()

    async def frames(self) -> AsyncIterator[Frame]:
        """Each newest frame once; frames captured while the consumer was busy are skipped."""
        last_seq = -1
        while True:
            frame = self.latest()
            if frame is not None and frame.seq != last_seq:
                last_seq = frame.seq
                yield frame
                continue
            if self._finished:
                return
            self._new_frame.clear()
            # Re-check after clearing: the capture thread may have published in between.
            frame = self.latest()
            if (frame is None or frame.seq == last_seq) and not self._finished:
                await self._new_frame.wait()


class OpenCVSource(FrameSource):
    """V4L2 device (index or /dev/videoN), RTSP/HTTP URL or video file."""

    def __init__(
        self, target: int | str, loop: bool = False, fps: float | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.target = target
        self.is_file = isinstance(target, str) and Path(target).is_file()
        self.loop = loop
        self.fps = fps
        self._cap: Any = None
        self._next_at = 0.0
        self._eof = False

    def __str__(self) -> str:
        return str(self.target)

    def _open(self) -> None:
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot open camera source {self.target!r}")
        self._cap = cap
        if self.fps is None and self.is_file:
            native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.fps = native if 0 < native <= 240 else 25.0
        self._next_at = time.monotonic()

    def _read(self) -> npt.NDArray[np.uint8] | None:
        if self.fps:
            # Files are paced to their frame rate; live sources pace themselves.
            self._next_at += 1.0 / self.fps
            delay = self._next_at - time.monotonic()
            if delay > 0 and self._halt.wait(delay):
                return None
        ok, image = self._cap.read()
        if not ok and self.is_file and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        if not ok:
            self._eof = self.is_file
            return None
        return np.asarray(image, dtype=np.uint8)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _ended(self) -> bool:
        return self._eof and not self.loop


class ImageFolderSource(FrameSource):
    """Images of a folder in sorted name order, at ``fps``, optionally looping."""

    def __init__(self, folder: Path, fps: float = 5.0, loop: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        if fps <= 0:
            raise ValueError(f"fps: must be positive, got {fps}")
        self.folder = folder
        self.fps = fps
        self.loop = loop
        self._paths: list[Path] = []
        self._index = 0
        self._paced = False
        self._done = False

    def __str__(self) -> str:
        return str(self.folder)

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"image folder {self.folder} does not exist")
        self._paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise CameraError(f"image folder {self.folder} has no images")
        self._index = 0
        self._paced = False

    def _read(self) -> npt.NDArray[np.uint8] | None:
        if self._index >= len(self._paths):
            if not self.loop:
                self._done = True
                return None
            self._index = 0
        if self._paced and self._halt.wait(1.0 / self.fps):
            return None
        self._paced = True
        path = self._paths[self._index]
        self._index += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            self.last_error = f"cannot decode {path}"
            return self._read()
        return np.asarray(image, dtype=np.uint8)

    def _close(self) -> None:
        pass

    def _ended(self) -> bool:
        return self._done


def from_uri(uri: str, loop: bool = False, fps: float | None = None) -> FrameSource:
    """ "0" or "/dev/video0" (V4L2), "rtsp://..." / "http(s)://...", a video file, a folder."""
    if uri.isdigit():
        return OpenCVSource(int(uri), fps=fps)
    if "://" in uri:
        return OpenCVSource(uri, fps=fps)
    path = Path(uri)
    if path.is_dir():
        return ImageFolderSource(path, fps=fps or 5.0, loop=loop)
    if uri.startswith("/dev/") or path.is_file():
        return OpenCVSource(uri, loop=loop, fps=fps)
    raise ValueError(f"camera uri: {uri!r} is not a device index, URL, file or folder")
