"""[door] config: cross-field checks against the site's rooms and lock."""

from __future__ import annotations

import pytest

from edge.config import parse_config
from edge.errors import ConfigError

SITE = """\
[site]
id = "door-site"
name = "Door test"

[mqtt]
host = "127.0.0.1"

[[rooms]]
id = "entrance"
name = "Entrance"
  [[rooms.devices]]
  id = "door"
  kind = "lock"
  type = "zigbee2mqtt"
  friendly_name = "e_door"
  [[rooms.devices]]
  id = "light"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "e_light"

[door]
{door}
"""


def test_valid_door_section() -> None:
    cfg = parse_config(SITE.format(door='room = "entrance"\nlock = "door"\nrelock_s = 3'))
    assert cfg.door is not None and cfg.door.relock_s == 3
    assert cfg.door.liveness.mode == "blink"


@pytest.mark.parametrize(
    ("door", "needle"),
    [
        ('room = "spa"\nlock = "door"', "door.room"),
        ('room = "entrance"\nlock = "gate"', "door.lock"),
        ('room = "entrance"\nlock = "light"', "not a lock"),
        (
            'room = "entrance"\nlock = "door"\nenroll_min_photos = 4\nenroll_max_photos = 3',
            "enroll",
        ),
        ('room = "entrance"\nlock = "door"\nretention_days = 2000', "retention_days"),
        ('room = "entrance"\nlock = "door"\nsmile = true', "smile"),
    ],
)
def test_bad_door_section_names_the_problem(door: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(SITE.format(door=door))
    assert needle in " ".join(err.value.problems)
