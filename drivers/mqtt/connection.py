"""MQTT transport: one broker connection for the whole daemon.

:class:`MqttConnection` keeps one :class:`aiomqtt.Client` connected at a time
under a supervisor loop (:meth:`MqttConnection.run`, or ``start()``/``stop()``).

Reconnect policy: after a failed attempt or a lost connection the supervisor
sleeps ``drivers.backoff.backoff_delay(attempt, reconnect_min_s, reconnect_max_s)``
("full jitter": a site's clients do not reconnect in lockstep after a broker
restart).  ``attempt`` counts failures since the last connection that stayed
up for :data:`STABLE_SESSION_S`, so a connection that is accepted and then
dropped at once (duplicate client id, ACL kick) still backs off.

On every connect it subscribes every registered filter again (one SUBSCRIBE
packet for all of them), publishes a retained ``online`` on
``coresync/<site_id>/status`` (the last will is a retained ``offline`` there)
and runs the ``on_connect`` callbacks, so callers can republish their
retained state.  A clean stop publishes ``offline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
from paho.mqtt.client import topic_matches_sub

from drivers.backoff import backoff_delay
from drivers.errors import TransportError
from drivers.mqtt.config import MqttBrokerConfig
from drivers.mqtt.errors import MqttCredentialError

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]
OnConnect = Callable[[], Awaitable[None]]
OnDisconnect = Callable[[], None]

STABLE_SESSION_S = 10.0
STOP_PUBLISH_TIMEOUT_S = 2.0
# Paho leaves Nagle on; small QoS 1 packets then wait out the peer's delayed
# ACK (~40 ms per publish on Linux).
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
ONLINE = b"online"
OFFLINE = b"offline"


def status_topic(site_id: str) -> str:
    return f"coresync/{site_id}/status"


def _raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library swallowed.

    On Python 3.11, ``asyncio.wait_for`` (used inside aiomqtt's connect) returns
    the result instead of raising when a cancel lands just as the CONNACK
    arrives; the task's pending-cancel count still shows it.  Without this, a
    stop during connect would leave the connection running forever.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _abandon(client: aiomqtt.Client) -> None:
    """Release what aiomqtt 2.x leaves behind when its connect is interrupted.

    A cancel (or error) inside ``Client.__aenter__`` skips ``__aexit__``, so
    the paho socket and aiomqtt's housekeeping task stay alive; close both.
    These private attributes are pinned by tests/test_mqtt_aiomqtt_internals.py
    (and aiomqtt is bounded below 3 in pyproject.toml).
    """
    paho = client._client

    # paho's connect runs on an executor thread that a cancel does not stop:
    # it may still open a socket and ask the loop to start the housekeeping
    # task after this returns. Close such a late socket at once, and make a
    # late housekeeping task end as soon as it starts.
    def close_late_socket(*_: object) -> None:
        with contextlib.suppress(Exception):
            paho._sock_close()

    async def no_housekeeping() -> None:
        return None

    paho.on_socket_open = close_late_socket
    client._misc_loop = no_housekeeping  # type: ignore[method-assign]
    with contextlib.suppress(Exception):
        paho.disconnect()
    with contextlib.suppress(Exception):
        paho._sock_close()
    misc = client._misc_task
    await asyncio.sleep(0)  # let aiomqtt's call_soon_threadsafe callbacks run
    misc = client._misc_task or misc
    if misc is not None:
        misc.cancel()
        await asyncio.gather(misc, return_exceptions=True)
    if client._lock.locked():
        client._lock.release()


class MqttConnection:
    """The daemon's broker connection; see the module docstring for the policy."""

    def __init__(
        self,
        config: MqttBrokerConfig,
        *,
        site_id: str,
        client_id: str | None = None,
        node_id: str | None = None,
    ) -> None:
        self.config = config
        self.site_id = site_id
        # Two nodes of one site may share a broker: the node id keeps their
        # default client ids apart (the broker drops a client whose id reconnects).
        default_id = f"coresync-{site_id}" + (f"-{node_id}" if node_id else "")
        self.client_id = client_id or config.client_id or default_id
        self.status_topic = status_topic(site_id)
        self._handlers: dict[str, list[Handler]] = {}
        self._wildcards: list[str] = []
        self._on_connect: list[OnConnect] = []
        self._on_disconnect: list[OnDisconnect] = []
        self._client: aiomqtt.Client | None = None
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._connected_at: float | None = None
        self.connects = 0  # successful connects so far, for tests and metrics

    # -- registration ----------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(topic, payload)`` for every message matching ``topic_filter``.

        Kept across reconnects.  Handlers run on the event loop and must not
        block, and should be idempotent: the broker sends a retained message
        once per matching SUBSCRIBE, so overlapping filters can see it twice.
        Returns a function that removes the handler.
        """
        handlers = self._handlers.setdefault(topic_filter, [])
        if ("+" in topic_filter or "#" in topic_filter) and topic_filter not in self._wildcards:
            self._wildcards.append(topic_filter)
        handlers.append(handler)
        client = self._client
        if client is not None and self._up.is_set() and len(handlers) == 1:
            self._spawn(self._subscribe_now(client, topic_filter), f"subscribe:{topic_filter}")

        def remove() -> None:
            with contextlib.suppress(ValueError):
                handlers.remove(handler)

        return remove

    def add_on_connect(self, callback: OnConnect) -> None:
        """Await ``callback()`` after every (re)connect, once subscriptions are in place."""
        self._on_connect.append(callback)

    def add_on_disconnect(self, callback: OnDisconnect) -> None:
        """Call ``callback()`` (sync, must not block) whenever the connection is lost."""
        self._on_disconnect.append(callback)

    # -- state -------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._up.is_set()

    async def connected(self) -> None:
        await self._up.wait()

    async def disconnected(self) -> None:
        await self._down.wait()

    # -- publishing --------------------------------------------------------------------------
    async def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        wait_connected_s: float = 0.0,
        ack_timeout_s: float = 10.0,
    ) -> None:
        """Publish and return once the broker has it (PUBACK for QoS 1).

        Raises TransportError when not connected (after waiting up to
        ``wait_connected_s`` for a connection), when the connection drops
        before the acknowledgement, or after ``ack_timeout_s`` seconds.  A QoS 1
        message whose PUBACK was lost may still have been delivered.
        """
        if not self._up.is_set() and wait_connected_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), wait_connected_s)
        client = self._client
        if client is None or not self._up.is_set():
            raise TransportError(f"not connected to MQTT broker {self._where()}")
        # aiomqtt waits for a PUBACK even after the socket died; race it with the drop.
        work = asyncio.create_task(
            client.publish(topic, payload, qos=qos, retain=retain), name=f"mqtt-publish:{topic}"
        )
        lost = asyncio.create_task(self._down.wait(), name=f"mqtt-publish-watch:{topic}")
        try:
            done, _ = await asyncio.wait(
                {work, lost}, timeout=ack_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for fut in (work, lost):
                fut.cancel()
            await asyncio.gather(work, lost, return_exceptions=True)
        if work in done and not work.cancelled():
            exc = work.exception()
            if exc is None:
                return
            raise TransportError(f"publish to {topic} failed: {exc}") from exc
        if lost in done:
            raise TransportError(f"connection lost before the broker acknowledged {topic}")
        raise TransportError(f"broker did not acknowledge {topic} in {ack_timeout_s:g}s")

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Run the supervisor in a task of our own (alternative to awaiting :meth:`run`)."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self.run(), name=f"mqtt-connection:{self.client_id}")

    async def stop(self) -> None:
        """Publish ``offline``, disconnect cleanly and end the supervisor. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None and not runner.done():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def run(self) -> None:
        """Connect, and reconnect forever, until cancelled (cancel = clean stop)."""
        attempt = 0
        loop = asyncio.get_running_loop()
        while True:
            self._connected_at = None
            try:
                await self._session()
            except (aiomqtt.MqttError, MqttCredentialError) as exc:
                log.warning("MQTT broker %s: %s", self._where(), exc)
            if (
                self._connected_at is not None
                and loop.time() - self._connected_at >= STABLE_SESSION_S
            ):
                attempt = 0
            delay = backoff_delay(attempt, self.config.reconnect_min_s, self.config.reconnect_max_s)
            attempt += 1
            _raise_if_cancelling()
            log.info("MQTT reconnect to %s in %.2fs (attempt %d)", self._where(), delay, attempt)
            await asyncio.sleep(delay)

    # -- internals ---------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def _make_client(self) -> aiomqtt.Client:
        cfg = self.config
        secret = cfg.resolve_secret()
        tls: dict[str, Any] = {}
        if cfg.tls:
            ca = str(cfg.ca_file) if cfg.ca_file is not None else None
            tls["tls_params"] = aiomqtt.TLSParameters(ca_certs=ca)
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=None if secret is None else secret.get_secret_value(),
            identifier=self.client_id,
            keepalive=cfg.keepalive,
            timeout=10.0,
            will=aiomqtt.Will(self.status_topic, OFFLINE, qos=1, retain=True),
            socket_options=NO_DELAY,
            **tls,
        )

    async def _session(self) -> None:
        """One connection, from connect to loss (returns or raises MqttError)."""
        client = self._make_client()  # a fresh client: aiomqtt state does not survive a drop
        clean_stop = False
        try:
            await client.__aenter__()
        except BaseException:
            await _abandon(client)
            raise
        try:
            try:
                _raise_if_cancelling()
                filters = list(self._handlers)
                if filters:
                    # One SUBSCRIBE carrying every filter (as Home Assistant
                    # does): one round trip per reconnect, not one per topic.
                    await client.subscribe([(f, 1) for f in filters])
                await client.publish(self.status_topic, ONLINE, qos=1, retain=True)
                self._client = client
                self._connected_at = asyncio.get_running_loop().time()
                self.connects += 1
                self._down.clear()
                self._up.set()
                log.info("MQTT connected to %s as %s", self._where(), self.client_id)
                if self._on_connect:
                    self._spawn(self._run_on_connect(), "on-connect")
                # Every await above went through aiomqtt's wait_for: check again.
                _raise_if_cancelling()
                async for message in client.messages:
                    self._dispatch(str(message.topic), message.payload)
            except asyncio.CancelledError:
                # Cancelled = clean stop: say so before the graceful DISCONNECT
                # (which keeps the broker from sending the last will).
                clean_stop = True
                if self._up.is_set():
                    with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                        await asyncio.wait_for(
                            client.publish(self.status_topic, OFFLINE, qos=1, retain=True),
                            STOP_PUBLISH_TIMEOUT_S,
                        )
                raise
            finally:
                await self._end_session(clean_stop)
        finally:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)

    async def _end_session(self, clean_stop: bool) -> None:
        was_up = self._up.is_set()
        self._client = None
        self._up.clear()
        self._down.set()
        tasks, self._session_tasks = self._session_tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if was_up:
            if clean_stop:
                log.info("MQTT disconnected from %s", self._where())
            else:
                log.warning("MQTT connection to %s lost", self._where())
            for callback in list(self._on_disconnect):
                try:
                    callback()
                except Exception:
                    log.exception("on_disconnect callback %r failed", callback)

    async def _subscribe_now(self, client: aiomqtt.Client, topic_filter: str) -> None:
        await client.subscribe(topic_filter, qos=1)

    async def _run_on_connect(self) -> None:
        for callback in list(self._on_connect):
            try:
                await callback()
            except Exception:
                log.exception("on_connect callback %r failed", callback)

    def _spawn(self, coro: Awaitable[None], what: str) -> None:
        async def wrapped() -> None:
            try:
                await coro
            except aiomqtt.MqttError as exc:
                log.warning("MQTT %s failed: %s", what, exc)

        task = asyncio.create_task(wrapped(), name=f"mqtt:{self.client_id}:{what}")
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)

    def _dispatch(self, topic: str, payload: Any) -> None:
        if isinstance(payload, bytes | bytearray):
            data = bytes(payload)
        else:
            data = b"" if payload is None else str(payload).encode()
        # Exact filters by lookup, wildcard filters by matching: a site has
        # hundreds of exact device topics and a handful of wildcards.
        matched = [self._handlers.get(topic, [])]
        for topic_filter in self._wildcards:
            if topic_matches_sub(topic_filter, topic):
                matched.append(self._handlers[topic_filter])
        for handlers in matched:
            for handler in list(handlers):
                try:
                    handler(topic, data)
                except Exception:
                    # One bad handler must not take the connection down for everyone.
                    log.exception("MQTT handler %r failed on %s", handler, topic)
