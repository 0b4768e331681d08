"""Erasure in the engine (engine/erasure/), on a small shop in SQLite: each rule does what it
says, a dry run changes nothing and shows what would change, a retry is a no-op, the checks
refuse what cannot be applied safely, and a failing source names what was committed."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from datapolicy.config import FileSourceConfig, MaskValue, SqlSourceConfig, TableConfig
from datapolicy.engine.erasure import ErasureFailed, Masker, SqlEraser, erase_person
from datapolicy.engine.erasure.masks import truncate_to_year
from datapolicy.engine.sources.base import SourceError
from datapolicy.engine.sources.files import FileSource
from datapolicy.engine.sources.sql import SqlSource

MASKER = Masker(b"a test secret of enough bytes")

SHOP = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, email VARCHAR(120), born DATE, city VARCHAR(40));
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
                     total INTEGER);
CREATE TABLE items (order_id INTEGER REFERENCES orders(id), line INTEGER, sku VARCHAR(10),
                    PRIMARY KEY (order_id, line));
CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER, amount INTEGER);
INSERT INTO customers VALUES (1, 'ada@example.com', '1990-05-17', 'Paris'),
                             (2, 'bob@example.org', '1985-11-02', 'Rome');
INSERT INTO orders VALUES (10, 1, 100), (11, 1, 50), (20, 2, 70);
INSERT INTO items VALUES (10, 1, 'A'), (10, 2, 'B'), (11, 1, 'C'), (20, 1, 'A');
INSERT INTO invoices VALUES (100, 1, 150), (200, 2, 70);
"""

RULES = (
    TableConfig(
        table="customers",
        user_key="id",
        erase="mask",
        mask={"email": "hash", "born": "year", "city": MaskValue(value="-")},
    ),
    TableConfig(table="orders", parent="customers", erase="delete"),
    TableConfig(table="items", parent="orders", erase="delete"),
    TableConfig(table="invoices", user_key="customer_id", erase="retain", reason="tax law"),
)


