"""Prometheus text metrics, written by hand (the format is simple and the
controller gains no dependency).

``/metrics`` answers loopback clients without a token (a local node exporter
or agent scrapes it); from the LAN it needs a staff token, because device
availability and command counts describe the building.
"""

from __future__ import annotations

import time
from collections import defaultdict
from ipaddress import ip_address

from aiohttp import web
from aiohttp.typedefs import Handler

from drivers.model import Availability
from edge.api.auth import require_staff
from edge.api.keys import CORE, METRICS, SETTINGS
from edge.core import EdgeCore

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.latency_buckets: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.command_results: dict[str, int] = defaultdict(int)
        self.ws_clients = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests[(method, route, str(status))] += 1
        buckets = self.latency_buckets.setdefault(route, [0] * len(BUCKETS))
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                buckets[i] += 1
        self.latency_sum[route] += seconds
        self.latency_count[route] += 1

    def command_result(self, result: str) -> None:
        self.command_results[result] += 1

    def render(self, core: EdgeCore) -> str:
        out = [
            "# HELP coresync_api_requests_total HTTP requests by method, route and status.",
            "# TYPE coresync_api_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            labels = _labels(method=method, route=route, status=status)
            out.append(f"coresync_api_requests_total{labels} {n}")
        out += [
            "# HELP coresync_api_request_seconds HTTP request latency by route.",
            "# TYPE coresync_api_request_seconds histogram",
        ]
        for route, buckets in sorted(self.latency_buckets.items()):
            for bound, n in zip(BUCKETS, buckets, strict=True):
                out.append(
                    f"coresync_api_request_seconds_bucket{_labels(route=route, le=str(bound))} {n}"
                )
            count = self.latency_count[route]
            out.append(
                f"coresync_api_request_seconds_bucket{_labels(route=route, le='+Inf')} {count}"
            )
            total = self.latency_sum[route]
            out.append(f"coresync_api_request_seconds_sum{_labels(route=route)} {total:.6f}")
            out.append(f"coresync_api_request_seconds_count{_labels(route=route)} {count}")
        out += [
            "# HELP coresync_api_websocket_clients Connected WebSocket clients.",
            "# TYPE coresync_api_websocket_clients gauge",
            f"coresync_api_websocket_clients {self.ws_clients}",
            "# HELP coresync_device_available 1 when the device is online, else 0.",
            "# TYPE coresync_device_available gauge",
        ]
        for room_id, device in sorted(core.all_devices(), key=lambda rd: rd[1].device_id):
            up = int(device.snapshot().availability is Availability.ONLINE)
            out.append(
                f"coresync_device_available{_labels(room=room_id, device=device.device_id)} {up}"
            )
        out += [
            "# HELP coresync_device_commands_total Device commands by result.",
            "# TYPE coresync_device_commands_total counter",
        ]
        for result, n in sorted(self.command_results.items()):
            out.append(f"coresync_device_commands_total{_labels(result=result)} {n}")
        return "\n".join(out) + "\n"


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        resource = request.match_info.route.resource
        # The route template, not the raw path: room ids must not explode the label set.
        route = resource.canonical if resource is not None else "unmatched"
        metrics: Metrics = request.app[METRICS]
        metrics.observe(request.method, route, status, time.perf_counter() - started)


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ip_address(remote).is_loopback
    except ValueError:
        return False


async def metrics_handler(request: web.Request) -> web.Response:
    if not (request.app[SETTINGS].metrics_public_on_loopback and _is_loopback(request.remote)):
        require_staff(request)
    metrics: Metrics = request.app[METRICS]
    return web.Response(
        text=metrics.render(request.app[CORE]),
        content_type="text/plain",
        headers={"X-Prometheus-Format": "0.0.4"},
    )
