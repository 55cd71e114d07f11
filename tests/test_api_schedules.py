"""Schedules over the real API (staff read, managers edit, stored in edge.db,
validated against the site) and on the dashboard in headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from edge.schedules_store import load_rows
from tests.axe import serious_violations
from tests.storage_faults import WriteLock
from tests.test_api_support import PASSWORDS, ApiSite, api, wait_until
from tests.test_web_pages import base_url, browser, shot

__all__ = ["api", "browser"]

MORNING = {"room": "room-a", "scene": "relax", "at": "07:00", "days": ["monday", "friday"]}


async def test_manager_adds_a_schedule_that_is_stored_and_runs_next(api: ApiSite) -> None:
    runner = api.service.schedules
    assert runner is not None
    resp = await api.client.put(
        "/api/v1/schedules/morning", json=MORNING, headers=api.auth("manager1")
    )
    assert resp.status == 200, await resp.text()
    saved = await resp.json()
    assert saved["source"] == "dashboard" and saved["updated_by"] == "manager1"
    assert saved["describe"] == "room-a/relax at 07:00, mon, fri"
    # The runner woke up to the new timetable.
    await wait_until(lambda: runner.next_due is not None)
    assert runner.next_due is not None and runner.next_due.isoformat() == saved["next_run"]
    rows = await api.core.store.call(load_rows)
    assert [(r[0], r[2]) for r in rows] == [("morning", "manager1")]

    resp = await api.client.get("/api/v1/schedules", headers=api.auth("staff1"))
    assert resp.status == 200
    listed = (await resp.json())["schedules"]
    assert [s["id"] for s in listed] == ["morning"]
    audit = await api.client.get("/api/v1/audit", headers=api.auth("admin"))
    actions = [(e["action"], e["target"]) for e in (await audit.json())["entries"]]
    assert ("schedule.save", "morning") in actions

    resp = await api.client.delete("/api/v1/schedules/morning", headers=api.auth("manager1"))
    assert resp.status == 200
    await wait_until(lambda: runner.next_due is None)
    resp = await api.client.delete("/api/v1/schedules/morning", headers=api.auth("manager1"))
    assert resp.status == 404


async def test_staff_and_tablets_cannot_edit(api: ApiSite) -> None:
    resp = await api.client.put("/api/v1/schedules/x", json=MORNING, headers=api.auth("staff1"))
    assert resp.status == 403
    paired = await api.pair("room-a")
    tablet = {"Authorization": f"Bearer {paired['token']}"}
    resp = await api.client.get("/api/v1/schedules", headers=tablet)
    assert resp.status == 403
    resp = await api.client.put("/api/v1/schedules/x", json=MORNING, headers=tablet)
    assert resp.status == 403
    assert await api.core.store.call(load_rows) == []


async def test_an_edit_on_a_locked_database_is_503_and_the_runner_goes_on(api: ApiSite) -> None:
    runner = api.service.schedules
    assert runner is not None
    await wait_until(lambda: runner.checked_through is not None)
    async with WriteLock(api.data_dir / "edge.db"):
        resp = await api.client.put(
            "/api/v1/schedules/morning", json=MORNING, headers=api.auth("manager1")
        )
        assert resp.status == 503, await resp.text()
        assert (await resp.json())["error"]["code"] == "storage_unavailable"
    assert api.service.supervisor.components["schedules"].up
    assert await api.core.store.call(load_rows) == []
    resp = await api.client.put(
        "/api/v1/schedules/morning", json=MORNING, headers=api.auth("manager1")
    )
    assert resp.status == 200, await resp.text()
    await wait_until(lambda: runner.next_due is not None)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"room": "pool"}, "room", "unknown room 'pool'"),
        ({"scene": "disco"}, "scene", "has no scene 'disco'"),
        ({"at": "25:00"}, "at", "HH:MM"),
        ({"at": None, "before_opening_min": 30}, "before_opening_min", "[opening_hours]"),
        ({"before_opening_min": 30}, "before_opening_min", "exactly one"),
        ({"days": ["funday"]}, "days.0", "monday"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"id": "other"}, "id", "differs"),
    ],
)
async def test_bad_schedules_are_422_naming_the_field(
    api: ApiSite, change: dict[str, Any], field: str, words: str
) -> None:
    body = {k: v for k, v in {**MORNING, **change}.items() if v is not None}
    resp = await api.client.put(
        "/api/v1/schedules/morning", json=body, headers=api.auth("manager1")
    )
    assert resp.status == 422, await resp.text()
    error = (await resp.json())["error"]
    assert error["field"] == field, error
    assert words in error["message"]
    assert await api.core.store.call(load_rows) == []


async def test_dashboard_form_adds_a_schedule_and_shows_errors_by_the_field(
    api: ApiSite, browser: Any
) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    await page.goto(base_url(api) + "/dashboard#schedules")
    await page.fill("#username", "manager1")
    await page.fill("#password", PASSWORDS["manager1"])
    await page.click("#login button[type=submit]")
    form = page.locator("#schedule-form")
    await form.wait_for()
    await form.locator('input[name="id"]').fill("evening")
    await form.locator('select[name="room"]').select_option("room-b")
    await form.locator('select[name="trigger"]').select_option("before_opening_min")
    await form.locator('input[name="minutes"]').fill("20")
    await form.locator('button[type="submit"]').click()
    error = form.locator('[data-error-for="minutes"]')
    await error.wait_for()
    assert "[opening_hours]" in await error.inner_text()  # this site has none
    await shot(page, "dashboard-schedules-error")

    await form.locator('select[name="trigger"]').select_option("at")
    await form.locator('input[name="at"]').fill("21:30")
    await form.locator('button[type="submit"]').click()
    row = page.locator('tr[data-schedule="evening"]')
    await row.wait_for()
    assert "room-b/day at 21:30, every day" in await row.inner_text()
    rows = await api.core.store.call(load_rows)
    assert [r[0] for r in rows] == ["evening"]
    # Change it: the form takes the schedule, its id read-only.
    await row.locator('button[data-action="edit"]').click()
    assert await form.locator("h2").inner_text() == "Change evening"
    assert await form.locator('input[name="id"]').get_attribute("readonly") is not None
    await form.locator('input[name="at"]').fill("22:05")
    await form.locator('button[type="submit"]').click()
    await page.locator('tr[data-schedule="evening"] >> text=at 22:05').wait_for()
    assert await page.locator("#schedule-form").count() == 1
    assert await serious_violations(page) == []
    await shot(page, "dashboard-schedules")
    await page.close()