@pytest.fixture
def shop(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'shop.sqlite3'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in SHOP.split(";"):
            if statement.strip():
                connection.execute(text(statement))
    yield url, engine
    engine.dispose()


def dump(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as connection:
        return {
            name: [tuple(row) for row in connection.execute(text(f"SELECT * FROM {name}"))]
            for name in ("customers", "orders", "items", "invoices")
        }


def source(url: str, tables: tuple[TableConfig, ...] = RULES) -> SqlSource:
    return SqlSource(SqlSourceConfig(name="shop", url=url, tables=tables))


def test_each_rule_does_what_it_says_and_a_retry_changes_nothing(shop):
    url, engine = shop
    shop_source = source(url)
    try:
        result = erase_person("1", [shop_source], MASKER, dry_run=False)
        again = erase_person("1", [shop_source], MASKER, dry_run=False)
    finally:
        shop_source.close()
    after = dump(engine)
    hashed = MASKER.hash("ada@example.com")
    assert after["customers"] == [
        (1, hashed, "1990-01-01", "-"),
        (2, "bob@example.org", "1985-11-02", "Rome"),
    ]
    assert after["orders"] == [(20, 2, 70)]
    assert after["items"] == [(20, 1, "A")]
    assert after["invoices"] == [(100, 1, 150), (200, 2, 70)]
    counts = {t.table: (t.rule, t.rows, t.cells) for t in result.tables}
    assert counts == {
        "customers": ("mask", 1, 3),
        "orders": ("delete", 2, 0),
        "items": ("delete", 3, 0),
        "invoices": ("retain", 1, 0),
    }
    assert result.committed == ["shop"]
    assert {t.table: (t.rows, t.cells) for t in again.tables} == {
        "customers": (0, 0),
        "orders": (0, 0),
        "items": (0, 0),
        "invoices": (1, 0),
    }


def test_a_dry_run_changes_nothing_and_shows_every_row_and_cell(shop):
    url, engine = shop
    before = dump(engine)
    changes: list[tuple[str, dict[str, Any]]] = []
    shop_source = source(url)
    try:
        result = erase_person(
            "1", [shop_source], MASKER, dry_run=True, change=lambda t, c: changes.append((t, c))
        )
    finally:
        shop_source.close()
    assert dump(engine) == before
    assert result.committed == []
    deleted = sorted((t, c["delete"]["id"]) for t, c in changes if t == "orders")
    assert deleted == [("orders", 10), ("orders", 11)]
    masked = [c["mask"] for t, c in changes if t == "customers"]
    assert {m["column"]: (m["before"], m["after"]) for m in masked} == {
        "email": ("ada@example.com", MASKER.hash("ada@example.com")),
        "born": (date(1990, 5, 17), date(1990, 1, 1)),
        "city": ("Paris", "-"),
    }
    assert sum(1 for t, _ in changes if t == "items") == 3
    assert {t.table: t.rows for t in result.tables}["items"] == 3


def test_masks_are_idempotent():
    hashed = MASKER.hash("x")
    assert MASKER.hash(hashed) == hashed
    assert MASKER.hash("x") != Masker(b"another secret of enough bytes").hash("x")
    assert truncate_to_year(date(2020, 5, 3)) == date(2020, 1, 1)
    assert truncate_to_year("2020-05-03 10:11:12") == "2020-01-01 00:00:00"
    assert truncate_to_year(truncate_to_year("2020-05-03")) == "2020-01-01"
    with pytest.raises(ValueError, match="dates"):
        truncate_to_year(12)


def test_a_mask_on_a_key_column_is_refused_with_the_reason(shop):
    url, _engine = shop
    tables = (
        TableConfig(table="customers", user_key="id", erase="mask", mask={"id": "null"}),
        TableConfig(table="orders", parent="customers", erase="mask", mask={"customer_id": "null"}),
    )
    shop_source = source(url, tables)
    try:
        problems = SqlEraser(shop_source).problems()
        with pytest.raises(SourceError, match="column 'id' is a key"):
            erase_person("1", [shop_source], MASKER, dry_run=False)
    finally:
        shop_source.close()
    assert len(problems) == 2
    assert "column 'customer_id' is a key" in problems[1]


def test_a_delete_that_an_unlisted_table_refers_to_is_refused(shop):
    url, _engine = shop
    tables = (
        TableConfig(table="customers", user_key="id", erase="retain", reason="contract"),
        TableConfig(table="orders", parent="customers", erase="delete"),
    )
    shop_source = source(url, tables)
    try:
        [problem] = SqlEraser(shop_source).problems()
    finally:
        shop_source.close()
    assert "table 'items', which this source does not configure, refers to it" in problem
    assert "items(order_id) -> orders(id)" in problem


def test_a_delete_whose_rows_another_person_s_rows_refer_to_is_refused(shop):
    """Bob reviewed Ada's order: deleting her order would be blocked by (or cascade into) Bob's
    review. Refused, nothing changed; Ada's own reviews are no obstacle."""
    url, engine = shop
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE reviews (id INTEGER PRIMARY KEY, "
                "order_id INTEGER REFERENCES orders(id), author INTEGER)"
            )
        )
        connection.execute(text("INSERT INTO reviews VALUES (1, 11, 1), (2, 10, 2)"))
    tables = (
        TableConfig(table="customers", user_key="id", erase="retain", reason="contract"),
        TableConfig(table="orders", parent="customers", erase="delete"),
        TableConfig(table="items", parent="orders", erase="delete"),
        TableConfig(table="reviews", user_key="author", erase="delete"),
    )
    before = dump(engine)
    shop_source = source(url, tables)
    try:
        with pytest.raises(ErasureFailed, match="rows of 'reviews' that are not deleted"):
            erase_person("1", [shop_source], MASKER, dry_run=False)
        assert dump(engine) == before
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM reviews WHERE id = 2"))
        erase_person("1", [shop_source], MASKER, dry_run=False)
    finally:
        shop_source.close()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM reviews")).scalar_one() == 0


def test_a_failing_source_names_itself_and_what_was_committed(shop, tmp_path: Path):
    url, engine = shop
    uploads = tmp_path / "uploads" / "1"
    uploads.mkdir(parents=True)
    (uploads / "photo.jpg").write_bytes(b"...")
    good = source(url)
    broken = SqlSource(
        SqlSourceConfig(
            name="crm",
            url=f"sqlite:///{tmp_path / 'crm.sqlite3'}",
            tables=(TableConfig(table="contacts", user_key="id", erase="delete"),),
        )
    )
    files = FileSource(
        FileSourceConfig(name="uploads", path=f"{tmp_path}/uploads/{{userId}}", erase="delete")
    )
    try:
        with pytest.raises(ErasureFailed) as failed:
            erase_person("1", [good, broken, files], MASKER, dry_run=False)
        message = str(failed.value)
        assert "source 'crm'" in message
        assert "already erased and committed: 'shop'" in message
        assert (uploads / "photo.jpg").exists()  # files go only after every database
        assert dump(engine)["orders"] == [(20, 2, 70)]
        # The retry skips what was committed, and ends with the files.
        result = erase_person("1", [good, files], MASKER, dry_run=False, done={"shop"})
    finally:
        for each in (good, broken):
            each.close()
    assert result.committed == ["uploads"]
    assert not (uploads / "photo.jpg").exists()
