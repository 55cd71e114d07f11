"""The ``[cloud]`` config model and the pure merge rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sync.config import CloudSyncConfig
from sync.errors import ConfigError
from sync.merge import ORDER_RANK, REQUEST_RANK, merge_set_once, merge_status, merge_text


def test_config_rejects_unknown_keys_and_bad_backoff() -> None:
    with pytest.raises(ValidationError, match="secret"):
        CloudSyncConfig(base_url="https://c.example.com", node_id="edge-1", secret="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="backoff_min_s"):
        CloudSyncConfig(base_url="https://c.example.com", node_id="edge-1",
                        backoff_min_s=10, backoff_max_s=1)  # fmt: skip


def test_secret_from_env_then_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = CloudSyncConfig(base_url="https://c.example.com/", node_id="edge-1")
    assert cfg.api_root == "https://c.example.com/api/v1/"
    monkeypatch.delenv("CORESYNC_NODE_SECRET", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="secret_env"):
        cfg.node_secret()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    # An empty credential file is no secret.
    (tmp_path / "coresync-node-secret").write_text("")
    with pytest.raises(ConfigError, match="secret_env"):
        cfg.node_secret()
    (tmp_path / "coresync-node-secret").write_text("from-credential\n")
    assert cfg.node_secret() == "from-credential"
    monkeypatch.setenv("CORESYNC_NODE_SECRET", "from-env")
    assert cfg.node_secret() == "from-env"


@pytest.mark.parametrize("ranks", [ORDER_RANK, REQUEST_RANK])
def test_status_merge_is_a_join(ranks: dict[str, int]) -> None:
    states = list(ranks)
    for a in states:
        assert merge_status(ranks, a, a).status == a
        for b in states:
            ab, ba = merge_status(ranks, a, b), merge_status(ranks, b, a)
            assert ab == ba
            for c in states:
                left = merge_status(ranks, merge_status(ranks, a, b).status, c).status
                right = merge_status(ranks, a, merge_status(ranks, b, c).status).status
                assert left == right


def test_completed_pickup_beats_a_racing_cancel_and_is_flagged() -> None:
    out = merge_status(ORDER_RANK, "cancelled", "completed")
    assert out.status == "completed" and out.flag == "cancelled_vs_completed"
    assert merge_status(ORDER_RANK, "pending", "processing").flag is None


def test_set_once_and_text_merges_are_symmetric() -> None:
    assert merge_set_once("pi_1", "pi_2") == merge_set_once("pi_2", "pi_1") == ("pi_1", True)
    assert merge_set_once(None, "x") == ("x", False)
    assert merge_text("short", "longer note") == merge_text("longer note", "short")
