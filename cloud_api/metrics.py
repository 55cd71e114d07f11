"""Prometheus metrics of the cloud API, with ``prometheus_client``.

Requests by method, route template and status, their latency by route (the
timing shared with the edge: ``edge.request_metrics``), and the process's own
figures (``process_*``).  ``GET /api/v1/metrics`` needs an admin token: the
cloud usually sits behind a reverse proxy on the same host, so "from
loopback" would not mean "from a local agent" here.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)

from cloud_api.spec import Ctx
from edge.request_metrics import RequestMetrics, timed

TEXT_FORMAT = CONTENT_TYPE_PLAIN_0_0_4


class CloudMetrics:
    """The figures of one cloud app (its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = RequestMetrics("coresync_cloud", "Cloud API")
        self.registry.register(self.http)
        ProcessCollector(registry=self.registry)

    async def exposition(self) -> bytes:
        # The process collector reads /proc: off the event loop.
        return await asyncio.to_thread(generate_latest, self.registry)


METRICS_KEY = web.AppKey("cloud_metrics", CloudMetrics)
# Outermost: it sees the status the error middleware turned every failure into.
metrics_middleware = timed(lambda request: request.app[METRICS_KEY].http)


async def metrics(c: Ctx) -> web.Response:
    body = await c.request.app[METRICS_KEY].exposition()
    return web.Response(body=body, headers={"Content-Type": TEXT_FORMAT})
