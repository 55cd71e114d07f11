"""Hostile input on the cloud API, on SQLite and PostgreSQL alike: always a 4xx
JSON error naming the field, never a 500 (before: 500s for deep JSON, a
non-UTF-8 Authorization header and NUL characters on PostgreSQL, and orders
with ``"quantity": "2"`` or ``true`` were accepted)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from cloud_api.guard import MAX_DEPTH
from tests.test_cloud_api import AVA, Backend, backend, bearer, client, error_of, staff_token

__all__ = ["backend", "client"]  # fixtures shared with test_cloud_api

ORDER_URL = "/api/v1/shop/orders"


@pytest.mark.parametrize("quantity", ["2", True, 2.5, None, [2]])
async def test_a_quantity_must_be_an_integer(client: TestClient[Any, Any], quantity: Any) -> None:
    body = {"items": [{"product": "gua-sha-stone", "quantity": quantity}]}
    r = await client.post(ORDER_URL, json=body, headers=bearer(AVA))
    err = await error_of(r, 422)
    assert err["field"] == "items[0].quantity", err


async def test_strict_types_on_staff_bodies_too(client: TestClient[Any, Any]) -> None:
    token = await staff_token(client)
    r = await client.post("/api/v1/shop/products/gua-sha-stone/restock", json={"quantity": "5"},
                          headers=bearer(token))  # fmt: skip
    assert (await error_of(r, 422))["field"] == "quantity"


@pytest.mark.parametrize("path", [ORDER_URL, "/api/v1/auth/login", "/api/v1/sync/push"])
async def test_deep_json_is_refused_before_parsing(client: TestClient[Any, Any], path: str) -> None:
    for raw in (b"[" * 60_000, b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)):
        r = await client.post(path, data=raw, headers={**bearer(AVA),
                                                       "Content-Type": "application/json"})
        if path.endswith("sync/push"):
            assert r.status == 401  # node credentials first; deep JSON never reached parsing
            continue
        assert (await error_of(r, 400 if r.status == 400 else 422))["field"] == "body"


async def test_brackets_inside_strings_do_not_count(client: TestClient[Any, Any]) -> None:
    notes = 'a quote \\" then ' + "[" * 200
    body = {"items": [{"product": "gua-sha-stone", "quantity": 1}], "customer_notes": notes}
    r = await client.post(ORDER_URL, json=body, headers=bearer(AVA))
    assert r.status == 201, await r.text()


async def test_nul_characters_are_refused_naming_the_field(
    client: TestClient[Any, Any], backend: Backend
) -> None:
    body = {"items": [{"product": "gua-sha-stone", "quantity": 1}], "customer_notes": "a\x00b"}
    r = await client.post(ORDER_URL, json=body, headers=bearer(AVA))
    assert (await error_of(r, 422))["field"] == "customer_notes"
    r = await client.get("/api/v1/shop/products", params={"search": "ja\x00de"},
                         headers=bearer(AVA))  # fmt: skip
    assert (await error_of(r, 422))["field"] == "search"
    r = await client.get("/api/v1/shop/orders/ab%00cd", headers=bearer(AVA))
    assert (await error_of(r, 422))["field"] == "id"
    r = await client.get("/api/v1/shop/products/x%00y", headers=bearer(AVA))
    assert (await error_of(r, 422))["field"] == "slug"


@pytest.mark.parametrize("path", ["/api/v1/shop/orders", "/api/v1/sync/pull"])
async def test_a_non_utf8_authorization_header_is_a_4xx(
    client: TestClient[Any, Any], path: str
) -> None:
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
                 + b"Authorization: Node edge-1:\xff\xfe\x80secret\r\n\r\n")  # fmt: skip
    await writer.drain()
    response = await reader.read()
    writer.close()
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line.split()[1] in (b"400", b"401", b"422"), status_line
    assert b"Authorization" in response or b"credentials" in response, response[-300:]
