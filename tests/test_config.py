"""Site config validation and `coresync-edge validate-config`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_config, parse_config
from edge.demo import demo_site_text
from edge.errors import ConfigError
from tests.parts import missing

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "site.example.toml"

MINIMAL = """\
[site]
id = "spa"
name = "Spa"

[mqtt]
host = "127.0.0.1"

[[rooms]]
id = "r1"
name = "Room 1"
  [[rooms.devices]]
  id = "light"
  kind = "light"
  type = "zigbee2mqtt"
  friendly_name = "r1_light"
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "site.toml")
    return info.value.problems


def test_example_and_demo_configs_are_valid() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.site.id == "brooklyn-71st"
    assert {r.id for r in cfg.rooms} >= {"treatment-1", "sauna", "entrance"}
    demo = parse_config(demo_site_text(), "demo")
    assert [r.id for r in demo.rooms] == ["treatment-1", "sauna", "lounge", "entrance"]


def test_minimal_config_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.site.timezone == "UTC"
    assert str(cfg.site.tax_rate) == "0.08"
    assert cfg.rooms[0].devices[0].limits.max_brightness == 100


def test_unknown_key_named_with_line_and_path() -> None:
    text = MINIMAL + '  colour = "red"\n'
    (problem,) = problems_of(text)
    assert problem.startswith("site.toml:16: rooms[0].devices[0].colour:")
    assert "Extra inputs are not permitted" in problem


def test_unknown_top_level_section() -> None:
    (problem,) = problems_of(MINIMAL + "[lighting]\nfoo = 1\n")
    assert problem.startswith("site.toml:16: lighting:")


def test_bad_values_each_named() -> None:
    text = MINIMAL.replace('id = "spa"', 'id = "Spa Site!"').replace(
        'friendly_name = "r1_light"',
        'friendly_name = "r1_light"\n  limits = { max_brightness = 150 }',
    )
    problems = problems_of(text)
    assert any(p.startswith("site.toml:2: site.id:") for p in problems)
    assert any(
        p.startswith("site.toml:16: rooms[0].devices[0].limits.max_brightness:") for p in problems
    )


def test_unknown_driver_type() -> None:
    (problem,) = problems_of(MINIMAL.replace('type = "zigbee2mqtt"', 'type = "knx"'))
    assert problem.startswith("site.toml:11: rooms[0].devices[0]")
    assert "knx" in problem


def test_time_zone_and_tax_rate_checked() -> None:
    text = MINIMAL.replace(
        'name = "Spa"', 'name = "Spa"\ntimezone = "Mars/Olympus"\ntax_rate = 1.5'
    )
    problems = problems_of(text)
    assert any("site.timezone" in p and "Mars/Olympus" in p for p in problems)
    assert any("site.tax_rate" in p for p in problems)


def test_scene_must_name_room_devices_and_respect_limits() -> None:
    base = (
        MINIMAL
        + '  limits = { max_brightness = 60 }\n  [[rooms.scenes]]\n  id = "s"\n  name = "S"\n'
    )
    (problem,) = problems_of(base + "  devices.ghost = { on = true }\n")
    assert "ghost" in problem
    assert problem.startswith("site.toml:20: rooms[0].scenes[0].devices.ghost:"), problem
    (problem,) = problems_of(base + "  devices.light = { brightness = 80 }\n")
    assert "brightness" in problem and "60" in problem
    (problem,) = problems_of(base + "  devices.light = { target_c = 20 }\n")
    assert "target_c" in problem


def test_duplicates_and_missing_references() -> None:
    dup = MINIMAL + '[[rooms]]\nid = "r1"\nname = "again"\n'
    assert any("duplicate room id 'r1'" in p for p in problems_of(dup))
    modbus = MINIMAL.replace(
        'type = "zigbee2mqtt"\n  friendly_name = "r1_light"',
        'type = "modbus"\n  bus = "nope"\n  unit = 1\n'
        '  registers.on = { table = "coil", address = 0, dtype = "bool" }',
    )
    assert any("bus 'nope'" in p for p in problems_of(modbus))
    no_mqtt = MINIMAL.replace('[mqtt]\nhost = "127.0.0.1"\n', "")
    assert any("no [mqtt] section" in p for p in problems_of(no_mqtt))


