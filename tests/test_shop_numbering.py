"""PO/CR numbers stay unique across the cloud and offline edges (docs/numbering.md)."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.shop import Conflict, NumbersExhausted, Shop, ShopConfig
from edge.shop.numbering import allocate
from edge.shop.testing import MutableClock, make_shop, postgres_unreachable
from tests.parts import missing

NUMBER = re.compile(r"^PO-2026-\d{6}$")
NOW = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    if request.param == "postgres" and (why := postgres_unreachable()):
        missing("PostgreSQL", why)
    with make_shop(request.param, tmp_path, clock=MutableClock(NOW)) as s:
        yield s


def edge_shop(tmp_path: Path, node: str) -> Generator[Shop, None, None]:
    path = tmp_path / node
    path.mkdir()
    config = ShopConfig(node_id=node, number_authority=False)
    with make_shop("sqlite", path, config, MutableClock(NOW)) as s:
        yield s


def stock(shop: Shop) -> str:
    shop.create_product(
        {"name": "Robe", "slug": "robe", "category": "accessories", "price": "80"},
        initial_stock=5000,
    )
    return shop.create_member(
        {"name": "M", "email": "m@x.io", "phone": "+1 555 0100", "date_of_birth": "1980-01-01"}
    ).id


def test_offline_edges_and_cloud_never_collide(cloud: Shop, tmp_path: Path) -> None:
    edges = [edge_shop(tmp_path, f"edge-{n}") for n in (1, 2)]
    shops = [next(e) for e in edges]
    try:
        for shop in shops:
            # Provisioning (online): the cloud leases a block, the edge records it.
            shop.accept_lease("PO", cloud.lease_block("PO", shop.config.node_id))
        numbers: list[str] = []
        for shop in [cloud, *shops]:
            member_id = stock(shop)
            for _ in range(5):  # the edges are offline now: no cloud call below
                order = shop.create_order(
                    member_id, {"items": [{"product": "robe", "quantity": 1}]}
                )
                numbers.append(order.number)
        assert all(NUMBER.match(n) for n in numbers)
        assert len(set(numbers)) == len(numbers) == 15
        assert shops[0].spare_numbers("PO") == 999 - 5  # block 0 has no number 000000
    finally:
        for e in edges:
            e.close()


def test_edge_without_a_lease_refuses_to_invent_numbers(tmp_path: Path) -> None:
    gen = edge_shop(tmp_path, "edge-9")
    shop = next(gen)
    try:
        member_id = stock(shop)
        with pytest.raises(NumbersExhausted):
            shop.create_order(member_id, {"items": [{"product": "robe", "quantity": 1}]})
        assert shop.get_product("robe").stock == 5000
    finally:
        gen.close()


def test_edge_moves_to_its_next_block_and_stops_when_all_are_spent(tmp_path: Path) -> None:
    gen = edge_shop(tmp_path, "edge-1")
    shop = next(gen)
    try:
        shop.accept_lease("PO", 7)
        shop.accept_lease("PO", 3)
        with shop.db.write() as tx:
            got = [allocate(tx, "PO", 2026, "edge-1", authority=False) for _ in range(2000)]
            assert got[0] == "PO-2026-003000" and got[999] == "PO-2026-003999"
            assert got[1000] == "PO-2026-007000" and got[-1] == "PO-2026-007999"
            with pytest.raises(NumbersExhausted):
                allocate(tx, "PO", 2026, "edge-1", authority=False)
    finally:
        gen.close()


def test_authority_leases_each_block_once(cloud: Shop) -> None:
    blocks = [cloud.lease_block("PO", node) for node in ("edge-1", "edge-2", "edge-1")]
    assert blocks == sorted(set(blocks))
    with cloud.db.write() as tx:
        first = allocate(tx, "PO", 2026, "cloud", authority=True)
    assert first == f"PO-2026-{(blocks[-1] + 1) * 1000:06d}"
    assert cloud.lease_block("CR", "edge-1") == 0  # kinds have separate spaces


def test_block_zero_skips_number_zero(cloud: Shop) -> None:
    with cloud.db.write() as tx:
        assert allocate(tx, "CR", 2026, "cloud", authority=True) == "CR-2026-000001"


def test_a_block_owned_by_another_node_is_refused(tmp_path: Path) -> None:
    gen = edge_shop(tmp_path, "edge-1")
    shop = next(gen)
    try:
        with shop.db.write() as tx:
            allocate_owner = "edge-2"
            tx.execute(
                "INSERT INTO number_blocks (kind, year, block, node, next_offset)"
                " VALUES ('PO', 2026, 4, ?, 0)",
                (allocate_owner,),
            )
        with pytest.raises(Conflict):
            shop.accept_lease("PO", 4)
    finally:
        gen.close()


def test_unique_constraint_backs_the_scheme(cloud: Shop) -> None:
    member_id = stock(cloud)
    order = cloud.create_order(member_id, {"items": [{"product": "robe", "quantity": 1}]})
    with pytest.raises(Conflict) as info, cloud.db.write() as tx:
        tx.execute("UPDATE number_blocks SET next_offset = 1 WHERE kind = 'PO'")
        allocated = allocate(tx, "PO", 2026, "cloud", authority=True)
        assert allocated == order.number
        tx.execute(
            "INSERT INTO orders (id, number, member_id, status, subtotal_cents, tax_cents,"
            " total_cents, tax_rate, origin_node, created_at, updated_at)"
            " VALUES ('x', ?, ?, 'pending', 0, 0, 0, '0.08', 'cloud', 'now', 'now')",
            (allocated, member_id),
        )
    assert info.value.field == "number"
