"""Structured, journald-friendly logging with secret redaction.

``setup_logging(level, fmt)`` sends every record to stdout as one line:

- ``fmt="kv"``:   ``ts=... level=info logger=edge.core msg="scene relax applied"``
- ``fmt="json"``: ``{"ts": "...", "level": "info", "logger": "...", "msg": "..."}``

Under systemd (``JOURNAL_STREAM`` names our stdout) lines carry no timestamp
(journald stamps them) and start with a ``<N>`` syslog priority prefix, so
``journalctl -p warning`` works.

Every line passes a :class:`Redactor` first: values registered with
:func:`register_secret` (the MQTT password, the template key, ...), API
tokens, ``password=...``-style pairs, ``Bearer`` credentials, long
base64/hex blobs and long ``bytes`` reprs (template or image bytes) are
replaced by ``[REDACTED]`` in the message and in tracebacks alike.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import re
import sys
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["kv", "json"]
FORMATS: tuple[LogFormat, ...] = ("kv", "json")
MASK = "[REDACTED]"
_MIN_SECRET_LEN = 4
NOISY_LOGGERS = ("amqtt", "pymodbus", "transitions")

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # key=value / "key": "value" pairs whose key says secret.
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|api[_-]?key|credential|csrf)[\"']?\s*[:=]\s*[\"']?)"
            r"([^\s\"',;}&]+)"
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + MASK),
    # LAN API staff / tablet tokens (edge.api.auth STAFF_PREFIX, TABLET_PREFIX).
    (re.compile(r"\bcs[st]_[A-Za-z0-9_-]{8,}"), MASK),
    # Long bytes reprs: template vectors, image data, keys.
    (re.compile(r"b'(?:[^'\\]|\\.){32,}'|b\"(?:[^\"\\]|\\.){32,}\""), "b'" + MASK + "'"),
    # Hex blobs longer than a SHA-1 (uuid4().hex ids, 32 chars, stay readable).
    (re.compile(r"\b[0-9a-fA-F]{41,}\b"), MASK),
]
# base64/base64url runs; redacted only when they mix upper, lower and digits,
# so topics, paths and ids (lower case) stay readable.
_BASE64ISH = re.compile(r"[A-Za-z0-9+/_-]{32,}={0,2}")


def _looks_random(s: str) -> bool:
    return (
        any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)
    )


class Redactor:
    """Removes registered secret values and secret-looking strings from text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._compiled: re.Pattern[str] | None = None

    def register(self, value: str | bytes | None) -> None:
        """Never print ``value`` (too-short values are ignored: they would mask words)."""
        if value is None:
            return
        forms = {value} if isinstance(value, str) else {value.hex(), repr(value)}
        if isinstance(value, bytes):
            import base64

            forms.add(base64.b64encode(value).decode())
        with self._lock:
            self._secrets |= {f for f in forms if len(f) >= _MIN_SECRET_LEN}
            # Longest first so a secret containing another is masked whole.
            alts = sorted(self._secrets, key=len, reverse=True)
            self._compiled = re.compile("|".join(re.escape(s) for s in alts)) if alts else None

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._compiled = None

    def __call__(self, text: str) -> str:
        compiled = self._compiled
        if compiled is not None:
            text = compiled.sub(MASK, text)
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        return _BASE64ISH.sub(lambda m: MASK if _looks_random(m.group(0)) else m.group(0), text)


REDACTOR = Redactor()


def register_secret(value: str | bytes | None) -> None:
    """Register a value that must never appear in a log line."""
    REDACTOR.register(value)


def redact(text: str) -> str:
    return REDACTOR(text)


class RedactionFilter(logging.Filter):
    """Renders the message (and traceback) early and redacts it in place."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor(record.stack_info)
        return True


def _kv_quote(value: str) -> str:
    if value and not any(c in value for c in ' "=\\\n\t'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\t", "\\t") + '"'


class StructuredFormatter(logging.Formatter):
    """One line per record, key=value or JSON; ``journal`` drops the
    timestamp and adds the ``<N>`` priority prefix."""

    def __init__(self, fmt: LogFormat = "kv", *, journal: bool = False) -> None:
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"fmt: expected one of {FORMATS}, got {fmt!r}")
        self.fmt = fmt
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, str] = {}
        if not self.journal:
            ts = datetime.fromtimestamp(record.created, UTC)
            fields["ts"] = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        fields["level"] = record.levelname.lower()
        fields["logger"] = record.name
        fields["msg"] = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exc"] = record.exc_text
        if self.fmt == "json":
            line = json.dumps(fields, ensure_ascii=False)
        else:
            line = " ".join(f"{k}={_kv_quote(v)}" for k, v in fields.items())
        if self.journal:
            prio = _PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
            line = f"<{prio}>{line}"
        return line


def journal_attached(stream: TextIO) -> bool:
    """True when ``stream`` is the journald stream systemd gave us (JOURNAL_STREAM)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


class _InProcessQueueHandler(logging.handlers.QueueHandler):
    """Hands each record to the writer thread as it is: the listener is in
    this process, so the record keeps its args and exception for the
    structured formatter (the stock ``prepare`` flattens both into text)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


_listener: logging.handlers.QueueListener | None = None


def flush_logging() -> None:
    """Write out every record logged so far (the writer thread drains its queue)."""
    if _listener is not None and _listener._thread is not None:
        _listener.stop()
        _listener.start()


def stop_logging() -> None:
    """Write out what is queued and stop the writer thread (at exit, and in tests)."""
    global _listener
    if _listener is not None:
        if _listener._thread is not None:
            _listener.stop()
        _listener = None


atexit.register(stop_logging)


def setup_logging(
    level: str = "INFO",
    fmt: LogFormat = "kv",
    *,
    stream: TextIO | None = None,
    journal: bool | None = None,
    secrets: Iterable[str | bytes] = (),
) -> logging.Handler:
    """Route all logging to ``stream`` (stdout) as structured, redacted lines.

    ``level`` is a name (DEBUG, INFO, WARNING, ERROR); a bad one raises
    ValueError naming ``level``.  ``journal=None`` detects journald.
    Calling it again replaces the handler it installed.

    Records are written by one thread behind a queue, so logging from the
    event loop never waits on stdout (a slow journal, a full pipe).
    Returns the handler that writes the lines.
    """
    global _listener
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"level: unknown log level {level!r}")
    out = stream if stream is not None else sys.stdout
    for value in secrets:
        register_secret(value)
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        StructuredFormatter(fmt, journal=journal_attached(out) if journal is None else journal)
    )
    handler.addFilter(RedactionFilter())
    stop_logging()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, handler)
    _listener.start()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(_InProcessQueueHandler(records))
    root.setLevel(numeric)
    # Third-party chatter at INFO is noise for an operator.
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    return handler
