"""The data of the export benchmark: one person with about N MB of rows and files, among others.

Generated deterministically (seeded) and cached under bench/results/export-data/, keyed by size
and generator version; loaded from the cache into PostgreSQL (a schema of its own) or SQLite for
each run. Run alone: `python bench/export_data.py --size-mb 100` prints the cache directory.

What one person's N MB is made of (bytes as the database's own text dump writes them):
- 70% rows, in three tables with realistic types (bigint keys, text, timestamptz, boolean):
  - `messages` (~70% of the row bytes): mail-like rows with a subject and a 0.2-6 KB body of
    word-like text (accents and the odd emoji included, paragraphs as newlines), reached by
    `user_id`;
  - `orders` (~10%): short rows reached by `user_id`;
  - `order_items` (~20%): short rows reached only through `orders` (a foreign key, 1-5 items per
    order), so the export's parent sub-select is exercised;
  - and one row in `people`;
- 30% files in `files/<userId>/`: 60% of those bytes "photos" (random bytes, 0.3-6 MB, not
  compressible), 40% text documents (8 KB-1 MB), in nested folders.

Nineteen other people own rows worth a quarter of the target's, interleaved with the target's
(ids are shared, rows mixed), and a few small files each, so every selection really selects.

Cache layout: `<table>.tsv` in PostgreSQL's COPY text format (the generated text holds no tab or
backslash, so the only escapes are `\\n` and `\\N`), `files/`, and `meta.json` (written last: a
directory without it is incomplete and is made again).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

GENERATOR_VERSION = 1  # bump when the generated data changes, to invalidate cached sets
SEED = 20261129
RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "export-data"
MB = 1024 * 1024

ROW_SHARE = 0.70  # of the target's bytes; the rest are files
MESSAGE_SHARE = 0.70  # of the target's row bytes; the rest are orders and their items
OTHERS_SHARE = 0.25  # other people's rows, relative to the target's
OTHER_PEOPLE = 19
PHOTO_SHARE = 0.60  # of the target's file bytes; the rest are text documents
_NAMESPACE = uuid.UUID("0d7c43be-5b7e-4f55-9a43-2f1c0b9e8a61")
_START = datetime(2024, 1, 1, tzinfo=UTC)

# The schema. Column types per database; order and names are the TSV's.
TABLES: dict[str, list[tuple[str, str, str]]] = {
    # name: [(column, PostgreSQL type, SQLite type)]
    "people": [
        ("id", "text PRIMARY KEY", "TEXT PRIMARY KEY"),
        ("display_name", "text NOT NULL", "TEXT NOT NULL"),
        ("mail", "text NOT NULL", "TEXT NOT NULL"),
        ("created_at", "timestamptz NOT NULL", "TEXT NOT NULL"),
    ],
    "messages": [
        ("id", "bigint PRIMARY KEY", "INTEGER PRIMARY KEY"),
        ("user_id", "text NOT NULL REFERENCES people(id)", "TEXT NOT NULL REFERENCES people(id)"),
        ("thread_id", "bigint NOT NULL", "INTEGER NOT NULL"),
        ("sent_at", "timestamptz NOT NULL", "TEXT NOT NULL"),
        ("sender", "text NOT NULL", "TEXT NOT NULL"),
        ("recipients", "text NOT NULL", "TEXT NOT NULL"),
        ("subject", "text NOT NULL", "TEXT NOT NULL"),
        ("body", "text NOT NULL", "TEXT NOT NULL"),
        ("is_read", "boolean NOT NULL", "INTEGER NOT NULL"),
    ],
    "orders": [
        ("id", "bigint PRIMARY KEY", "INTEGER PRIMARY KEY"),
        ("user_id", "text NOT NULL REFERENCES people(id)", "TEXT NOT NULL REFERENCES people(id)"),
        ("placed_at", "timestamptz NOT NULL", "TEXT NOT NULL"),
        ("status", "text NOT NULL", "TEXT NOT NULL"),
        ("currency", "text NOT NULL", "TEXT NOT NULL"),
        ("total_cents", "bigint NOT NULL", "INTEGER NOT NULL"),
        ("shipping_address", "text", "TEXT"),
    ],
    "order_items": [
        ("id", "bigint PRIMARY KEY", "INTEGER PRIMARY KEY"),
        (
            "order_id",
            "bigint NOT NULL REFERENCES orders(id)",
            "INTEGER NOT NULL REFERENCES orders(id)",
        ),
        ("product", "text NOT NULL", "TEXT NOT NULL"),
        ("sku", "text NOT NULL", "TEXT NOT NULL"),
        ("quantity", "integer NOT NULL", "INTEGER NOT NULL"),
        ("unit_price_cents", "bigint NOT NULL", "INTEGER NOT NULL"),
        ("note", "text", "TEXT"),
    ],
}
INDEXES = {
    "messages": "user_id",
    "orders": "user_id",
    "order_items": "order_id",
}


def person_id(index: int) -> str:
    """Person 0 is the one the benchmark exports."""
    return str(uuid.uuid5(_NAMESPACE, f"person-{index}"))


TARGET = person_id(0)


@dataclass(frozen=True)
class Dataset:
    directory: Path
    meta: dict

    @property
    def files_root(self) -> Path:
        return self.directory / "files"

    def tsv(self, table: str) -> Path:
        return self.directory / f"{table}.tsv"


def cache_dir(size_mb: int, cache: Path = CACHE) -> Path:
    return cache / f"{size_mb}mb-gen{GENERATOR_VERSION}"


def ensure_dataset(
    size_mb: int, cache: Path = CACHE, log: Callable[[str], None] = print
) -> Dataset:
    """The cached data set of `size_mb`, generated first if it is not there (or incomplete)."""
    directory = cache_dir(size_mb, cache)
    meta_file = directory / "meta.json"
    if meta_file.exists():
        return Dataset(directory, json.loads(meta_file.read_text()))
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(directory, ignore_errors=True)
    partial.mkdir(parents=True)
    log(f"generating the {size_mb} MB data set in {directory} (once; cached)")
    started = time.monotonic()
    meta = _generate(partial, size_mb * MB)
    meta["generate_seconds"] = round(time.monotonic() - started, 1)
    (partial / "meta.json").write_text(json.dumps(meta, indent=1))
    partial.rename(directory)
    log(f"generated in {meta['generate_seconds']} s: {_describe(meta)}")
    return Dataset(directory, meta)


def _describe(meta: dict) -> str:
    target = meta["target"]
    rows = sum(target["rows"].values())
    return (
        f"target {target['row_bytes'] / MB:.0f} MB in {rows:,} rows + "
        f"{target['file_bytes'] / MB:.0f} MB in {target['files']} files"
    )


# --- generation -------------------------------------------------------------------------------


class _Text:
    """Word-like text with a natural word-frequency skew (so it compresses like prose, ~2-3x),
    taken as slices of one large seeded pool."""

    def __init__(self, rng: random.Random, chars: int = 4_000_000):
        letters = "etaoinshrdlcumwfgypbvkjxqz"
        weights = [
            12,
            9,
            8,
            7.5,
            7,
            6.7,
            6.3,
            6,
            5.9,
            4.2,
            4,
            2.8,
            2.8,
            2.4,
            2.4,
            2.2,
            2,
            2,
            1.9,
            1.5,
        ]
        weights += [1, 0.8, 0.2, 0.2, 0.1, 0.1]
        words = ["".join(rng.choices(letters, weights, k=rng.randint(1, 11))) for _ in range(6000)]
        for i in range(0, len(words), 40):  # some non-ASCII: names, places, the odd emoji
            words[i] = words[i][:3] + rng.choice("éèüößñøåçł") + words[i][3:]
        words[500] = "🙂"
        rank_weights = [1 / (rank + 1) for rank in range(len(words))]
        tokens = rng.choices(words, rank_weights, k=chars // 5)
        parts: list[str] = []
        for i, token in enumerate(tokens):
            parts.append(token)
            if i % 97 == 96:
                parts.append(".\n\n" if i % 3 else ",\n")
            elif i % 13 == 12:
                parts.append(". ")
            else:
                parts.append(" ")
        self.pool = "".join(parts)
        self.rng = rng

    def take(self, length: int) -> str:
        start = self.rng.randrange(0, len(self.pool) - length)
        return self.pool[start : start + length]

    def line(self, length: int) -> str:
        return self.take(length).replace("\n", " ")


def _tsv_field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S+00")
    return str(value).replace("\n", "\\n")


class _Writer:
    def __init__(self, path: Path):
        self.file = path.open("w", encoding="utf-8", newline="\n")

    def row(self, values: tuple) -> int:
        line = "\t".join(_tsv_field(v) for v in values) + "\n"
        self.file.write(line)
        return len(line.encode())

    def close(self) -> None:
        self.file.close()


def _generate(directory: Path, total_bytes: int) -> dict:
    rng = random.Random(f"{SEED}-{GENERATOR_VERSION}-{total_bytes}")
    text = _Text(rng)
    people = [person_id(i) for i in range(OTHER_PEOPLE + 1)]
    others = people[1:]
    row_budget = total_bytes * ROW_SHARE
    message_budget = row_budget * MESSAGE_SHARE
    order_budget = row_budget - message_budget
    target = {"rows": {t: 0 for t in TABLES}, "row_bytes": 0, "files": 0, "file_bytes": 0}
    everyone = {"rows": {t: 0 for t in TABLES}, "row_bytes": 0}

    def owner() -> str:
        """The target, or (for OTHERS_SHARE of the target's volume) someone else."""
        return TARGET if rng.random() < 1 / (1 + OTHERS_SHARE) else rng.choice(others)

    def count(table: str, who: str, size: int) -> None:
        everyone["rows"][table] += 1
        everyone["row_bytes"] += size
        if who == TARGET:
            target["rows"][table] += 1
            target["row_bytes"] += size

    writer = _Writer(directory / "people.tsv")
    for index, pid in enumerate(people):
        name = f"{text.line(8).strip().title()} {text.line(10).strip().title()}"
        size = writer.row((pid, name, f"person{index}@example.org", _START))
        count("people", pid, size)
    writer.close()

    def address(pid: str) -> str:
        return f"{pid[:8]}@example.org"

    writer = _Writer(directory / "messages.tsv")
    written, message_id = 0.0, 0
    while written < message_budget:
        message_id += 1
        who = owner()
        sent = _START + timedelta(seconds=message_id * 41 + rng.randint(0, 40))
        recipients = ", ".join(address(rng.choice(people)) for _ in range(rng.randint(1, 3)))
        body_length = int(min(6000, max(200, rng.lognormvariate(7.3, 0.7))))
        size = writer.row(
            (
                message_id,
                who,
                message_id - rng.randint(0, min(message_id - 1, 50)),
                sent,
                f"{text.line(12).strip()} <{address(who)}>",
                recipients,
                text.line(rng.randint(16, 80)).strip(),
                text.take(body_length),
                rng.random() < 0.8,
            )
        )
        count("messages", who, size)
        if who == TARGET:
            written += size
    writer.close()

    orders, items = _Writer(directory / "orders.tsv"), _Writer(directory / "order_items.tsv")
    written, order_id, item_id = 0.0, 0, 0
    statuses = ["delivered"] * 8 + ["shipped", "cancelled", "returned"]
    while written < order_budget:
        order_id += 1
        who = owner()
        lines = []
        for _ in range(rng.randint(1, 5)):
            item_id += 1
            quantity, price = rng.randint(1, 4), rng.randint(99, 49_999)
            note = text.line(rng.randint(10, 120)).strip() if rng.random() < 0.5 else None
            product = text.line(rng.randint(8, 40)).strip().capitalize()
            sku = f"SKU-{rng.randint(0, 999_999):06d}-{rng.choice('ABCDEFGH')}"
            lines.append((item_id, order_id, product, sku, quantity, price, note))
        total = sum(line[4] * line[5] for line in lines)
        address_line = (
            f"{rng.randint(1, 999)} {text.line(12).strip().title()} Street, "
            f"{rng.randint(10000, 99999)} {text.line(9).strip().title()}"
            if rng.random() < 0.9
            else None
        )
        placed = _START + timedelta(seconds=order_id * 97 + rng.randint(0, 90))
        status = rng.choice(statuses)
        currency = rng.choice(("EUR", "EUR", "USD", "GBP"))
        size = orders.row((order_id, who, placed, status, currency, total, address_line))
        count("orders", who, size)
        for line in lines:
            item_size = items.row(line)
            count("order_items", who, item_size)
            size += item_size
        if who == TARGET:
            written += size
    orders.close()
    items.close()

    files_root = directory / "files"
    file_budget = total_bytes - target["row_bytes"]
    photos = file_budget * PHOTO_SHARE
    for path, size in _files(rng, text, files_root / TARGET, photos, file_budget - photos):
        target["files"] += 1
        target["file_bytes"] += size
        del path
    for pid in others[:5]:
        for _ in _files(rng, text, files_root / pid, 200_000, 100_000):
            pass
    return {
        "generator_version": GENERATOR_VERSION,
        "size_mb": total_bytes // MB,
        "target_user": TARGET,
        "target": target,
        "all_people": everyone,
        "people": len(people),
    }


def _files(
    rng: random.Random, text: _Text, root: Path, photo_bytes: float, document_bytes: float
) -> Iterator[tuple[Path, int]]:
    """Photos (incompressible) and documents (text) in nested folders, up to the given bytes."""
    written, number = 0, 0
    while written < photo_bytes:
        number += 1
        size = int(min(6 * MB, max(300_000, rng.lognormvariate(14.3, 0.6))))
        path = root / "photos" / f"{2020 + number % 6}" / f"IMG_{number:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        written += size
        yield path, size
    written = 0
    while written < document_bytes:
        number += 1
        size = int(min(MB, max(8_000, rng.lognormvariate(11.5, 1.0))))
        folder = rng.choice(("documents", "documents/letters", "documents/notes", "attachments"))
        path = root / folder / f"doc-{number:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = b""
        while len(data) < size:
            data += text.take(min(len(text.pool) - 1, 200_000)).encode()
        path.write_bytes(data[:size])
        written += size
        yield path, size


# --- loading ----------------------------------------------------------------------------------


def load_postgresql(
    dataset: Dataset, conninfo: str, schema: str, log: Callable[[str], None]
) -> None:
    """(Re)create `schema` holding the data set: COPY in, then keys, indexes, VACUUM ANALYZE,
    so that the first timed read does not pay for hint bits or missing statistics."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        connection.execute(f"CREATE SCHEMA {schema}")
        connection.execute(f"SET search_path TO {schema}")
        for table, columns in TABLES.items():
            # Keys and references are added after the load (faster, same result).
            plain = ", ".join(f"{name} {_bare_type(pg)}" for name, pg, _ in columns)
            connection.execute(f"CREATE TABLE {table} ({plain})")
            with (
                connection.cursor() as cursor,
                cursor.copy(f"COPY {table} FROM STDIN") as copy,
                dataset.tsv(table).open("rb") as source,
            ):
                while chunk := source.read(MB):
                    copy.write(chunk)
        for table, columns in TABLES.items():
            for name, pg, _ in columns:
                if "PRIMARY KEY" in pg:
                    connection.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({name})")
        for table, columns in TABLES.items():
            for name, pg, _ in columns:
                if "REFERENCES" in pg:
                    parent = pg.split("REFERENCES", 1)[1].strip()
                    connection.execute(
                        f"ALTER TABLE {table} ADD FOREIGN KEY ({name}) REFERENCES {parent}"
                    )
        for table, column in INDEXES.items():
            connection.execute(f"CREATE INDEX {table}_{column} ON {table} ({column})")
        connection.execute(f"COMMENT ON SCHEMA {schema} IS '{dataset.directory.name}'")
        for table in TABLES:
            connection.execute(f"VACUUM (ANALYZE, FREEZE) {table}")
    log(f"loaded {dataset.directory.name} into PostgreSQL schema {schema}")


def loaded_postgresql(conninfo: str, schema: str) -> str | None:
    """The name of the data set loaded in `schema`, if any."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as connection:
        row = connection.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s",
            (schema,),
        ).fetchone()
    return row[0] if row else None


