"""Structured logging, journald mode and redaction; and a real demo run whose
whole output must not contain a secret."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.ops.logging import (
    MASK,
    REDACTOR,
    StructuredFormatter,
    flush_logging,
    journal_attached,
    redact,
    register_secret,
    setup_logging,
    stop_logging,
)
from tests.conftest import Broker, free_port
from tests.parts import missing


@pytest.fixture
def clean_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    stop_logging()
    REDACTOR.clear()


def test_redacts_registered_secrets_and_secret_looking_strings(clean_logging: None) -> None:
    register_secret("hunter2-mqtt")
    register_secret(b"\x01\x02" * 16)
    text = redact(
        "pw hunter2-mqtt; token=abc.def; Authorization: Bearer eyJhbGciOiJI.xyz; "
        "staff css_q3Zk9_Lm2xYw8PaRt5Ufqwe tablet cst_AbCdEf0123456789; "
        "key 0102010201020102010201020102010201020102010201020102010201020102; "
        "blob b'\\x89PNG\\r\\n\\x1a\\n\\x00\\x00\\x00\\rIHDR\\x00\\x00\\x02\\x00'; "
        "b64 QmFzZTY0IGVuY29kZWQgdGVtcGxhdGUgYnl0ZXMgaGVyZQ=="
    )
    for leaked in (
        "hunter2-mqtt",
        "abc.def",
        "eyJhbGciOiJI",
        "q3Zk9_Lm2xYw8PaRt5Ufqwe",
        "AbCdEf0123456789",
        "0102010201",
        "IHDR",
        "QmFzZTY0",
    ):
        assert leaked not in text, text
    assert text.count(MASK) >= 8


def test_keeps_ids_topics_and_paths_readable() -> None:
    line = (
        "order 3f2b8c0e9d1a4b7c8e6f5a4b3c2d1e0f on coresync/demo-spa/rooms/treatment-1/state"
        " path /var/lib/coresync-edge/initial-admin-password"
    )
    assert redact(line) == line


def test_kv_and_json_lines(clean_logging: None) -> None:
    out = io.StringIO()
    setup_logging("DEBUG", "kv", stream=out, journal=False, secrets=["s3cr3t-value"])
    logging.getLogger("edge.test").info('scene "relax" with s3cr3t-value\nsecond line')
    flush_logging()  # records are written by the logging thread
    line = out.getvalue()
    assert line.count("\n") == 1  # one record, one line
    assert re.match(r"ts=\S+Z level=info logger=edge.test msg=", line)
    assert "s3cr3t-value" not in line and MASK in line
    out.truncate(0), out.seek(0)
    setup_logging("INFO", "json", stream=out, journal=False)
    logging.getLogger("edge.test").debug("hidden")
    try:
        raise ValueError("password=swordfish")
    except ValueError:
        logging.getLogger("edge.test").exception("failed")
    flush_logging()
    record = json.loads(out.getvalue())
    assert record["level"] == "error" and "ValueError" in record["exc"]
    assert "swordfish" not in out.getvalue()


def test_journal_mode_has_priority_prefix_and_no_timestamp() -> None:
    fmt = StructuredFormatter("kv", journal=True)
    rec = logging.LogRecord("edge.core", logging.WARNING, __file__, 1, "door %s", ("open",), None)
    assert fmt.format(rec) == '<4>level=warning logger=edge.core msg="door open"'


def test_journal_stream_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    with tempfile.TemporaryFile("w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert journal_attached(f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not journal_attached(f)


def test_bad_level_names_the_field(clean_logging: None) -> None:
    with pytest.raises(ValueError, match="level"):
        setup_logging("LOUD")


# The daemon under test: our logging set up first (as edge.cli will), then the real CLI.
DEMO = """
import logging, os, sys
from edge.ops.logging import setup_logging
setup_logging("DEBUG", "kv", secrets=[os.environ["CORESYNC_TEST_SECRET"]])
log = logging.getLogger("edge.test")
# Deliberate leaks: the filter must catch them in the real process.
log.info("mqtt password is %s", os.environ["CORESYNC_TEST_SECRET"])
log.info("issued token css_Zx81_kfP20bqLw9tYa7mN3")
from edge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_demo_output_never_contains_a_secret(tmp_path: Path, mqtt_broker: Broker) -> None:
    pub = shutil.which("mosquitto_pub")
    sub = shutil.which("mosquitto_sub")
    if pub is None or sub is None:
        missing("mosquitto-clients")
    secret = "Mq77-pass-" + os.urandom(6).hex()
    broker = f"{mqtt_broker.host}:{mqtt_broker.port}"
    proc = subprocess.Popen(
        [sys.executable, "-c", DEMO, "--log-level", "DEBUG", "demo",
         "--data-dir", str(tmp_path / "data"), "--http-port", str(free_port()),
         "--broker", broker],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "CORESYNC_TEST_SECRET": secret},
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Press Ctrl-C" in line:
            break
    try:
        assert any("Press Ctrl-C" in line for line in lines), "".join(lines)
        # -d: says when it is subscribed, so the scene is asked for after that.
        state = subprocess.Popen(
            [sub, "-h", mqtt_broker.host, "-p", str(mqtt_broker.port), "-C", "1", "-W", "15",
             "-d", "-t", "coresync/demo-spa/rooms/treatment-1/state"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert state.stdout is not None
        seen = ""
        while "SUBACK" not in seen:
            seen += state.stdout.readline() or "(mosquitto_sub ended)"
            assert "(mosquitto_sub ended)" not in seen, seen
        subprocess.run(
            [pub, "-h", mqtt_broker.host, "-p", str(mqtt_broker.port),
             "-t", "coresync/demo-spa/rooms/treatment-1/scene/set", "-m", "relax"],
            check=True,
        )  # fmt: skip
        state.wait(timeout=20)
        seen += state.stdout.read()  # not communicate(): it would skip what readline buffered
        assert "received PUBLISH" in seen, seen  # the scene changed the room's state
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    output = "".join(lines) + rest
    admin_pw = (tmp_path / "data" / "initial-admin-password").read_text().strip()
    assert 'logger=edge.test msg="mqtt password is [REDACTED]"' in output
    assert secret not in output
    assert not re.search(r"cs[st]_[A-Za-z0-9_-]{8,}", output)
    assert not re.search(r"(?i)bearer\s+[A-Za-z0-9._-]{8,}", output)
    # Not a terminal: the initial admin password is named by its file only.
    assert admin_pw not in output
