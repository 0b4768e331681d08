"""`discover` on a realistic schema (tests/discovery/shop.sql: 34 tables of a shop), on SQLite,
PostgreSQL and MariaDB: the person table it picks, the paths it configures and those it leaves
alone (other customers, self-references, lookups), its gaps, and the rows the configuration
exports for a customer, written out by hand. The command itself: tests/cli/test_discover_cli.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine

from databases import KINDS, run_script, scratch_database
from datapolicy.config import parse_config
from datapolicy.discovery.discover import Discovery, discover
from datapolicy.discovery.schema import read_referring
from datapolicy.engine.sources.base import RecordStream
from datapolicy.engine.sources.sql import SqlSource

SHOP = Path(__file__).with_name("shop.sql")
# Ada's rows, by table, as primary keys: read off shop.sql by hand.
ADA = {
    "customers": [(1,)],
    "addresses": [(1,)],
    "api_tokens": [(1,)],
    "carts": [(1,)],
    "consents": [(1,)],
    "login_events": [(1,)],
    "loyalty_accounts": [(1, 1), (2, 2)],
    "messages": [(1,)],  # the one she sent; the one she received is Bob's
    "orders": [(1,), (2,)],  # not Bob's order 3 for her (gift_recipient_id)
    "review_comments": [(2,), (3,)],  # hers; Bob's comment under her review is his
    "reviews": [(1,)],
    "support_tickets": [(1,)],
    "wishlists": [(1,)],
    "cart_items": [(1, 1), (1, 2)],
    "loyalty_transactions": [(1,), (3,), (5,)],  # (tenant, account) both hers, not half
    "invoices": [(1,)],
    "order_items": [(1, 1), (1, 2), (2, 1)],
    "payments": [(1,), (3,)],
    "shipments": [(1,)],
    "ticket_messages": [(1,), (2,)],
    "wishlist_items": [(1, 1)],
    "order_item_notes": [(1,), (3,)],
    "refunds": [(1,)],
    "shipment_events": [(1,), (2,)],
}
LOOKUPS = {"countries", "currencies", "coupons", "products", "product_categories"}
NOT_ADAS = {"staff", "stores", "newsletter_signups", "audit_entries"}  # look personal


def exported(found: Discovery, directory: Path, person: str) -> dict[str, list[dict[str, Any]]]:
    config = parse_config(found.configuration, directory / "datapolicy.toml")
    source = SqlSource(config.sources.sql[0])
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        for part in source.parts(person):
            assert isinstance(part, RecordStream)
            rows[part.name] = [
                orjson.loads(line) for b in part.batches for line in b.data.splitlines()
            ]
    finally:
        source.close()
    return rows


@pytest.mark.parametrize("kind", KINDS)
def test_discover_maps_the_shop(kind: str, tmp_path: Path) -> None:
    """Customers is the person table, each of Ada's tables is one path (24 of 34 tables), the
    links to other customers and the self-references are not followed, lookups are not
    exported, the personal tables nothing reaches are gaps, and Ada's export holds exactly her
    rows, without her password hash or token. The foreign keys alone, as an erasure's checks
    read them (`read_referring`), are those of the whole schema discover read."""
    with scratch_database(kind, tmp_path) as url:
        run_script(url, SHOP)
        found = discover(url, output=tmp_path / "datapolicy.toml")
        rows = exported(found, tmp_path, "1")
        bob = exported(found, tmp_path, "2")
        engine = create_engine(url)
        try:
            referring = read_referring(engine)
        finally:
            engine.dispose()
    assert referring == found.schema.referring
    assert "customers" in referring  # the shop's keys: not two empty readings
    data = found.data
    assert data.person.chosen.table == "customers"
    assert not data.person.unsure
    assert [e.table for e in data.entries] == [e.name for e in data.entries]  # one path each
    assert set(data.tables) == set(ADA)
    assert {k.describe() for k in data.other_people} == {
        "messages(recipient_id) -> customers(id)",
        "orders(gift_recipient_id) -> customers(id)",
    }
    assert {k.table for k in data.self_references} == {
        "customers",
        "product_categories",
        "review_comments",
    }
    assert set(data.lookups) | {"product_categories"} >= LOOKUPS
    gaps = {gap.table for gap in found.gaps}
    assert NOT_ADAS <= gaps <= set(found.schema.tables) - set(ADA)
    assert "stores" in {
        k.referred for k in next(g for g in found.gaps if g.table == "stores").pointed_to_by
    }
    assert {name: sorted(_keys(found, name, r)) for name, r in rows.items()} == ADA
    assert "password_hash" not in rows["customers"][0]
    assert "token" not in rows["api_tokens"][0]
    assert sorted(_keys(found, "messages", bob["messages"])) == [(2,), (3,)]
    assert sorted(_keys(found, "orders", bob["orders"])) == [(3,)]


def _keys(found: Discovery, table: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    key = found.schema.tables[table].primary_key
    return [tuple(row[column] for column in key) for row in rows]
