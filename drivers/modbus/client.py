"""The pymodbus client of one bus (TCP or RTU), built to our policy, and the
names of Modbus exception codes.  drivers/modbus/bus.py drives it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from drivers.modbus.config import ModbusBusConfig, ModbusRtuBusConfig

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class _QuietTimeouts(logging.Filter):
    """pymodbus logs every unanswered request at ERROR with a frame dump; a
    dead slave behind a live gateway would print one every poll.  The device
    reports the outage itself (one warning on entry, one on recovery)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No response received")


logging.getLogger("pymodbus.logging").addFilter(_QuietTimeouts())

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "slave device failure",
    5: "acknowledge",
    6: "slave device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


def make_client(cfg: ModbusBusConfig, on_trace_connect: Callable[[bool], None]) -> Client:
    """The bus's client: one timeout per request, no retries, no reconnects."""
    # retries=0 and no pymodbus auto-reconnect: a dead slave costs exactly
    # one timeout, and reconnect policy (full jitter) is ours.
    common: dict[str, Any] = {
        "timeout": cfg.timeout_s,
        "retries": 0,
        "reconnect_delay": 0,
        "name": f"modbus-{cfg.id}",
        "trace_connect": on_trace_connect,
    }
    client: Client
    if isinstance(cfg, ModbusRtuBusConfig):
        client = AsyncModbusSerialClient(
            cfg.port,
            framer=FramerType.RTU,
            baudrate=cfg.baudrate,
            bytesize=cfg.bytesize,
            parity=cfg.parity,
            stopbits=cfg.stopbits,
            **common,
        )
    else:
        client = AsyncModbusTcpClient(cfg.host, port=cfg.port, **common)
    # pymodbus drops a TCP link after this many unanswered requests in a
    # row; a success from any slave resets the count, so one dead slave on
    # a healthy gateway never tears the link down.
    client.set_max_no_responses(cfg.max_silent_requests)
    return client
