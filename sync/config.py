"""The ``[cloud]`` section of the site config: where and how the edge syncs."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator

from drivers.config import ID_PATTERN, StrictModel
from sync.errors import ConfigError


class CloudSyncConfig(StrictModel):
    """Connection to the cloud and the pace of the sync job."""

    base_url: str = Field(
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Cloud API root, e.g. https://cloud.example.com (no /api/v1 suffix).",
    )
    node_id: str = Field(pattern=ID_PATTERN, description="This edge's node id in the cloud.")
    secret_env: str | None = Field(
        "CORESYNC_NODE_SECRET",
        description="Environment variable holding the node secret (checked first).",
    )
    secret_credential: str | None = Field(
        "coresync-node-secret",
        description=(
            "systemd credential name (LoadCredential=) holding the node secret, read "
            "from $CREDENTIALS_DIRECTORY when the environment variable is unset."
        ),
    )
    interval_s: float = Field(
        15.0, gt=0, le=3600, description="Pause between sync cycles while all is well, seconds."
    )
    batch_size: int = Field(
        200, ge=1, le=1000, description="Changes per push request and per pull page."
    )
    backoff_min_s: float = Field(
        1.0, gt=0, le=600, description="First retry delay after a failure, seconds (jittered)."
    )
    backoff_max_s: float = Field(
        300.0, gt=0, le=3600, description="Cap of the growing retry delay, seconds."
    )
    request_timeout_s: float = Field(
        30.0, gt=0, le=600, description="Timeout of one HTTP request to the cloud, seconds."
    )
    numbers_low_water: int = Field(
        1000,
        ge=0,
        le=100_000,
        description="Lease another block of order/request numbers below this many spare.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> CloudSyncConfig:
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError("backoff_min_s must not exceed backoff_max_s")
        if self.secret_env is None and self.secret_credential is None:
            raise ValueError("secret_env: set secret_env or secret_credential (or both)")
        return self

    @property
    def api_root(self) -> str:
        return self.base_url.rstrip("/") + "/api/v1/"

    def node_secret(self) -> str:
        """The secret from the environment or a systemd credential; never from the file."""
        if self.secret_env and os.environ.get(self.secret_env):
            return os.environ[self.secret_env].strip()
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if self.secret_credential and cred_dir:
            path = Path(cred_dir) / self.secret_credential
            # An empty file is no secret (placeholder left by an installer).
            if path.is_file() and (secret := path.read_text().strip()):
                return secret
        raise ConfigError(
            f"cloud.secret_env: no node secret in ${self.secret_env or '-'} nor in systemd "
            f"credential {self.secret_credential or '-'!r}"
        )