def drop_postgresql(conninfo: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _bare_type(pg: str) -> str:
    return pg.split(" PRIMARY KEY")[0].split(" REFERENCES")[0]


def load_sqlite(dataset: Dataset, path: Path, log: Callable[[str], None]) -> None:
    """Build a SQLite database of the data set at `path` (replaced if there)."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    connection = sqlite3.connect(partial)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    for table, columns in TABLES.items():
        definition = ", ".join(f"{name} {lite}" for name, _, lite in columns)
        connection.execute(f"CREATE TABLE {table} ({definition})")
        marks = ", ".join("?" for _ in columns)
        convert = [_sqlite_converter(pg, lite) for _, pg, lite in columns]
        with dataset.tsv(table).open(encoding="utf-8") as source:
            batch: list[tuple] = []
            for line in source:
                fields = line.rstrip("\n").split("\t")
                batch.append(tuple(f(v) for f, v in zip(convert, fields, strict=True)))
                if len(batch) >= 20_000:
                    connection.executemany(f"INSERT INTO {table} VALUES ({marks})", batch)
                    batch.clear()
            connection.executemany(f"INSERT INTO {table} VALUES ({marks})", batch)
        connection.commit()
    for table, column in INDEXES.items():
        connection.execute(f"CREATE INDEX {table}_{column} ON {table} ({column})")
    connection.execute("ANALYZE")
    connection.commit()
    connection.close()
    partial.rename(path)
    log(f"built SQLite database {path}")


def _sqlite_converter(pg_type: str, sqlite_type: str) -> Callable[[str], object]:
    """From a COPY text field to the value SQLite stores (booleans as 0/1)."""
    boolean, integer = pg_type.startswith("boolean"), sqlite_type.startswith("INTEGER")

    def convert(value: str) -> object:
        if value == "\\N":
            return None
        if boolean:
            return 1 if value == "t" else 0
        if integer:
            return int(value)
        return value.replace("\\n", "\n")

    return convert


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate (or find) a cached export data set.")
    parser.add_argument("--size-mb", type=int, default=100)
    args = parser.parse_args()
    dataset = ensure_dataset(args.size_mb)
    print(dataset.directory)
    print(_describe(dataset.meta))


if __name__ == "__main__":
    main()
