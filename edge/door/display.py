"""The door display: what the member at the door should read, on MQTT.

The display (a screen beside the camera, any MQTT client) subscribes to
``coresync/<site_id>/door/<room>/<lock>/display``; the daemon publishes there,
retained (a display that reconnects shows the current message), one JSON
object per change: ``state`` (``challenge``, ``enter_pin``, ``show_face``,
``open``, ``refused``, ``paused``), ``prompt`` (``blink``, ``turn_left``,
``turn_right``; challenges only), ``text`` (English; the display may
translate by state and prompt), ``ts`` and ``until`` (epoch seconds: after
``until`` the display returns to its idle screen).  The broker's own
authentication and ACLs guard the topic, as for every site topic.  Deliberately
no member id, name or refusal reason: whoever stands at the door can read it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from drivers.mqtt.connection import MqttConnection
from edge.core import EdgeCore
from edge.door.config import DoorConfig

log = logging.getLogger(__name__)

PROMPTS = {
    "blink": "Please blink",
    "turn_left": "Please turn your head to your left",
    "turn_right": "Please turn your head to your right",
}
OUTCOME_S = 4.0  # how long an outcome stays on the display


def display_topic(site_id: str, room: str, lock: str) -> str:
    return f"coresync/{site_id}/door/{room}/{lock}/display"


def display_message(event: dict[str, Any], challenge_s: float) -> dict[str, Any] | None:
    """The display message for one door event (its ``as_dict`` form), or None."""
    decision, reason, ts = event.get("decision"), event.get("reason"), float(event["ts"])
    message: dict[str, Any]
    if decision == "challenge" and reason in PROMPTS:
        message = {"state": "challenge", "prompt": reason, "text": PROMPTS[reason]}
        return {**message, "ts": ts, "until": ts + challenge_s}
    if decision == "pending":
        message = (
            {"state": "enter_pin", "text": "Please enter your PIN"}
            if reason == "awaiting_pin"
            else {"state": "show_face", "text": "Please look at the camera"}
        )
    elif decision == "unlock" and event.get("method") != "remote":
        message = {"state": "open", "text": "Welcome"}
    elif decision == "deny":
        message = {"state": "refused", "text": "Not admitted; please ask at the desk"}
    elif decision == "cooldown":
        message = {"state": "paused", "text": "Face access paused; please ask at the desk"}
    else:
        return None
    return {**message, "ts": ts, "until": ts + OUTCOME_S}


class DoorDisplay:
    """A supervised component: door events → the display topic."""

    def __init__(self, core: EdgeCore, connection: MqttConnection, door: DoorConfig) -> None:
        self.core = core
        self.conn = connection
        self.topic = display_topic(core.site_id, door.room, door.lock)
        self.challenge_s = door.decision_window_s
        self.published = 0

    async def run(self) -> None:
        sub = self.core.events.subscribe(types={"door"})
        try:
            async for event in sub:
                message = display_message(event.data, self.challenge_s)
                if message is None:
                    continue
                try:
                    payload = json.dumps(message).encode()
                    await self.conn.publish(self.topic, payload, qos=1, retain=True)
                    self.published += 1
                except Exception as exc:  # the display is a courtesy: the door goes on
                    log.warning("door display message not published: %s", exc)
        finally:
            sub.close()
