"""The alert rules without a network: channel config that keeps secrets out
of the text, and when sync counts as stuck."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge.alerts.sync_watch import SyncStuck
from edge.config import parse_config
from edge.errors import ConfigError

START = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)

HOOK = 'type = "webhook"\ntopic = "t"\n'


@pytest.mark.parametrize(
    ("channel", "words"),
    [
        ('type = "webhook"\nurl = "https://u:p@ntfy.example.org/"\ntopic = "t"', "no credentials"),
        (
            'type = "webhook"\nurl = "https://ntfy.example.org/?auth=tk"\ntopic = "t"',
            "no credentials",
        ),
        (
            'type = "email"\nhost = "mx"\nsender = "a@b.c"\nrecipients = ["d@e.f"]\n'
            'username = "spa"',
            "username needs secret_credential",
        ),
        (
            'type = "webhook"\nurl = "https://ntfy.example.org/"\ntopic = "t"\n'
            'quiet_hours = "22:00-22:00"',
            "start and end at the same time",
        ),
        (
            'type = "webhook"\nurl = "https://ntfy.example.org/"\ntopic = "t"\npassword = "x"',
            "password",
        ),
    ],
)
def test_channel_config_refuses_secrets_in_the_text_and_bad_values(
    channel: str, words: str
) -> None:
    text = (
        '[site]\nid = "s"\nname = "S"\n[[rooms]]\nid = "r"\nname = "R"\n'
        '[alerts]\n[[alerts.channels]]\nid = "c"\n' + channel + "\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.toml")
    problem = "\n".join(caught.value.problems)
    assert "site.toml:" in problem and words in problem, problem


def test_sync_stuck_is_raised_once_per_spell_without_progress() -> None:
    rule = SyncStuck(after_s=1800)
    waiting = {"queue_depth": 4, "last_success": "2026-03-07T14:00:00Z", "last_error": "HTTP 502"}
    assert rule.feed(waiting, START) is None
    assert rule.feed(waiting, START + timedelta(minutes=29)) is None
    message = rule.feed(waiting, START + timedelta(minutes=30))
    assert message is not None and "4 changes waiting" in message and "HTTP 502" in message
    assert rule.feed(waiting, START + timedelta(minutes=45)) is None  # once per spell
    # Progress (a newer success) or an empty queue ends the spell.
    moved = {**waiting, "last_success": "2026-03-07T15:50:00Z"}
    assert rule.feed(moved, START + timedelta(minutes=50)) is None
    assert rule.feed(moved, START + timedelta(minutes=79)) is None
    assert rule.feed(moved, START + timedelta(minutes=80)) is not None
    assert rule.feed({**moved, "queue_depth": 0}, START + timedelta(minutes=90)) is None
