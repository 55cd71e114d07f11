"""Which door service belongs to which core: the API finds the door through it."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.core import EdgeCore
    from edge.door.service import DoorService

_DOORS: weakref.WeakKeyDictionary[EdgeCore, DoorService] = weakref.WeakKeyDictionary()


def register(core: EdgeCore, door: DoorService) -> None:
    _DOORS[core] = door


def unregister(core: EdgeCore, door: DoorService) -> None:
    if _DOORS.get(core) is door:
        del _DOORS[core]


def door_for(core: EdgeCore) -> DoorService | None:
    return _DOORS.get(core)
