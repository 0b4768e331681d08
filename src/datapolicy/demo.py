"""The bundled demo: a small shop (users, orders, order items, messages) and a file store, with
the configuration that exports from them, so that the quick start exports a real person's data.

The data is generated deterministically into `<data-dir>/demo/` on first use (a seeded random
generator, so every install has the same people), rather than shipped as a binary file.
"""

from __future__ import annotations

import random
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from datapolicy.config import (
    Config,
    DirectoryConfig,
    ErasureConfig,
    FileSourceConfig,
    MaskValue,
    QueryConfig,
    SourcesConfig,
    SqlSourceConfig,
    TableConfig,
)

DEMO_DIR = "demo"
_NAMESPACE = uuid.UUID("6f1c3a52-9d0e-4b7a-8c21-5e4f3a2b1c0d")
_FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Barbara",
    "Edsger",
    "Frances",
    "Donald",
    "Margaret",
    "Ken",
    "Radia",
    "Tim",
    "Katherine",
    "Dennis",
    "Hedy",
    "Niklaus",
    "Sophie",
]
_LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Liskov",
    "Dijkstra",
    "Allen",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Johnson",
    "Ritchie",
    "Lamarr",
    "Wirth",
    "Wilson",
]
_PRODUCTS = [
    ("Notebook", 450),
    ("Fountain pen", 2900),
    ("Desk lamp", 3900),
    ("Mug", 1200),
    ("Backpack", 5900),
    ("Headphones", 8900),
    ("Plant", 1500),
    ("Chair", 14900),
]


def demo_user_id(index: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"user-{index}"))


def prepare_demo(data_dir: Path) -> Config:
    """Create the demo data (once) and return the configuration that uses it."""
    root = (data_dir / DEMO_DIR).absolute()
    database = root / "shop.sqlite3"
    if not database.exists():
        root.mkdir(parents=True, exist_ok=True)
        partial = database.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        _create_shop(partial, root / "uploads")
        partial.rename(database)
    url = f"sqlite:///{database}"
    return Config(
        directory=DirectoryConfig(
            url=url,
            table="users",
            display_name_column="display_name",
            mail_column="mail",
            user_principal_name_column="user_principal_name",
        ),
        sources=SourcesConfig(
            sql=(
                SqlSourceConfig(
                    name="shop",
                    url=url,
                    # The erasure rules (docs/erasure.md): the account is kept, masked (its id
                    # is referred to by the other party's messages); orders and their items go.
                    tables=(
                        TableConfig(
                            table="users",
                            user_key="id",
                            exclude=("password_hash",),
                            erase="mask",
                            mask={
                                "display_name": MaskValue(value="(erased)"),
                                "mail": "hash",
                                "user_principal_name": "hash",
                                "password_hash": MaskValue(value="!"),
                                "created_at": "year",
                            },
                        ),
                        TableConfig(table="orders", user_key="customer_id", erase="delete"),
                        TableConfig(table="order_items", parent="orders", erase="delete"),
                    ),
                    queries=(
                        QueryConfig(
                            name="messages",
                            sql="SELECT id, sender_id, recipient_id, sent_at, body "
                            "FROM messages WHERE sender_id = :user_id "
                            "OR recipient_id = :user_id ORDER BY id",
                            erase="retain",
                            reason="a conversation is also the other party's record",
                        ),
                    ),
                ),
            ),
            files=(
                FileSourceConfig(
                    name="uploads", path=str(root / "uploads" / "{userId}"), erase="delete"
                ),
            ),
        ),
        erasure=ErasureConfig(approval="none"),
    )


def _create_shop(path: Path, uploads: Path) -> None:
    rng = random.Random(20261129)
    connection = sqlite3.connect(path)
    with connection:
        connection.executescript("""
            CREATE TABLE users (
                id TEXT PRIMARY KEY, display_name TEXT, mail TEXT, user_principal_name TEXT,
                password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
            CREATE TABLE orders (
                id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES users(id),
                placed_at TEXT NOT NULL, total_cents INTEGER NOT NULL, shipping_address TEXT);
            CREATE TABLE order_items (
                id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id),
                product TEXT NOT NULL, quantity INTEGER NOT NULL, unit_price_cents INTEGER);
            CREATE TABLE messages (
                id INTEGER PRIMARY KEY, sender_id TEXT NOT NULL REFERENCES users(id),
                recipient_id TEXT NOT NULL REFERENCES users(id), sent_at TEXT NOT NULL,
                body TEXT NOT NULL);
            CREATE INDEX orders_customer ON orders(customer_id);
            CREATE INDEX items_order ON order_items(order_id);
            CREATE INDEX messages_sender ON messages(sender_id);
            CREATE INDEX messages_recipient ON messages(recipient_id);
        """)
        start = datetime(2025, 1, 1, tzinfo=UTC)
        people = [demo_user_id(i) for i in range(len(_FIRST))]
        for index, user_id in enumerate(people):
            first, last = _FIRST[index], _LAST[index]
            handle = f"{first}.{last}".lower().replace("-", "")
            connection.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    f"{first} {last}",
                    f"{handle}@example.com",
                    f"{handle}@contoso.example",
                    f"$argon2id$v=19${rng.getrandbits(128):032x}",
                    (start + timedelta(days=index)).isoformat(),
                ),
            )
            for _ in range(rng.randint(1, 5)):
                placed = start + timedelta(days=rng.randint(10, 300), minutes=rng.randint(0, 1439))
                items = [rng.choice(_PRODUCTS) for _ in range(rng.randint(1, 4))]
                quantities = [rng.randint(1, 3) for _ in items]
                total = sum(price * q for (_, price), q in zip(items, quantities, strict=True))
                order_id = connection.execute(
                    "INSERT INTO orders (customer_id, placed_at, total_cents, shipping_address)"
                    " VALUES (?, ?, ?, ?)",
                    (user_id, placed.isoformat(), total, f"{rng.randint(1, 99)} Example Street"),
                ).lastrowid
                connection.executemany(
                    "INSERT INTO order_items (order_id, product, quantity, unit_price_cents)"
                    " VALUES (?, ?, ?, ?)",
                    [
                        (order_id, name, q, price)
                        for (name, price), q in zip(items, quantities, strict=True)
                    ],
                )
            folder = uploads / user_id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "avatar.txt").write_text(f"(a picture of {first} {last})\n")
            if index % 2 == 0:
                (folder / "documents").mkdir(exist_ok=True)
                (folder / "documents" / "notes.md").write_text(
                    f"# Notes by {first}\n\nShopping list: {rng.choice(_PRODUCTS)[0]}.\n"
                )
        for number in range(60):
            sender, recipient = rng.sample(people, 2)
            connection.execute(
                "INSERT INTO messages (sender_id, recipient_id, sent_at, body) VALUES (?, ?, ?, ?)",
                (
                    sender,
                    recipient,
                    (start + timedelta(hours=number * 7)).isoformat(),
                    f"Message {number}: is the {rng.choice(_PRODUCTS)[0].lower()} still available?",
                ),
            )
    connection.close()
