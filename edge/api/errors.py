"""JSON errors of the LAN API and the middleware that guarantees them.

Every error leaves the server as ``{"error": {"code", "message", "field"}}``
with a stable ``code``; anything unexpected becomes a 500 ``internal`` whose
details stay in the log, never in the response.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from edge.errors import InvalidCommand, LimitViolation, NotFound, StorageError
from edge.outage import is_storage_outage, storage_reason
from edge.shop.errors import ValidationFailed

log = logging.getLogger(__name__)

# Stable error codes (documented in docs/api.md); clients switch on these.
CODES = {
    "malformed_json": 400,
    "bad_request": 400,
    "unauthenticated": 401,
    "csrf_failed": 403,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "invalid_field": 422,
    "limit_violation": 422,
    "unsupported_command": 422,
    "too_many_attempts": 429,
    "internal": 500,
    "device_rejected": 502,
    "device_clamped": 409,
    "device_io_error": 502,
    "scene_failed": 502,
    "device_unavailable": 503,
    "storage_unavailable": 503,
    "device_timeout": 504,
}


class ApiError(Exception):
    """An error with a stable code; raised by handlers, rendered by the middleware."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = CODES[code]
        self.message = message
        self.field = field
        self.extra = extra or {}
        self.headers = headers or {}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(err: ApiError) -> web.Response:
    body = {**error_body(err.code, err.message, err.field), **err.extra}
    return web.json_response(body, status=err.status, headers=err.headers)


def invalid_field(exc: ValidationFailed) -> ApiError:
    """The one mapping of a validation error to HTTP: 422 ``invalid_field`` naming the
    field.  Bodies and queries are parsed by edge.shop.inputs, which words the error."""
    return ApiError("invalid_field", str(exc), field=exc.field)


_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        return error_for(request, exc)


def error_for(request: web.Request, exc: Exception) -> web.Response:
    """The JSON error answering ``exc`` (called in its ``except`` block, so a 500
    logs the traceback); an HTTP exception below 400 (a redirect) is raised again."""
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, ValidationFailed):
        return error_response(invalid_field(exc))
    if isinstance(exc, NotFound):
        return error_response(ApiError("not_found", str(exc), field=exc.what))
    if isinstance(exc, LimitViolation):
        return error_response(ApiError("limit_violation", str(exc), field=exc.field))
    if isinstance(exc, InvalidCommand):
        return error_response(ApiError("invalid_field", str(exc), field=exc.field))
    if isinstance(exc, StorageError):
        log.error("storage failure on %s %s: %s", request.method, request.path, exc)
        return error_response(ApiError("storage_unavailable", storage_reason(exc)))
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return error_response(
            ApiError(
                "method_not_allowed",
                f"{exc.method} is not allowed here (allowed: {allowed})",
                headers={"Allow": allowed},
            )
        )
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        code = _HTTP_CODES.get(exc.status)
        if code is None:
            code = "bad_request" if exc.status < 500 else "internal"
        http_err = ApiError(code, exc.reason)
        http_err.status = exc.status
        return error_response(http_err)
    if isinstance(exc, OSError):
        if not isinstance(request.match_info.route.resource, web.StaticResource):
            return _internal(request)
        # aiohttp's static handler lets ENAMETOOLONG and the like escape: no such file.
        return error_response(ApiError("not_found", f"no such file: {exc.strerror}", field="path"))
    if is_storage_outage(exc):
        # sqlite3 straight from a store without its own wrapper (the door's).
        log.error("storage failure on %s %s: %s", request.method, request.path, exc)
        return error_response(ApiError("storage_unavailable", storage_reason(exc)))
    return _internal(request)


def _internal(request: web.Request) -> web.Response:
    """A 500 whose details stay in the log; the incident id ties the two together."""
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error %s on %s %s", incident, request.method, request.path)
    return error_response(
        ApiError("internal", f"internal error (incident {incident}); see the controller log")
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; 400 ``malformed_json`` naming the body otherwise."""
    raw = await request.read()
    try:
        data = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError("malformed_json", f"body is not valid JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise ApiError("malformed_json", "body must be a JSON object", field="body")
    return data
