"""Pins the aiomqtt 2.x internals that ``drivers.mqtt.connection._abandon`` relies on.

aiomqtt skips ``__aexit__`` when its connect is interrupted, leaving paho's
socket, its housekeeping task and its reusability lock behind; ``_abandon``
releases them through private attributes (``pyproject.toml`` bounds aiomqtt
below 3).  A release of aiomqtt that renames or reshapes any of them fails
here, naming it, instead of leaking sockets in production.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid

import aiomqtt
import paho.mqtt.client as paho

from drivers.mqtt.connection import _abandon
from tests.conftest import Broker


async def test_internals_used_to_abandon_a_connect_are_there(mqtt_broker: Broker) -> None:
    client = aiomqtt.Client(
        mqtt_broker.host, mqtt_broker.port, identifier=f"pin-{uuid.uuid4().hex[:8]}"
    )
    assert isinstance(client._client, paho.Client), "aiomqtt.Client._client is paho's client"
    assert callable(client._client._sock_close), "paho.Client._sock_close"
    assert hasattr(client._client, "on_socket_open"), "paho.Client.on_socket_open"
    assert inspect.iscoroutinefunction(client._misc_loop), "aiomqtt.Client._misc_loop"
    assert client._misc_task is None, "aiomqtt.Client._misc_task before a connect"
    assert isinstance(client._lock, asyncio.Lock), "aiomqtt.Client._lock"
    assert not client._lock.locked()

    await client.__aenter__()
    try:
        # Connected: aiomqtt holds its reusability lock and runs paho's housekeeping.
        assert client._lock.locked()
        misc = client._misc_task
        assert isinstance(misc, asyncio.Task) and not misc.done()
        assert client._client.socket() is not None
    finally:
        # What _abandon does when a connect is interrupted (no __aexit__).
        await _abandon(client)
    assert misc.done(), "_abandon left aiomqtt's housekeeping task running"
    assert not client._lock.locked(), "_abandon left aiomqtt's lock held"
    assert client._client.socket() is None, "_abandon left paho's socket open"
