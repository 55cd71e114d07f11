"""Scene schedules on the dashboard: staff read them, managers add, change
and remove the ones stored in edge.db (the config file's are read-only here).

Edits go through the daemon's :class:`edge.schedules.ScheduleRunner`, which
validates them against the site (room, scene, opening hours) and wakes up to
the new timetable at once.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from drivers.config import LocatedError
from edge.api.auth import audit, principal
from edge.api.errors import ApiError, read_json
from edge.api.keys import CORE
from edge.schedules import ScheduleError, ScheduleRunner, runner_for
from edge.schedules_config import ScheduleSpec


def _runner(request: web.Request) -> ScheduleRunner:
    runner = runner_for(request.app[CORE])
    if runner is None:
        raise ApiError("storage_unavailable", "the scheduler is not running")
    return runner


def _spec_from(schedule_id: str, body: dict[str, object]) -> ScheduleSpec:
    if "id" in body and body["id"] != schedule_id:
        raise ApiError("invalid_field", "id: differs from the id in the URL", field="id")
    try:
        return ScheduleSpec.model_validate({**body, "id": schedule_id})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, LocatedError):
            loc = (*loc, *cause.loc)
        field = ".".join(str(p) for p in loc) or "body"
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise ApiError("invalid_field", f"{field}: {message}", field=field) from None


async def list_schedules(request: web.Request) -> web.Response:
    runner = _runner(request)
    return web.json_response(
        {
            "timezone": runner.tz.key,
            "schedules": runner.view(),
            "recent": list(reversed(runner.recent)),
        }
    )


async def put_schedule(request: web.Request) -> web.Response:
    who = principal(request)
    schedule_id = request.match_info["schedule_id"]
    spec = _spec_from(schedule_id, await read_json(request))
    runner = _runner(request)
    try:
        await runner.save(spec, who.id)
    except ScheduleError as exc:
        await audit(request, "schedule.save", schedule_id, "refused", {"reason": str(exc)})
        code = "conflict" if exc.conflict else "invalid_field"
        raise ApiError(code, f"{exc.field}: {exc}", field=exc.field) from None
    await audit(request, "schedule.save", schedule_id, "ok", {"schedule": spec.model_dump()})
    saved = next(s for s in runner.view() if s["id"] == schedule_id)
    return web.json_response(saved)


async def delete_schedule(request: web.Request) -> web.Response:
    schedule_id = request.match_info["schedule_id"]
    try:
        deleted = await _runner(request).delete(schedule_id)
    except ScheduleError as exc:
        raise ApiError("conflict", str(exc), field=exc.field) from None
    await audit(request, "schedule.delete", schedule_id, "ok" if deleted else "not_found")
    if not deleted:
        raise ApiError("not_found", f"no stored schedule {schedule_id!r}", field="schedule_id")
    return web.json_response({"ok": True, "id": schedule_id})
