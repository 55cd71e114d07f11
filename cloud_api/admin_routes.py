"""Chain administration over HTTP (role ``admin``): sites, node credentials, staff
accounts (cloud_api/staff.py), membership end.

Every action is audited (``admin_audit``) in the transaction that makes it.
The CLI (``coresync-cloud sites|nodes|staff``) calls the same functions.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import Field

from cloud_api.metrics import metrics
from cloud_api.spec import Ctx, EmptyInput, Route
from cloud_api.staff import STAFF_ROUTES
from cloud_api.sync_routes import SYNC_KEY
from drivers.config import ID_PATTERN
from edge.shop import Forbidden
from edge.shop.inputs import Input
from edge.shop.statuses import Tier
from sync import sites


class SiteInput(Input):
    id: str = Field(pattern=ID_PATTERN, description="Site id, e.g. soho.")
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    tax_rate: str = Field(pattern=r"^0(\.[0-9]{1,6})?$", description="Sales tax, e.g. 0.08.")
    timezone: str = Field(min_length=1, max_length=64, description="IANA zone, e.g. Europe/Paris.")
    block_quota: int = Field(
        sites.DEFAULT_BLOCK_QUOTA, ge=1, le=1000, description="Number blocks per kind and year."
    )


class NodeInput(Input):
    node_id: str = Field(pattern=ID_PATTERN, description="The edge's node id.")
    site: str = Field(pattern=ID_PATTERN, description="The site it serves.")


async def add_site(c: Ctx) -> Any:
    b: SiteInput = c.body
    site = await c.run(sites.add_site, c.shop.db, b.id, b.name, b.tax_rate, b.timezone,
                       block_quota=b.block_quota, actor=c.me.actor)  # fmt: skip
    return site.to_json()


async def list_sites(c: Ctx) -> Any:
    return {"sites": [s.to_json() for s in await c.run(sites.list_sites, c.shop.db)]}


async def add_node(c: Ctx) -> Any:
    b: NodeInput = c.body
    secret = await c.run(c.auth.register_node, b.node_id, b.site, c.me.actor)
    return {"node_id": b.node_id, "site": b.site, "secret": secret}


async def list_nodes(c: Ctx) -> Any:
    return {"nodes": await c.run(sites.list_nodes, c.shop.db)}


async def revoke_node(c: Ctx) -> Any:
    await c.run(sites.revoke_node, c.shop.db, c.param("id"), actor=c.me.actor)
    return {"node_id": c.param("id"), "active": False}


def _end_membership(c: Ctx, member_id: str) -> dict[str, Any]:
    member = c.shop.get_member(member_id)
    ended = c.shop.set_membership(
        member_id, tier=cast(Tier, member.tier), active=False,
        also=lambda tx: sites.audit(tx, c.me.actor, "member.end", member_id,
                                    {"tier": member.tier}),
    )  # fmt: skip
    return ended.to_json()


class EnrollInput(Input):
    site: str = Field(pattern=ID_PATTERN, description="The site the member may now visit.")


async def enroll_member(c: Ctx) -> Any:
    """A member of the chain may visit any spa: enrolling shares them with its nodes."""
    b: EnrollInput = c.body
    if c.site_scope not in (None, b.site):
        raise Forbidden(f"site: staff of {c.site_scope!r} enrol members at their own site")
    return await c.run(c.request.app[SYNC_KEY].enroll, c.param("id"), b.site, c.me.actor)


async def end_membership(c: Ctx) -> Any:
    return await c.run(_end_membership, c, c.param("id"))


ADMIN_ROUTES: tuple[Route, ...] = (
    Route("GET", "metrics", metrics, "admin", "Prometheus metrics (text format)",
          content="text/plain"),
    Route("GET", "sites", list_sites, "admin", "Sites of the chain"),
    Route("POST", "sites", add_site, "admin", "Add a site (audited)", SiteInput, status=201),
    Route("GET", "nodes", list_nodes, "admin", "Edge-node credentials and their sites"),
    Route("POST", "nodes", add_node, "admin",
          "Register a node of a site; the secret is shown once (audited)", NodeInput,
          status=201),
    Route("POST", "nodes/{id}/revoke", revoke_node, "admin", "Revoke a node (audited)",
          EmptyInput),
    Route("POST", "members/{id}/enroll", enroll_member, "manager",
          "Enrol a member at a site (audited); its nodes learn the member", EnrollInput),
    Route("POST", "members/{id}/end", end_membership, "admin",
          "End a membership (audited); edges learn it by sync", EmptyInput),
    *STAFF_ROUTES,
)  # fmt: skip
