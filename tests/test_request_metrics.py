"""The request timing shared by the edge and the cloud (edge.request_metrics):
one middleware, labelled by route template, recording the status the client
got, rendered by prometheus_client in its conventions and read back with its
own parser.  A real aiohttp server; on the edge's real app too."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge.api.keys import METRICS
from edge.request_metrics import RequestMetrics, timed
from tests.test_api_support import ApiSite, api

__all__ = ["api"]


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_one_middleware_times_by_route_template_with_the_status_sent() -> None:
    metrics = RequestMetrics("demo", "Demo")
    registry = CollectorRegistry(auto_describe=True)
    registry.register(metrics)

    async def item(request: web.Request) -> web.Response:
        if request.match_info["item_id"] == "bad":
            raise ValueError("turned into a 418 by the app's own error handling")
        return web.json_response({"ok": True})

    def teapot(request: web.Request, exc: Exception) -> web.StreamResponse:
        if isinstance(exc, ValueError):
            return web.json_response({"error": "teapot"}, status=418)
        raise exc  # aiohttp's own 404 goes on as it was

    def stamp(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Stamped"] = "yes"

    app = web.Application(
        middlewares=[timed(lambda request: metrics, on_error=teapot, finish=stamp)]
    )
    app.router.add_get("/items/{item_id}", item)
    async with TestClient(TestServer(app)) as client:
        for path in ("/items/a", "/items/b", "/items/bad", "/nowhere"):
            resp = await client.get(path)
            # the app's finishing touch on its answers, errors it made included
            assert (resp.headers.get("X-Stamped") == "yes") == (path != "/nowhere")
    got = samples(registry)
    route = "/items/{item_id}"
    ok = (("method", "GET"), ("route", route), ("status", "200"))
    assert got[("demo_requests_total", ok)] == 2  # two ids, one label set
    assert got[("demo_requests_total", (*ok[:2], ("status", "418")))] == 1
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert got[("demo_requests_total", unmatched)] == 1
    count = got[("demo_request_seconds_count", (("route", route),))]
    assert count == 3
    buckets = [
        value
        for (name, labels), value in got.items()
        if name == "demo_request_seconds_bucket" and ("route", route) in labels
    ]
    assert buckets == sorted(buckets) and buckets[-1] == count  # cumulative, +Inf = count
    assert got[("demo_request_seconds_sum", (("route", route),))] > 0
    assert not any(name.endswith("_created") for name, _ in got)


async def test_the_lan_api_counts_its_requests(api: ApiSite) -> None:
    await api.client.get("/api/v1/rooms/room-a", headers=api.auth("staff1"))
    await api.client.get("/api/v1/rooms/room-a")
    await api.client.get("/api/v1/nothing-here")
    metrics = api.client.app[METRICS]

    def count(route: str, status: str) -> float:
        return metrics.value(
            "coresync_api_requests_total", method="GET", route=route, status=status
        )

    assert count("/api/v1/rooms/{room_id}", "200") == 1
    assert count("/api/v1/rooms/{room_id}", "401") == 1  # after the error handling
    assert count("unmatched", "404") == 1
    seconds = metrics.value("coresync_api_request_seconds_count", route="/api/v1/rooms/{room_id}")
    assert seconds == 2
