"""Checking keys against a receipt (engine/erasure/checks.py), against a reference: the shop's
own rows before and after the erasure. For a generated person and shop, every key of a row the
erasure deleted or masked is `erased`, every other row's key (another person's, or one that
never existed) is `notListed`, a retained table's is `retained` with its reason; the person is
`erased` and anyone else is not; and a source an earlier attempt committed is `cannotTell`."""

from __future__ import annotations

import io
import sqlite3
import zipfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datapolicy.engine.directory import User
from datapolicy.engine.erasure.checks import Verdict, check_key
from engine.test_erasure_receipt import IDS, PEOPLE, SECRET, erased, shop

ERASED_TABLES = ("customers", "orders", "items")  # masked, deleted, deleted (RULES)


def keys_of(path: Path) -> dict[str, set[tuple[str, ...]]]:
    """Each table's primary keys in the shop, as texts (as the receipt hashes them)."""
    queries = {
        "customers": "SELECT id FROM customers",
        "orders": "SELECT id FROM orders",
        "items": "SELECT order_id, line FROM items",
        "invoices": "SELECT id FROM invoices",
    }
    with sqlite3.connect(path) as connection:
        return {
            table: {tuple(str(value) for value in row) for row in connection.execute(query)}
            for table, query in queries.items()
        }


def receipt_of(package: bytes) -> dict[str, Any]:
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        receipt: dict[str, Any] = orjson.loads(archive.read("receipt.json"))
    return receipt


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(person=PEOPLE, strangers=st.lists(IDS, max_size=4))
def test_every_key_is_answered_as_the_shop_s_own_rows_say(
    tmp_path_factory: Any, person: dict[str, Any], strangers: list[int]
):
    directory = tmp_path_factory.mktemp("shop")
    source = shop(directory, person)
    before = keys_of(directory / "shop.sqlite3")
    with sqlite3.connect(directory / "shop.sqlite3") as connection:
        mine = {
            "customers": {(str(person["id"]),)},
            "orders": {
                (str(row[0]),)
                for row in connection.execute(
                    "SELECT id FROM orders WHERE customer_id = ?", (person["id"],)
                )
            },
            "items": {
                (str(row[0]), str(row[1]))
                for row in connection.execute(
                    "SELECT order_id, line FROM items WHERE order_id IN "
                    "(SELECT id FROM orders WHERE customer_id = ?)",
                    (person["id"],),
                )
            },
        }
    try:
        package = erased(User(str(person["id"])), [source])
    finally:
        source.close()
    after = keys_of(directory / "shop.sqlite3")
    receipt = receipt_of(package)
    for table in ("orders", "items"):  # deleted: gone now, and only those
        assert before[table] - after[table] == mine[table]
    for table in ERASED_TABLES:
        for key in before[table]:
            check = check_key(receipt, SECRET, ("shop", table, *key))
            expected = Verdict.ERASED if key in mine[table] else Verdict.NOT_LISTED
            assert check.verdict is expected, (table, key)
            assert check.where == f"shop/{table}"
    for stranger in strangers:
        if (str(stranger),) not in before["orders"]:
            missing = check_key(receipt, SECRET, ("shop", "orders", str(stranger)))
            assert missing.verdict is Verdict.NOT_LISTED
    invoice = check_key(receipt, SECRET, ("shop", "invoices", "1"))
    assert (invoice.verdict, invoice.reason) == (Verdict.RETAINED, "kept 10 years: tax law")
    assert check_key(receipt, SECRET, (str(person["id"]),)).verdict is Verdict.ERASED
    assert check_key(receipt, SECRET, ("2",)).verdict is Verdict.NOT_LISTED
    unknown = check_key(receipt, SECRET, ("shop", "no_such_table", "1"))
    assert unknown.verdict is Verdict.NOT_LISTED
    other_secret = check_key(
        receipt,
        b"another secret of enough bytes",
        ("shop", "customers", *next(iter(mine["customers"]))),
    )
    assert other_secret.verdict is Verdict.NOT_LISTED


def test_a_source_an_earlier_attempt_committed_cannot_be_told(tmp_path: Path):
    """Its hashes went with that attempt: the receipt quotes their count and SHA-256 only."""
    person = {"id": 1000000, "email": "é@x", "born": None, "city": "Zürich", "orders": []}
    source = shop(tmp_path, person)
    stored: dict[str, list[dict[str, Any]]] = {}
    try:
        first, resumed = (
            receipt_of(
                erased(
                    User("1000000"),
                    [source],
                    state=orjson.loads(orjson.dumps(stored)),  # the second resumes the first
                    committed=stored.__setitem__,
                )
            )
            for _ in range(2)
        )
    finally:
        source.close()
    key = ("shop", "customers", "1000000")
    assert check_key(first, SECRET, key).verdict is Verdict.ERASED
    assert check_key(resumed, SECRET, key).verdict is Verdict.CANNOT_TELL
