"""Sending one alert through one channel: e-mail over SMTP (aiosmtplib) or an
ntfy-compatible JSON webhook (aiohttp).  A failure raises
:class:`DeliveryFailed` with a reason fit for a log line (never a secret);
the dispatcher keeps the message and retries."""

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib

from edge.alerts.config import ChannelConfig, EmailChannelConfig, WebhookChannelConfig
from edge.alerts.errors import AlertError, DeliveryFailed

PRIORITY = {"critical": 5, "warning": 4, "info": 3}  # ntfy: 5 = max


def _read_secret(cfg: ChannelConfig) -> str | None:
    """The channel's secret from its credential or file (a few bytes)."""
    if cfg.secret_credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise DeliveryFailed(
                "secret_credential: $CREDENTIALS_DIRECTORY is not set "
                "(run under systemd with LoadCredential=)"
            )
        path = Path(directory) / cfg.secret_credential
    elif cfg.secret_file is not None:
        path = cfg.secret_file
    else:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise DeliveryFailed(f"cannot read the secret file {path}: {exc.strerror}") from None


async def secret_of(cfg: ChannelConfig) -> str | None:
    return await asyncio.to_thread(_read_secret, cfg)


async def send(cfg: ChannelConfig, site_name: str, alert: dict[str, Any]) -> None:
    """Deliver ``alert`` (``Alert.public()``) through ``cfg``; DeliveryFailed if not."""
    if isinstance(cfg, EmailChannelConfig):
        await _send_email(cfg, site_name, alert)
    elif isinstance(cfg, WebhookChannelConfig):
        await _send_webhook(cfg, site_name, alert)
    else:  # pragma: no cover - the config union has two members
        raise AlertError(f"unknown channel type {type(cfg).__name__}")


def _title(site_name: str, alert: dict[str, Any]) -> str:
    repeat = "still unacknowledged: " if alert.get("repeat") else ""
    subject = f" ({alert['subject']})" if alert.get("subject") else ""
    return f"[{site_name}] {repeat}{alert['kind'].replace('_', ' ')}{subject}"


def _body(alert: dict[str, Any]) -> str:
    lines = [
        alert["message"],
        "",
        f"Kind: {alert['kind']}  Severity: {alert['severity']}",
        f"First seen: {alert['first_at']}  Occurrences: {alert['count']}",
        "Acknowledge it on the staff dashboard (Alerts) to stop the repeats.",
    ]
    return "\n".join(lines)


async def _send_email(cfg: EmailChannelConfig, site_name: str, alert: dict[str, Any]) -> None:
    msg = EmailMessage()
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.recipients)
    msg["Subject"] = _title(site_name, alert)
    msg["X-CoreSync-Alert"] = f"{alert['id']}"
    msg.set_content(_body(alert))
    password = await secret_of(cfg) if cfg.username is not None else None
    try:
        await aiosmtplib.send(
            msg,
            hostname=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=password,
            use_tls=cfg.security == "tls",
            start_tls=cfg.security == "starttls",
            timeout=cfg.timeout_s,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        # aiosmtplib's messages carry the server's reply, never our password.
        raise DeliveryFailed(f"SMTP {cfg.host}:{cfg.port}: {type(exc).__name__}: {exc}") from None


async def _send_webhook(cfg: WebhookChannelConfig, site_name: str, alert: dict[str, Any]) -> None:
    token = await secret_of(cfg)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {
        "topic": cfg.topic,
        "title": _title(site_name, alert),
        "message": alert["message"],
        "priority": PRIORITY.get(alert["severity"], 4),
        "tags": ["warning", alert["kind"]],
        "coresync": {k: alert[k] for k in ("id", "kind", "subject", "count", "repeat")},
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)) as http,
            http.post(cfg.url, json=body, headers=headers) as resp,
        ):
            if resp.status >= 300:
                raise DeliveryFailed(f"webhook {cfg.url}: HTTP {resp.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryFailed(f"webhook {cfg.url}: {type(exc).__name__}: {exc}") from None
