"""SqlSource against real databases: SQLite, PostgreSQL and MariaDB, each with the same small shop
whose tables are linked by real foreign keys (customers <- orders <- order_items <- item_notes,
and messages between customers), holding three people whose data interleaves.

Every test runs once per database, in a scratch namespace of its own (tests/databases.py).
"""

from __future__ import annotations

import base64
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url

from databases import KINDS, POSTGRESQL, scratch_database
from datapolicy.config import ColumnConfig, QueryConfig, SqlSourceConfig, TableConfig
from datapolicy.engine.package import PackageWriter
from datapolicy.engine.sources.base import RecordStream, SourceError
from datapolicy.engine.sources.jsonlines import JsonLines
from datapolicy.engine.sources.sql import SqlSource
from datapolicy.engine.verify import verify_package

ADA, GRACE, ALAN = "1", "2", "3"
NOBODY = "99"

# --- the shop ----------------------------------------------------------------------------------

metadata = MetaData()
customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("password_hash", String(100), nullable=False),
)
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("total", Numeric(10, 2), nullable=False),
    Column("placed_at", DateTime, nullable=False),
    Column("shipping_address", String(200)),
    Column("receipt", LargeBinary),
    Column("tracking", Uuid),
)
order_items = Table(
    "order_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("order_id", Integer, ForeignKey("orders.id"), nullable=False),
    Column("product", String(100), nullable=False),
)
item_notes = Table(
    "item_notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("item_id", Integer, ForeignKey("order_items.id"), nullable=False),
    Column("note", Text, nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
)
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("sender_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("recipient_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("internal_score", Integer),
)
ratings = Table(  # refers to orders by a plain column: no foreign key
    "ratings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("order_ref", Integer, nullable=False),
    Column("stars", Integer, nullable=False),
)

PLACED = datetime(2025, 3, 14, 15, 9, 26)
WRITTEN = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
TRACKING = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
RECEIPT = b"\x00\xffPDF\x89binary\n"

ROWS: dict[Table, list[dict[str, Any]]] = {
    customers: [
        {"id": 1, "name": "Ada", "password_hash": "$argon2id$ada"},
        {"id": 2, "name": "Grace", "password_hash": "$argon2id$grace"},
        {"id": 3, "name": "Alan", "password_hash": "$argon2id$alan"},
    ],
    # Order ids overlap customer ids on purpose: a join on the wrong column would leak.
    orders: [
        {"id": 1, "customer_id": 2, "total": Decimal("7.00"), "receipt": None, "tracking": None},
        {"id": 2, "customer_id": 1, "total": Decimal("12.50"), "receipt": RECEIPT},
        {"id": 3, "customer_id": 1, "total": Decimal("0.99"), "receipt": None, "tracking": None},
        {"id": 4, "customer_id": 3, "total": Decimal("100.00"), "receipt": b"x", "tracking": None},
    ],
    order_items: [
        {"id": 1, "order_id": 2, "product": "Notebook"},
        {"id": 2, "order_id": 1, "product": "Mug"},
        {"id": 3, "order_id": 2, "product": "Pen"},
        {"id": 4, "order_id": 3, "product": "Lamp"},
        {"id": 5, "order_id": 4, "product": "Chair"},
        {"id": 6, "order_id": 1, "product": "Plant"},
    ],
    item_notes: [
        {"id": 1, "item_id": 2, "note": "chipped"},
        {"id": 2, "item_id": 1, "note": "gift wrap"},
        {"id": 3, "item_id": 4, "note": "warm white"},
        {"id": 4, "item_id": 5, "note": "assemble"},
        {"id": 5, "item_id": 3, "note": "blue ink"},
    ],
    messages: [
        {"id": 1, "sender_id": 1, "recipient_id": 2, "body": "Ada to Grace"},
        {"id": 2, "sender_id": 2, "recipient_id": 3, "body": "Grace to Alan"},
        {"id": 3, "sender_id": 3, "recipient_id": 1, "body": "Alan to Ada"},
        {"id": 4, "sender_id": 2, "recipient_id": 2, "body": "Grace to herself"},
        {"id": 5, "sender_id": 3, "recipient_id": 2, "body": "Alan to Grace"},
    ],
    ratings: [
        {"id": 1, "order_ref": 2, "stars": 5},
        {"id": 2, "order_ref": 1, "stars": 3},
        {"id": 3, "order_ref": 3, "stars": 4},
    ],
}
for _order in ROWS[orders]:
    _order.setdefault("tracking", TRACKING)
    _order.update(placed_at=PLACED, shipping_address=f"{_order['id']} Example Street")
for _note in ROWS[item_notes]:
    _note["written_at"] = WRITTEN
for _message in ROWS[messages]:
    _message["internal_score"] = 10 * _message["id"]

# Each person's rows, by the id of the row, in every table and in the messages query.
EXPECTED = {
    ADA: {
        "customers": [1],
        "orders": [2, 3],
        "order_items": [1, 3, 4],
        "item_notes": [2, 3, 5],
        "messages": [1, 3],
    },
    GRACE: {
        "customers": [2],
        "orders": [1],
        "order_items": [2, 6],
        "item_notes": [1],
        "messages": [1, 2, 4, 5],
    },
    ALAN: {
        "customers": [3],
        "orders": [4],
        "order_items": [5],
        "item_notes": [4],
        "messages": [2, 3, 5],
    },
}
EXCLUDED = {
    "customers": "password_hash",
    "orders": "shipping_address",
    "messages": "internal_score",
}
MESSAGES_SQL = (
    "SELECT id, sender_id, recipient_id, body, internal_score FROM messages "
    "WHERE sender_id = :user_id OR recipient_id = :user_id ORDER BY id"
)


@pytest.fixture(params=KINDS)
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a scratch database holding the shop."""
    with scratch_database(request.param, tmp_path) as url:
        engine = create_engine(url)
        try:
            metadata.create_all(engine)
            with engine.begin() as connection:
                for table in metadata.sorted_tables:
                    connection.execute(table.insert(), ROWS[table])
        finally:
            engine.dispose()
        yield url


def link(mode: str, foreign_key: str) -> dict[str, str]:
    """How a child table names its parent: reflected, or spelled out in the configuration."""
    if mode == "reflected":
        return {}
    if mode == "foreign_key":
        return {"foreign_key": foreign_key}
    return {"foreign_key": foreign_key, "parent_key": "id"}


def shop_config(url: str, mode: str = "reflected", batch_size: int = 1000) -> SqlSourceConfig:
    return SqlSourceConfig(
        name="shop",
        url=url,
        batch_size=batch_size,
        tables=(
            TableConfig(table="customers", user_key="id", exclude=(EXCLUDED["customers"],)),
            TableConfig(table="orders", user_key="customer_id", exclude=(EXCLUDED["orders"],)),
            TableConfig(table="order_items", parent="orders", **link(mode, "order_id")),
            TableConfig(table="item_notes", parent="order_items", **link(mode, "item_id")),
        ),
        queries=(QueryConfig(name="messages", sql=MESSAGES_SQL, exclude=(EXCLUDED["messages"],)),),
    )


@pytest.fixture
def open_source() -> Iterator[Callable[[SqlSourceConfig], SqlSource]]:
    """Makes SqlSources that are closed when the test ends."""
    opened: list[SqlSource] = []

    def make(config: SqlSourceConfig) -> SqlSource:
        opened.append(SqlSource(config))
        return opened[-1]

    yield make
    for source in opened:
        source.close()


def decoded(batch: JsonLines) -> list[dict[str, Any]]:
    """A batch's records, each line parsed; the batch's count must match its lines."""
    records = [orjson.loads(line) for line in batch.data.splitlines()]
    assert batch.records == len(records)
    assert batch.data.endswith(b"\n") or not batch.data
    return records


def read(source: SqlSource, user_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every part, by part name (all parts are record streams here)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for part in source.parts(user_id):
        assert isinstance(part, RecordStream)
        assert part.name not in rows
        rows[part.name] = [row for batch in part.batches for row in decoded(batch)]
    return rows


def ids(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[int]]:
    return {name: [row["id"] for row in table] for name, table in rows.items()}


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reflected", "foreign_key", "foreign_key+parent_key"])
def test_parts_yield_exactly_the_persons_rows_at_every_depth(shop, open_source, mode):
    """parts() yields, for each person, exactly their rows of every table (three levels below
    the person, through foreign keys) and of the query, and no one else's: whether the link
    to the parent is reflected from the database's foreign keys or given in the configuration."""
    source = open_source(shop_config(shop, mode))
    for person, expected in EXPECTED.items():
        rows = read(source, person)
        assert ids(rows) == expected, person
        assert [row["name"] for row in rows["customers"]] == [
            c["name"] for c in ROWS[customers] if c["id"] == int(person)
        ]
        assert {row["customer_id"] for row in rows["orders"]} == {int(person)}
        assert {row["order_id"] for row in rows["order_items"]} <= set(expected["orders"])
        assert {row["item_id"] for row in rows["item_notes"]} <= set(expected["order_items"])
    assert ids(read(source, NOBODY)) == {name: [] for name in EXPECTED[ADA]}


def test_excluded_columns_never_appear(shop, open_source):
    """Excluded columns are absent from every row; a table's excluded columns are not even
    selected (no statement sent to the database names them), while the other columns are all
    there."""
    source = open_source(shop_config(shop))
    statements: list[str] = []
    event.listen(
        source.engine,
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_: statements.append(statement),
    )
    rows = read(source, GRACE)
    assert set(rows["customers"][0]) == {"id", "name"}
    assert set(rows["orders"][0]) == {
        "id",
        "customer_id",
        "total",
        "placed_at",
        "receipt",
        "tracking",
    }
    assert set(rows["messages"][0]) == {"id", "sender_id", "recipient_id", "body"}
    for name, column in EXCLUDED.items():
        assert all(column not in row for row in rows[name]), name
    assert statements
    table_statements = [s for s in statements if "internal_score" not in s]  # not the query
    assert len(table_statements) == len(statements) - 1
    # On PostgreSQL most tables are read by COPY, through the driver: check those statements.
    schema = source.reflect()
    table_statements += [str(source._json_select(t, schema)) for t in source.config.tables]
    for statement in table_statements:
        assert "password_hash" not in statement
        assert "shipping_address" not in statement


def test_an_integer_user_key_matches_a_string_user_id(shop, open_source):
    """The user id is always a string; compared with an INTEGER key column it is converted, so
    "2" finds customer 2 and everything below, and an id that is not a number finds nothing
    in the tables (and is no error)."""
    tables_only = shop_config(shop).model_copy(update={"queries": ()})
    source = open_source(tables_only)
    rows = read(source, GRACE)
    assert [row["id"] for row in rows["customers"]] == [2]
    assert isinstance(rows["customers"][0]["id"], int)
    assert ids(rows) == {k: v for k, v in EXPECTED[GRACE].items() if k != "messages"}
    assert ids(read(source, "grace@example.com")) == {
        "customers": [],
        "orders": [],
        "order_items": [],
        "item_notes": [],
    }
    assert source.estimate("grace@example.com").records == 0


def test_the_named_query_returns_the_persons_messages(shop, open_source):
    """A named query with :user_id (here used twice: sender or recipient) returns the messages
    the person sent or received, in the query's order, including one sent to themselves."""
    source = open_source(shop_config(shop))
    for person, expected in EXPECTED.items():
        got = read(source, person)["messages"]
        assert [m["id"] for m in got] == expected["messages"]
        assert all(int(person) in (m["sender_id"], m["recipient_id"]) for m in got)
        assert [m["body"] for m in got] == [
            m["body"] for m in ROWS[messages] if m["id"] in expected["messages"]
        ]


def test_estimate_counts_what_parts_yield(shop, open_source):
    """estimate() counts exactly the rows parts() yields, tables and query together, for each
    person, and zero for someone with no data."""
    source = open_source(shop_config(shop))
    for person in [*EXPECTED, NOBODY]:
        yielded = sum(len(table) for table in read(source, person).values())
        assert source.estimate(person).records == yielded, person
        assert source.estimate(person).bytes == 0
    assert source.estimate(GRACE).records == 1 + 1 + 2 + 1 + 4


def test_rows_are_streamed_in_batches_of_batch_size(shop, open_source):
    """With batch_size=2 every table and query arrives in batches of at most two rows (full
    batches first), lazily, and the batches together are all the rows."""
    source = open_source(shop_config(shop, batch_size=2))
    for person, expected in EXPECTED.items():
        for part in source.parts(person):
            assert isinstance(part, RecordStream)
            assert not isinstance(part.batches, list | tuple)  # an iterator, read on demand
            sizes = []
            seen = []
            for batch in part.batches:
                sizes.append(batch.records)
                seen += [row["id"] for row in decoded(batch)]
            assert seen == expected[part.name]
            wanted = [2] * (len(seen) // 2) + ([len(seen) % 2] if len(seen) % 2 else [])
            assert sizes == wanted, (person, part.name)
    grace_messages = next(p for p in source.parts(GRACE) if p.name == "messages")
    assert [batch.records for batch in grace_messages.batches] == [2, 2]


def test_json_unfriendly_values_land_in_a_package_that_verifies(shop, open_source, tmp_path):
    """DECIMAL/NUMERIC, timestamps (with and without a zone), binary columns and (on
    PostgreSQL, natively) UUIDs are written into a package record as JSON: decimals as numbers
    with all their digits, UUIDs as their text, times as ISO 8601, bytes as base64; the
    package verifies."""
    source = open_source(shop_config(shop))
    package = tmp_path / "package.zip"
    with package.open("wb") as stream:
        writer = PackageWriter(stream, {"operationId": "test", "user": {"id": ADA}})
        summary = writer.source(source.name, source.kind)
        for part in source.parts(ADA):
            assert isinstance(part, RecordStream)
            for _ in writer.add_records(summary, part.name, part.batches):
                pass
        manifest = writer.close()
    assert verify_package(package) == []
    assert manifest["sources"][0]["records"] == sum(len(v) for v in EXPECTED[ADA].values())
    with zipfile.ZipFile(package) as archive:
        lines = archive.read("records/shop/orders.jsonl").splitlines()
        notes = archive.read("records/shop/item_notes.jsonl").splitlines()
    records = [orjson.loads(line) for line in lines]
    notes = [orjson.loads(line) for line in notes]
    assert [r["id"] for r in records] == [2, 3]
    first = records[0]
    assert b'"total":12.50,' in lines[0]
    assert first["placed_at"].startswith("2025-03-14T15:09:26")
    assert base64.b64decode(first["receipt"]["base64"]) == RECEIPT
    assert records[1]["receipt"] is None
    assert uuid.UUID(first["tracking"]) == TRACKING
    if shop.startswith(POSTGRESQL):
        assert first["tracking"] == str(TRACKING)  # a native uuid column, not CHAR(32)
        assert notes[0]["written_at"] == "2025-06-01T12:00:00+00:00"
    assert all(note["written_at"].startswith("2025-06-01T12:00:00") for note in notes)


@pytest.mark.parametrize(
    ("tables", "table_named", "problem"),
    [
        ((TableConfig(table="refunds", user_key="customer_id"),), "refunds", "no table"),
        ((TableConfig(table="orders", user_key="buyer_id"),), "orders", "no column 'buyer_id'"),
        (
            (TableConfig(table="customers", user_key="id", exclude=("passwd",)),),
            "customers",
            "no column 'passwd'",
        ),
        (
            (
                TableConfig(table="orders", user_key="customer_id"),
                TableConfig(table="order_items", parent="orders", foreign_key="orderid"),
            ),
            "order_items",
            "no column 'orderid'",
        ),
        (
            (
                TableConfig(table="orders", user_key="customer_id"),
                TableConfig(
                    table="order_items", parent="orders", foreign_key="order_id", parent_key="key"
                ),
            ),
            "orders",  # named with the child table: its parent lacks the column
            "no column 'key'",
        ),
        (
            (
                TableConfig(table="orders", user_key="customer_id"),
                TableConfig(table="ratings", parent="orders"),
            ),
            "ratings",
            "no foreign key to 'orders'",
        ),
        (
            (
                TableConfig(table="customers", user_key="id"),
                TableConfig(table="messages", parent="customers"),
            ),
            "messages",
            "2 foreign keys to 'customers'",
        ),
        (
            (
                TableConfig(table="customers", user_key="id"),
                TableConfig(table="customers", name="referred", parent="customers"),
            ),
            "customers",
            "is reached from itself: set foreign_key (and parent_key)",
        ),
    ],
    ids=[
        "missing-table",
        "missing-user-key",
        "missing-excluded-column",
        "missing-foreign-key-column",
        "missing-parent-key-column",
        "no-foreign-key",
        "ambiguous-foreign-keys",
        "self-reference-not-named",
    ],
)
def test_a_misconfigured_table_is_a_source_error_naming_source_and_table(
    shop, open_source, tables, table_named, problem
):
    """A table that does not exist, a configured column that does not exist, a child table
    with no (or more than one) foreign key to its parent, or a table below itself whose link is
    not named makes estimate() and reading parts() raise a permanent SourceError naming the
    source and the table, and saying what is wrong."""
    source = open_source(SqlSourceConfig(name="shop-db", url=shop, tables=tables))
    with pytest.raises(SourceError) as counting:
        source.estimate(ADA)
    with pytest.raises(SourceError) as reading:
        read(source, ADA)
    for raised in (counting, reading):
        assert raised.value.permanent
        message = str(raised.value)
        assert "source 'shop-db'" in message
        assert f"'{table_named}'" in message
        assert problem in message


def test_a_child_without_a_foreign_key_is_read_through_a_configured_one(shop, open_source):
    """The table without a foreign key to its parent is read once the configuration names
    the linking column: the person's rows only."""
    source = open_source(
        SqlSourceConfig(
            name="shop",
            url=shop,
            tables=(
                TableConfig(table="orders", user_key="customer_id"),
                TableConfig(table="ratings", parent="orders", foreign_key="order_ref"),
            ),
        )
    )
    assert ids(read(source, ADA)) == {"orders": [2, 3], "ratings": [1, 3]}
    assert ids(read(source, GRACE)) == {"orders": [1], "ratings": [2]}
    assert ids(read(source, ALAN)) == {"orders": [4], "ratings": []}


# --- schema changes and errors --------------------------------------------------------------


def export_rows(source: SqlSource, user_id: str) -> dict[str, list[dict[str, Any]]]:
    """As the exporter reads a source: the estimate (which reflects the tables), then parts."""
    source.estimate(user_id)
    return read(source, user_id)


def test_a_column_added_or_dropped_while_running_is_seen_by_the_next_export(shop, open_source):
    """One source, kept open as the service keeps it: a column added after an export is in the
    next export's records (and the estimate still matches); a dropped column is simply no
    longer there; a dropped column the configuration names (an excluded one) fails the next
    export at once, naming the column and what to do, as a permanent error."""
    source = open_source(shop_config(shop))
    assert "loyalty_tier" not in export_rows(source, GRACE)["customers"][0]
    engine = create_engine(shop)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE customers ADD loyalty_tier VARCHAR(10)")
            connection.exec_driver_sql("UPDATE customers SET loyalty_tier = 'gold' WHERE id = 2")
        assert [row["loyalty_tier"] for row in export_rows(source, GRACE)["customers"]] == ["gold"]
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE orders DROP COLUMN tracking")
        rows = export_rows(source, ADA)
        assert ids(rows) == EXPECTED[ADA]
        assert all("tracking" not in order for order in rows["orders"])
        with engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE customers DROP COLUMN password_hash")
    finally:
        engine.dispose()
    with pytest.raises(SourceError) as raised:
        source.estimate(ADA)
    assert raised.value.permanent
    assert "table 'customers' has no column 'password_hash' (named by exclude)" in str(raised.value)
    assert "correct the configuration" in str(raised.value)


def test_a_labelled_column_the_table_lacks_fails_at_once(shop, open_source):
    """A column labelled with categories (`[sources.sql.tables.columns]`) must exist, as an
    excluded one must: a label on a column that is not there (a typo, a dropped column) would
    describe data the package does not hold. Labelled columns that exist are exported as ever."""
    config = shop_config(shop)
    customers = config.tables[0]
    labelled = customers.model_copy(
        update={"columns": {"name": ColumnConfig(categories=("user.name",))}}
    )
    source = open_source(config.model_copy(update={"tables": (labelled, *config.tables[1:])}))
    assert ids(export_rows(source, ADA)) == EXPECTED[ADA]
    wrong = customers.model_copy(
        update={"columns": {"nmae": ColumnConfig(categories=("user.name",))}}
    )
    source = open_source(config.model_copy(update={"tables": (wrong, *config.tables[1:])}))
    with pytest.raises(SourceError) as raised:
        source.estimate(ADA)
    assert raised.value.permanent
    assert "table 'customers' has no column 'nmae' (named by columns)" in str(raised.value)


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT id, nickname FROM customers WHERE id = :user_id", "nickname"),
        ("SELECT id FROM refunds WHERE customer_id = :user_id", "refunds"),
        ("SELEC id FROM customers WHERE id = :user_id", "syntax"),
    ],
    ids=["unknown-column", "missing-table", "syntax-error"],
)
def test_a_statement_the_database_refuses_is_a_permanent_error(shop, open_source, sql, named):
    """An unknown column (MariaDB: OperationalError 1054; SQLite: OperationalError), a missing
    table or a syntax error in a named query is a SourceError marked permanent, so the worker
    fails the export at once; the message names the column or table and says it is not retried."""
    source = open_source(
        SqlSourceConfig(name="shop", url=shop, queries=(QueryConfig(name="q", sql=sql),))
    )
    for attempt in (lambda: source.estimate(ADA), lambda: read(source, ADA)):
        with pytest.raises(SourceError) as raised:
            attempt()
        assert raised.value.permanent, str(raised.value)
        assert named in str(raised.value)
        assert "not retried" in str(raised.value)


def test_an_unreachable_or_timed_out_database_is_a_transient_error(open_source, shop):
    """A server that does not answer, and (PostgreSQL) a statement cancelled by its timeout,
    may pass: SourceErrors not marked permanent, which the worker retries."""
    closed = SqlSourceConfig(
        name="gone",
        url="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2",
        tables=(TableConfig(table="customers", user_key="id"),),
    )
    with pytest.raises(SourceError) as raised:
        open_source(closed).estimate(ADA)
    assert not raised.value.permanent
    if shop.startswith(POSTGRESQL):
        url = make_url(shop)
        options = f"{url.query['options']} -cstatement_timeout=50"
        timed_out = url.update_query_dict({"options": options})
        slow = SqlSourceConfig(
            name="slow",
            url=timed_out.render_as_string(hide_password=False),
            queries=(QueryConfig(name="q", sql="SELECT pg_sleep(2), :user_id AS u"),),
        )
        with pytest.raises(SourceError) as raised:
            read(open_source(slow), ADA)
        assert "statement timeout" in str(raised.value)
        assert not raised.value.permanent
