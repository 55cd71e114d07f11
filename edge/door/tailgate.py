"""Tailgating: more people at the door on one unlock than were granted.  No I/O.

After a face or PIN unlock the door keeps watching (mesh worker only) for
``tailgate_window_s``.  Every face in each frame is followed as a track (box
overlap with the track's last box, IoU >= 0.3; a face lost for a frame picks
its track up again); a track seen in at least ``min_frames`` frames counts as
a person.  When the window closes, a count
above the number granted is a tailgate.  The camera cannot see the door
line, so "crossing" here means "at the door while it was open": set the
window to how long the door stays open (``relock_s`` plus walking time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.door.decision import TRACK_MIN_IOU, box_iou
from vision.pipeline import FrameResult

Box = tuple[float, float, float, float]


@dataclass
class _Track:
    box: Box
    frames: int = 1


@dataclass(frozen=True)
class Tailgate:
    people: int
    granted: int
    member_id: str | None


@dataclass
class CrossingCounter:
    min_frames: int = 3
    _until: float = 0.0
    _granted: int = 0
    _member: str | None = None
    _tracks: list[_Track] = field(default_factory=list)

    @property
    def watching(self) -> bool:
        return self._until > 0

    def start(self, granted: int, member_id: str | None, until: float) -> None:
        self._until, self._granted, self._member = until, granted, member_id
        self._tracks = []

    def feed(self, result: FrameResult, now: float) -> Tailgate | None:
        """One frame while watching; returns a Tailgate when the window closes on one."""
        if not self.watching:
            return None
        if now > self._until:
            return self._close()
        taken: list[_Track] = []
        for face in result.faces:
            box = face.detection.box
            free = [t for t in self._tracks if t not in taken]
            best = max(free, key=lambda t: box_iou(t.box, box), default=None)
            if best is not None and box_iou(best.box, box) >= TRACK_MIN_IOU:
                best.box, best.frames = box, best.frames + 1
            else:
                best = _Track(box)
                self._tracks.append(best)
            taken.append(best)
        return None

    def _close(self) -> Tailgate | None:
        people = sum(1 for t in self._tracks if t.frames >= self.min_frames)
        granted, member = self._granted, self._member
        self._until, self._tracks = 0.0, []
        return Tailgate(people, granted, member) if people > granted else None
