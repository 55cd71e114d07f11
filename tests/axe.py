"""axe-core in the test's Chromium page: the serious and critical
accessibility violations of what is on screen.  axe.min.js comes from the
``axe-playwright-python`` dev dependency (it ships the file; its own runner
is not used)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.parts import missing

SERIOUS = ("serious", "critical")


def axe_script_path() -> Path:
    try:
        import axe_playwright_python
    except ImportError:
        missing("axe-core", "accessibility checks need axe-playwright-python (dev extra)")
    return Path(axe_playwright_python.__file__).parent / "axe.min.js"


async def serious_violations(page: Any) -> list[str]:
    """One line per serious/critical violation: rule, impact, first targets."""
    script = await asyncio.to_thread(axe_script_path().read_text)
    await page.evaluate(script)
    result = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    found = []
    for v in result["violations"]:
        if v.get("impact") in SERIOUS:
            targets = [" ".join(map(str, n["target"])) for n in v["nodes"][:3]]
            found.append(f"{v['id']} ({v['impact']}): {v['help']} at {targets}")
    return found
