"""Prometheus metrics of the cloud API, with ``prometheus_client``.

Requests by method, route template and status, their latency by route, and
the process's own figures (``process_*``).  ``GET /api/v1/metrics`` needs an
admin token: the cloud usually sits behind a reverse proxy on the same host,
so "from loopback" would not mean "from a local agent" here.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from cloud_api.spec import Ctx

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TEXT_FORMAT = CONTENT_TYPE_PLAIN_0_0_4


class CloudMetrics:
    """The figures of one cloud app (its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "coresync_cloud_requests",
            "Cloud API requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "coresync_cloud_request_seconds",
            "Cloud API request latency by route template.",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)

    async def exposition(self) -> bytes:
        # The process collector reads /proc: off the event loop.
        return await asyncio.to_thread(generate_latest, self.registry)


METRICS_KEY = web.AppKey("cloud_metrics", CloudMetrics)


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
        # The route template, not the raw path: ids must not explode the label set.
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[METRICS_KEY]
        metrics.requests.labels(request.method, route, str(status)).inc()
        metrics.request_seconds.labels(route).observe(time.perf_counter() - started)


async def metrics(c: Ctx) -> web.Response:
    body = await c.request.app[METRICS_KEY].exposition()
    return web.Response(body=body, headers={"Content-Type": TEXT_FORMAT})
