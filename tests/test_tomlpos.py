"""Locating key paths in TOML text for config error messages."""

from __future__ import annotations

from edge.tomlpos import key_lines, locate

TEXT = """\
[site]
id = "spa"
name = "Spa"

[[rooms]]
id = "a"
  [[rooms.devices]]
  id = "light"
  limits = { max_brightness = 200 }

  [[rooms.devices]]
  id = "lock"
  note = '''
  id = "not a key"
  '''
  kind = "lock"

  [[rooms.scenes]]
  id = "s"
  devices.light = { on = true }

[[rooms]]
id = "b"
  [[rooms.devices]]
  id = "x"
  [rooms.devices.registers]
  mode = { table = "holding" }
"""


def test_tables_and_arrays_of_tables_are_counted() -> None:
    lines = key_lines(TEXT)
    assert lines[("site", "id")] == 2
    assert lines[("rooms", 0, "id")] == 6
    assert lines[("rooms", 0, "devices", 1, "id")] == 12
    assert lines[("rooms", 0, "devices", 1, "kind")] == 16
    assert lines[("rooms", 1, "id")] == 23
    assert lines[("rooms", 1, "devices", 0, "registers", "mode")] == 27
    assert lines[("rooms", 0, "scenes", 0, "devices", "light")] == 20


def test_inline_table_falls_back_to_its_key() -> None:
    assert locate(TEXT, ("rooms", 0, "devices", 0, "limits", "max_brightness")) == 9


def test_multiline_string_content_is_not_a_key() -> None:
    # line 14 holds `id = "not a key"` inside a multi-line string
    assert 14 not in key_lines(TEXT).values()


def test_unknown_path_falls_back_to_parent() -> None:
    assert locate(TEXT, ("rooms", 1, "devices", 0, "bogus")) == 24
    assert locate(TEXT, ("nothing",)) is None