def test_cross_reference_errors_name_the_line_of_the_value() -> None:
    dup = MINIMAL + '\n[[rooms]]\nid = "r1"\nname = "again"\n'
    (problem,) = problems_of(dup)
    assert problem.startswith("site.toml:18: rooms[1].id:") and "duplicate room id" in problem
    modbus = MINIMAL.replace(
        'type = "zigbee2mqtt"\n  friendly_name = "r1_light"',
        'type = "modbus"\n  bus = "nope"\n  unit = 1\n'
        '  registers.on = { table = "coil", address = 0, dtype = "bool" }',
    )
    (problem,) = problems_of(modbus)
    assert problem.startswith("site.toml:15: rooms[0].devices[0].bus:"), problem
    door = MINIMAL + '\n[door]\nroom = "r1"\nlock = "light"\n'
    (problem,) = problems_of(door)
    assert problem.startswith("site.toml:19: door.lock:") and "not a lock" in problem, problem
    door = MINIMAL + '\n[door]\nroom = "spa"\nlock = "light"\n'
    (problem,) = problems_of(door)
    assert problem.startswith("site.toml:18: door.room:"), problem


def test_ports_are_strict_integers() -> None:
    (problem,) = problems_of(MINIMAL.replace('host = "127.0.0.1"', 'host = "h"\nport = "18832"'))
    assert problem.startswith("site.toml:7: mqtt.port:") and "integer" in problem, problem
    (problem,) = problems_of(MINIMAL + '\n[api]\nport = "8080"\n')
    assert problem.startswith("site.toml:18: api.port:"), problem
    gateway = '[[modbus_buses]]\nid = "gw"\ntype = "tcp"\nhost = "h"\nport = 5.02e2\n'
    (problem,) = problems_of(MINIMAL + gateway)
    assert "modbus_buses[0].port" in problem, problem
    assert parse_config(MINIMAL.replace('host = "127.0.0.1"', 'host = "h"\nport = 18832'))


def test_device_names_unique_per_room() -> None:
    second = (
        '  name = "Ceiling"\n  [[rooms.devices]]\n  id = "light2"\n  name = "ceiling "\n'
        '  kind = "light"\n  type = "zigbee2mqtt"\n  friendly_name = "r1_light2"\n'
    )
    (problem,) = problems_of(MINIMAL + second)
    assert problem.startswith("site.toml:19: rooms[0].devices[1].name:"), problem
    assert "duplicate device name 'ceiling '" in problem
    # The same name in two rooms, and unnamed devices, are fine.
    other = MINIMAL.split("[[rooms]]")[1].replace('"r1"', '"r2"').replace("r1_", "r2_")
    assert parse_config(MINIMAL + '  name = "Ceiling"\n[[rooms]]' + other + '  name = "Ceiling"\n')


def test_heater_needs_safety_limits() -> None:
    text = MINIMAL.replace('kind = "light"', 'kind = "climate"').replace(
        'friendly_name = "r1_light"', 'friendly_name = "sauna"\n  heater = true'
    )
    (problem,) = problems_of(text)
    assert "hard_max_c" in problem


def test_toml_syntax_error_names_line() -> None:
    (problem,) = problems_of("[site\nid=1\n")
    assert problem.startswith("site.toml: TOML syntax error:") and "line 1" in problem


def test_validate_config_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate-config", str(EXAMPLE)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL + '  colour = "red"\n')
    assert main(["validate-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:16: rooms[0].devices[0].colour" in err
    assert main(["validate-config", str(tmp_path / "missing.toml")]) == 2
    assert main(["--validate-config", str(bad)]) == 2
    assert main(["--validate-config", str(EXAMPLE)]) == 0


def test_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "coresync-edge"
    if not exe.exists():
        missing("console script", str(exe))
    out = subprocess.run(
        [str(exe), "validate-config", str(EXAMPLE)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


def test_every_config_field_is_documented_and_docs_are_current() -> None:
    from edge.config_docs import render, undocumented

    assert list(undocumented()) == []
    current = (REPO / "docs" / "config.md").read_text()
    assert current.strip() == render().strip(), (
        "docs/config.md is stale: run `python -m edge.config_docs > docs/config.md`"
    )
