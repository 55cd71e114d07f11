"""The built-in demo site: simulated devices that speak the real protocols."""

from __future__ import annotations

from importlib import resources


def demo_site_text() -> str:
    """The demo site's TOML (broker and gateway addresses are filled in at start)."""
    return resources.files("edge.demo").joinpath("site.toml").read_text(encoding="utf-8")
