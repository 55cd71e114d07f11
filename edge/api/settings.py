"""Settings of the LAN API (passed to ``create_app``; the daemon builds them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from drivers.config import StrictModel

REPO_WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
# An installed wheel carries web/ as the package edge.web (see setup.py).
PACKAGED_WEB_DIR = Path(__file__).resolve().parent.parent / "web"
WEB_DIR = PACKAGED_WEB_DIR if PACKAGED_WEB_DIR.is_dir() else REPO_WEB_DIR


class ApiSettings(StrictModel):
    host: str = Field("0.0.0.0", description="Address the API listens on.")
    port: int = Field(
        8080, ge=0, le=65535, strict=True, description="TCP port; 0 picks a free one."
    )
    secure_cookies: bool = Field(
        False, description="Set the Secure flag on session cookies (when behind HTTPS)."
    )
    session_ttl_s: float = Field(12 * 3600, gt=0, description="Lifetime of a staff session.")
    pairing_code_ttl_s: float = Field(
        600, gt=0, le=86400, description="How long a tablet pairing code stays valid."
    )
    login_free_attempts: int = Field(
        3, ge=1, description="Failed logins per username or client IP before lockouts start."
    )
    login_lockout_base_s: float = Field(
        2.0, gt=0, description="First lockout after the free attempts; doubles each failure."
    )
    login_lockout_max_s: float = Field(300.0, gt=0, description="Longest lockout.")
    login_hash_concurrency: int = Field(
        2,
        ge=1,
        le=32,
        description="Password hashes (argon2id, argon2_memory_kib each) run at once; more wait.",
    )
    login_hash_wait_s: float = Field(
        2.0, gt=0, le=60, description="How long a login waits for a hashing slot before a 429."
    )
    argon2_time_cost: int = Field(3, ge=1, description="argon2id iterations.")
    argon2_memory_kib: int = Field(65536, ge=8, description="argon2id memory, KiB.")
    principal_cache_s: float = Field(
        30.0, ge=0, description="How long a checked token is trusted without a database read."
    )
    web_dir: Path = Field(WEB_DIR, description="Directory of the static web pages.")
    zeroconf: bool = Field(True, description="Advertise _coresync._tcp on the LAN.")
    metrics_public_on_loopback: bool = Field(
        True, description="/metrics answers loopback clients without a token (for a local agent)."
    )

    @model_validator(mode="after")
    def _lockouts_ordered(self) -> ApiSettings:
        if self.login_lockout_base_s > self.login_lockout_max_s:
            raise ValueError("login_lockout_base_s must not exceed login_lockout_max_s")
        return self
