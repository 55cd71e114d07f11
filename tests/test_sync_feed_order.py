"""Pushes of different sites run side by side on PostgreSQL, and the feed keeps its
order: a pull never skips a row that commits after it with a lower seq.

The pauses are fault injection: ``sync.feed.feed_lock`` is wrapped so one push stops
at a chosen point (before the feed step, or inside it before commit) until released.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from edge.shop import Shop
from edge.shop.db import Tx
from edge.shop.testing import make_shop, postgres_unreachable
from sync import feed, sites
from sync.apply import Change
from sync.attention import utc_stamp
from sync.cloud import CloudSync
from tests.parts import missing
from tests.sync_helpers import prepare_cloud

INC = "0123456789abcdef"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[tuple[CloudSync, str]]:
    if why := postgres_unreachable():
        missing("PostgreSQL", why)
    with make_shop("postgres", tmp_path) as shop:
        c = prepare_cloud(shop, ())
        for site in ("soho", "paris"):
            sites.add_site(shop.db, site, site.title(), "0.08", "America/New_York")
            c.auth.register_node(f"{site}-1", site)
        c.auth.register_node("hq-1")  # a chain-wide node: reads every site's rows
        yield CloudSync(shop), _product(shop)


def _product(shop: Shop) -> str:
    with shop.db.read() as tx:
        return str(tx.scalar("SELECT id FROM products WHERE slug = 'serum'"))


def restock(node: str, seq: int, product: str) -> Change:
    payload = {"product_id": product, "delta": 1, "order_id": None, "note": None}
    return Change(node, seq, "stock_movement", product, "restock", payload, utc_stamp(), INC)


def waiting_on_advisory_lock(shop: Shop) -> bool:
    with shop.db.read() as tx:
        return bool(tx.scalar("SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
                              " AND NOT granted"))  # fmt: skip


def until(check: Callable[[], bool], what: str) -> None:
    """Wait for a state of the database (polled: PostgreSQL has no event for it)."""
    done = threading.Event()
    for _ in range(2000):
        if check():
            return
        done.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def pause(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """``pause["node"]`` stops at ``pause["where"]`` ("before" the feed lock, or "inside"
    it, after the rows went in) until ``pause["go"]`` is set."""
    state: dict[str, Any] = {"node": None, "where": "before", "go": threading.Event(),
                             "there": threading.Event()}  # fmt: skip
    real_lock, real_insert = feed.feed_lock, feed.insert_rows

    def lock(tx: Tx) -> None:
        if state["where"] == "before" and threading.current_thread().name == state["node"]:
            state["there"].set()
            state["go"].wait(30)
        real_lock(tx)

    def insert(tx: Tx, rows: Any, **kw: Any) -> Any:
        out = real_insert(tx, rows, **kw)
        if state["where"] == "inside" and threading.current_thread().name == state["node"]:
            state["there"].set()
            state["go"].wait(30)
        return out

    monkeypatch.setattr(feed, "feed_lock", lock)
    monkeypatch.setattr(feed, "insert_rows", insert)
    yield state
    state["go"].set()


def _named(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        threading.current_thread().name = name
        return fn()

    return run


def test_another_sites_push_does_not_wait_for_a_slow_push(
    cloud: tuple[CloudSync, str], pause: dict[str, Any]
) -> None:
    sync, product = cloud
    pause["node"], pause["where"] = "paris-1", "before"
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(
            _named("paris-1", lambda: sync.push("paris-1", [restock("paris-1", 1, product)]))
        )
        assert pause["there"].wait(30)
        # paris-1's batch is applied and its transaction open; soho-1 pushes meanwhile.
        fast = sync.push("soho-1", [restock("soho-1", 1, product)])
        assert [a.status for a in fast] == ["applied"]
        assert not slow.done()
        pause["go"].set()
        assert [a.status for a in slow.result(30)] == ["applied"]
    # The later commit got the higher seq: a puller past soho's row still meets paris's.
    assert slow.result()[0].cloud_seq > fast[0].cloud_seq


def test_a_pull_never_skips_a_row_that_commits_later(
    cloud: tuple[CloudSync, str], pause: dict[str, Any]
) -> None:
    sync, product = cloud
    start = sync.pull("hq-1", 0, 1000)["next_cursor"]
    pause["node"], pause["where"] = "paris-1", "inside"
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(
            _named("paris-1", lambda: sync.push("paris-1", [restock("paris-1", 1, product)]))
        )
        assert pause["there"].wait(30)  # paris's row has a seq, not yet committed
        second = pool.submit(lambda: sync.push("soho-1", [restock("soho-1", 1, product)]))
        until(lambda: waiting_on_advisory_lock(sync.shop), "soho's push to wait for the feed")
        page = sync.pull("hq-1", start, 1000)
        assert page["changes"] == [] and page["next_cursor"] == start
        pause["go"].set()
        first.result(30), second.result(30)
    page = sync.pull("hq-1", start, 1000)
    assert [c["origin"] for c in page["changes"]] == ["paris-1", "soho-1"]
    seqs = [c["seq"] for c in page["changes"]]
    assert seqs == sorted(seqs)
