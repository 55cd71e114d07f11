"""Light colour, as pure functions: CIE 1931 xy is the model's colour (what
Zigbee2MQTT and Hue report, independent of a bulb's gamut); sRGB and
``#rrggbb`` are what people and web pages pick.  No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeAlias

Xy: TypeAlias = tuple[float, float]
Rgb: TypeAlias = tuple[int, int, int]

# A bulb maps a colour into its own gamut and reports it back rounded: xy
# within this distance on each axis counts as the colour asked for.
XY_TOLERANCE = 0.01
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def _linear(channel: float) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _gamma(value: float) -> float:
    v = max(0.0, value)
    return 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def rgb_to_xy(r: int, g: int, b: int) -> Xy:
    """sRGB (0-255 each) to CIE xy, rounded to 4 places as Zigbee2MQTT reports."""
    for name, channel in (("r", r), ("g", g), ("b", b)):
        if not 0 <= channel <= 255:
            raise ValueError(f"{name}: {channel} is outside 0-255")
    lr, lg, lb = _linear(r), _linear(g), _linear(b)
    x = lr * 0.4124 + lg * 0.3576 + lb * 0.1805
    y = lr * 0.2126 + lg * 0.7152 + lb * 0.0722
    z = lr * 0.0193 + lg * 0.1192 + lb * 0.9505
    total = x + y + z
    if total == 0:
        return (0.3127, 0.329)  # black has no hue: the D65 white point
    return (round(x / total, 4), round(y / total, 4))


def xy_to_rgb(x: float, y: float) -> Rgb:
    """CIE xy to the brightest sRGB of that chromaticity (0-255 each)."""
    if y <= 0:
        return (0, 0, 0)
    big_y = 1.0
    big_x = big_y / y * x
    big_z = big_y / y * (1 - x - y)
    lr = big_x * 3.2406 - big_y * 1.5372 - big_z * 0.4986
    lg = -big_x * 0.9689 + big_y * 1.8758 + big_z * 0.0415
    lb = big_x * 0.0557 - big_y * 0.2040 + big_z * 1.0570
    channels = [_gamma(c) for c in (lr, lg, lb)]
    top = max(channels) or 1.0
    r, g, b = (round(255 * c / top) for c in channels)
    return (r, g, b)


def xy_to_hex(xy: Xy) -> str:
    return "#{:02x}{:02x}{:02x}".format(*xy_to_rgb(*xy))


def parse_color(value: Any) -> Xy:
    """A colour as ``"#rrggbb"``, ``{"x", "y"}`` or ``{"r", "g", "b"}`` to xy;
    ValueError naming what is wrong."""
    if isinstance(value, str):
        match = _HEX.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a #rrggbb colour")
        digits = match.group(1)
        return rgb_to_xy(*(int(digits[i : i + 2], 16) for i in (0, 2, 4)))
    if isinstance(value, tuple | list) and len(value) == 2:
        value = {"x": value[0], "y": value[1]}
    if isinstance(value, Mapping):
        if set(value) == {"x", "y"}:
            x, y = (_unit(value, k) for k in ("x", "y"))
            return (round(x, 4), round(y, 4))
        if set(value) == {"r", "g", "b"}:
            r, g, b = (_byte(value, k) for k in ("r", "g", "b"))
            return rgb_to_xy(r, g, b)
    raise ValueError('a colour is "#rrggbb", {"x": .., "y": ..} or {"r": .., "g": .., "b": ..}')


def _unit(data: Mapping[str, Any], key: str) -> float:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1:
        raise ValueError(f"{key}: {v!r} is not a number in 0-1")
    return float(v)


def _byte(data: Mapping[str, Any], key: str) -> int:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255:
        raise ValueError(f"{key}: {v!r} is not an integer in 0-255")
    return v


def xy_close(a: Xy, b: Xy, tolerance: float = XY_TOLERANCE) -> bool:
    return abs(a[0] - b[0]) <= tolerance and abs(a[1] - b[1]) <= tolerance
